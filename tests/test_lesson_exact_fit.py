"""Where a prediction meets its rating to the last bits (real MovieLens 100k had one: `bias!M45:
LibreOffice 0.0, torch 1.78e-15`), rating - prediction keeps only the rounding of both, and
LibreOffice, whose subtraction gives 0 for operands equal to about 15 digits, says 0. The lesson
sheets' cancelling cells carry the size of their operands (the `_torch` sheet's scale), so
verify judges them by what 1e-12 relative can mean there, and passes."""

import dataclasses

import numpy as np
import pytest
import torch

from tolerance import RTOL

from cfxl.proof.contract import TORCH_SHEET
from cfxl.proof.verify import verify
from cfxl.records.lesson import lesson_records
from cfxl.records.types.lesson import LessonRecords
from cfxl.sheets.book import Book
from cfxl.sheets.lesson import grid_layout, write_lesson_sheets
from cfxl.sheets.refs import cell
from cfxl.workbooks import write_workbook

pytestmark = pytest.mark.recompute
MODELS = {"dotprod_trained": "dot_trained", "bias_trained": "bias_trained"}  # preds near ratings


@pytest.fixture(scope="module")
def rec(ratings, seed):
    return lesson_records(ratings, seed=seed)


def rated_as_predicted(rec: LessonRecords, cells: dict[str, tuple[int, int]], ulps: int
                       ) -> LessonRecords:
    """rec with the rating of each sheet's cell set to that sheet's float64 prediction there,
    moved by ulps units in the last place, and every error, RMSE and objective torch computes
    from the ratings computed again, as cfxl.records.lesson does (the parameters, and so the
    predictions, stay)."""
    ratings = rec.slice.ratings.copy()
    for name, (i, j) in cells.items():
        ratings[i, j] = getattr(rec, MODELS[name]).pred[i, j]
        for _ in range(ulps):
            ratings[i, j] = np.nextafter(ratings[i, j], np.inf)
    s = dataclasses.replace(rec.slice, ratings=ratings)

    def rmse(err, keep):
        return float(err[torch.as_tensor(keep)].square().mean().sqrt())

    def refit(g, err, train, valid, **more):
        if hasattr(g, "objective"):
            mse = err[torch.as_tensor(train)].square().mean()
            more["objective"] = float(mse + g.fit.weight_decay * g.sumsq)
        return dataclasses.replace(g, err=err.numpy(), train_rmse=rmse(err, train),
                                   valid_rmse=rmse(err, valid), **more)

    def grid(g):
        return refit(g, torch.from_numpy(g.pred) - torch.from_numpy(ratings), s.train, s.valid)

    def long(g):
        err = torch.from_numpy(g.pred) - torch.from_numpy(s.long_ratings)
        return refit(g, err, ~s.long_valid, s.long_valid, sq_err=err.square().numpy())
    return dataclasses.replace(rec, slice=s, dot=grid(rec.dot), bias=grid(rec.bias),
                               dot_trained=grid(rec.dot_trained),
                               bias_trained=grid(rec.bias_trained),
                               long=long(rec.long), net=long(rec.net))


def without_scales(book):
    """The recomputed workbook as if its _torch sheet had no scale column (the old sheets')."""
    torch_sheet = {ref: 0.0 if ref[0] == "D" and ref != "D1" else value
                   for ref, value in book.values[TORCH_SHEET].items()}
    return dataclasses.replace(book, values={**book.values, TORCH_SHEET: torch_sheet})


@pytest.mark.parametrize("ulps", [0, 2])
def test_a_rating_equal_to_its_prediction_verifies(rec, engine, tmp_path, ulps):
    cells, refs = {}, {}
    for name in MODELS:  # a rated cell predicted in [4, 8), where 2 ulps are 1.78e-15
        L = grid_layout(rec, bias=name.startswith("bias"))
        pred = getattr(rec, MODELS[name]).pred
        cells[name] = next((i, j) for i, j in zip(rec.slice.rows, rec.slice.cols)
                           if 4 <= pred[i, j] < 8 and rec.slice.train[i, j]
                           and (i, j) not in cells.values())
        refs[name] = cell(L.err_row + cells[name][0], L.grid_col + cells[name][1])
    exact = rated_as_predicted(rec, cells, ulps)
    for name, c in cells.items():
        assert getattr(exact, MODELS[name]).err[c] == -ulps * np.spacing(4.0)  # pred - rating
    book = engine.recalc(write_workbook(tmp_path / "exact.xlsx",
                                        lambda b: write_lesson_sheets(b, exact)))
    assert all(book.values[name][ref] == 0.0 for name, ref in refs.items())
    report = verify(book)
    assert report.ok, report.failures

    # without the scale column (the old _torch sheet): equal operands pass, 2 ulps apart fail
    failed = {(m.sheet, m.cell): m for m in verify(without_scales(book)).failures}
    if ulps == 0:
        assert not failed
    else:
        assert set(refs.items()) == set(failed)
        assert all(m.engine == 0.0 and m.torch == -1.7763568394002505e-15
                   and m.problem == "relative error 1.78e-12 > 1e-12" for m in failed.values())


def test_only_cancelling_cells_carry_a_scale_and_it_bounds_their_value(rec, tmp_path):
    book = Book(tmp_path / "scales.xlsx")
    write_lesson_sheets(book, rec)
    book.close()
    L = grid_layout(rec, bias=False)
    i, j = rec.slice.rows[0], rec.slice.cols[0]
    scaled = {sheet: {ref for ref, (_, scale) in cells.items() if scale is not None}
              for sheet, cells in book.torch.items()}
    n = len(rec.slice.rows)
    assert {sheet: len(refs) for sheet, refs in scaled.items()} == {
        "dotprod": 2 * n, "dotprod_trained": 2 * n,  # predictions (dot products) and errors
        "bias": n, "bias_trained": n,  # errors
        "movielens_emb": 3 * n, "movielens_1hot": 3 * n,  # predictions, errors, their squares
        "nn": n * rec.nh + 3 * n, "tensors": 0}  # hidden units, z, errors and their squares
    assert {cell(L.pred_row + i, L.grid_col + j), cell(L.err_row + i, L.grid_col + j)} <= \
        scaled["dotprod"]
    for sheet, cells in book.torch.items():
        for ref, (value, scale) in cells.items():
            assert scale is None or scale * (1 + RTOL) >= abs(value), (sheet, ref, value, scale)
    err = book.torch["dotprod"][cell(L.err_row + i, L.grid_col + j)]
    assert err[1] == abs(rec.slice.ratings[i, j]) + abs(rec.dot.pred[i, j])
