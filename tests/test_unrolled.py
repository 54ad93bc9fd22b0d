"""The `train` sheet: K steps of the slice model's training written as formulas. LibreOffice
recomputes every band to torch's float64 run on the training ratings, with the held-out ratings'
validation MSE beside; an lr or optimizer edited with openpyxl re-trains the sheet to what a
fresh torch run with those settings gives, train and valid RMSE included; every band is the same
shape."""

import re

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F
from tolerance import assert_close, running_size

from cfxl.errors import CfxlError
from cfxl.records.lesson import lesson_records
from cfxl.records.replay import take_slice
from cfxl.engine.models import EmbeddingDotBias
from cfxl.proof.recalc import recalc
from cfxl.presets import UNROLLED_FACTORS as N_FACTORS, UNROLLED_STEPS as STEPS
from cfxl.records.types.cf import SLICE_PARAMS
from cfxl.records.types.unrolled import UnrolledHyper
from cfxl.records.unrolled import settings, unrolled_records
from cfxl.proof.verify import verify
from cfxl.workbooks import write_workbook
from cfxl.sheets.refs import area, cell
from cfxl.sheets.unrolled_layout import FRAMES, UnrolledLayout
from cfxl.sheets.unrolled import SHEET, write_unrolled_sheet

# recompute workbooks and compare with torch: `make test` runs these with a second seed
pytestmark = pytest.mark.recompute

RTOL = 1e-12
# Edits tried on the written (Adam) sheet: an lr; a switch to SGD; to momentum with weight decay.
EDITS = {"adam, lr 0.02": UnrolledHyper(opt="adam", lr=0.02),
         "sgd": UnrolledHyper(opt="sgd", lr=4.0),
         "momentum, weight decay": UnrolledHyper(opt="momentum", lr=0.3, weight_decay=0.01)}


@pytest.fixture(scope="module")
def rec(ratings, seed):
    return unrolled_records(ratings, seed=seed)


@pytest.fixture(scope="module")
def layout(rec):
    return UnrolledLayout(*rec.slice.ratings.shape, rec.n_factors, rec.steps)


@pytest.fixture(scope="module")
def build(rec):
    return lambda b: write_unrolled_sheet(b, rec)


def trajectory(values: dict, L: UnrolledLayout):
    """(loss (K,), {param: (K + 1, ...)}) as the sheet computed them: each band's MSE, and the
    start then every band's updated parameters."""
    loss = np.array([values[cell(L.band(k), L.loss_col)] for k in range(1, L.steps + 1)])
    params = {p: [] for p in SLICE_PARAMS}
    for k in range(L.steps + 1):
        step = {p: {} for p in SLICE_PARAMS}
        for p, idx, r, c in L.frame(k, "updated").elements():
            step[p][idx] = values[cell(r, c)]
        for p, got in step.items():
            shape = tuple(np.max(list(got), axis=0) + 1)
            block = np.zeros(shape)
            for idx, v in got.items():
                block[idx] = v
            params[p].append(block)
    return loss, {p: np.stack(v) for p, v in params.items()}


def loss_size(run) -> np.ndarray:
    """(steps,) what the MSE's rounding scales with: mean(e^2) moves by 2 mean(|e| de), and an
    error e = pred - y keeps the rounding of y and pred, which nearly cancel."""
    y = np.nanmax(np.abs(run.slice.ratings))
    return 2 * np.sqrt(run.loss) * (y + np.nanmax(np.abs(run.pred), axis=(1, 2)))


def assert_follows(values: dict, L: UnrolledLayout, run) -> None:
    """Every band's MSE and every step's parameters are the run's, to RTOL of their sizes."""
    loss, params = trajectory(values, L)
    assert_close(loss, run.loss, scale=loss_size(run))
    for p in SLICE_PARAMS:  # a parameter is its start minus every update so far
        assert_close(params[p], run.value[p], scale=running_size(run.value[p]), err_msg=p)


def test_every_band_recomputes_to_torchs_run(rec, layout, recomputed):
    report = verify(recomputed, rtol=RTOL)
    assert report.ok, report.failures[:5]
    assert recomputed.errors == []
    U, M = rec.slice.ratings.shape
    elements = (U + M) * (rec.n_factors + 1)
    # per step: step, 2 bias corrections, MSE, valid MSE; prediction, error and d loss/dx at
    # each rating (0 where held out); per element gradient, Adam's two states and the update
    # (the parameters copy the last band); the loss table's two MSEs
    per_step = 5 + 3 * rec.slice.n + elements * 4 + 2
    # n, n_valid; first and last MSE, train and valid RMSE
    assert report.sheets[SHEET].checked == rec.steps * per_step + 2 + 4
    assert report.sheets[SHEET].max_rel_err <= RTOL
    values = recomputed.values[SHEET]
    assert_follows(values, layout, rec)
    assert len(recomputed.formulas[SHEET]) == layout.formulas
    first, last = (values[cell(*layout.summary(s))] for s in ("first MSE", "last MSE"))
    assert_close([first, last], rec.loss[[0, -1]], scale=loss_size(rec)[[0, -1]])
    assert values[cell(*layout.summary("torch's last MSE"))] == rec.loss[-1]
    assert rec.loss[-1] < rec.loss[0] / 10  # Adam at its default lr learns visibly in K steps
    assert_valid(values, layout, rec)
    assert rec.valid_loss[-1] > 2 * rec.loss[-1]  # held-out ratings: the model overfits the rest


def valid_size(run) -> np.ndarray:
    """loss_size for the held-out ratings' MSE."""
    y = np.nanmax(np.abs(run.slice.ratings))
    return 2 * np.sqrt(run.valid_loss) * (y + np.nanmax(np.abs(run.pred), axis=(1, 2)))


def assert_valid(values: dict, L: UnrolledLayout, run) -> None:
    """The loss table's valid MSE at every step and the summary's train and valid RMSE are the
    run's (RMSE: the square root halves the MSE's relative rounding)."""
    table = [values[cell(L.table_row(k), L.side_col + 2)] for k in range(1, L.steps + 1)]
    assert_close(table, run.valid_loss, scale=valid_size(run))
    rmse = [values[cell(*L.summary(name))] for name in ("train RMSE", "valid RMSE")]
    assert_close(rmse, np.sqrt([run.loss[-1], run.valid_loss[-1]]),
                 scale=[loss_size(run)[-1] / np.sqrt(run.loss[-1]),
                        valid_size(run)[-1] / np.sqrt(run.valid_loss[-1])])


@pytest.fixture(scope="module")
def edited(book, engine, layout, tmp_path_factory, save_exactly):
    """The sheet recomputed after each of EDITS, made with openpyxl on the written workbook."""
    wb = openpyxl.load_workbook(book)
    ws = wb[SHEET]
    out = {}
    for name, hyper in EDITS.items():
        for setting, value in (("optimizer", hyper.opt), ("lr", hyper.lr),
                               ("weight_decay", hyper.weight_decay)):
            r, c = layout.setting(setting)
            ws.cell(r + 1, c + 1).value = value
        path = save_exactly(wb, tmp_path_factory.mktemp("edited") / "edited.xlsx")
        out[name] = recalc(path, engine=engine)
    return out


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edited_lr_or_optimizer_retrains_like_a_fresh_torch_run(edit, ratings, rec, layout,
                                                                   edited):
    after = edited[edit]
    assert after.errors == []
    fresh = unrolled_records(ratings, hyper=EDITS[edit], seed=rec.seed)
    assert_follows(after.values[SHEET], layout, fresh)
    assert not np.allclose(fresh.loss, rec.loss, rtol=1e-6)  # a different trajectory
    # the summary and the loss table follow; torch's numbers as written stay
    values = after.values[SHEET]
    assert_close(values[cell(*layout.summary("last MSE"))], fresh.loss[-1],
                 scale=loss_size(fresh)[-1])
    assert values[cell(*layout.summary("torch's last MSE"))] == rec.loss[-1]
    assert_valid(values, layout, fresh)
    assert not np.allclose(fresh.valid_loss, rec.valid_loss, rtol=1e-6)
    table = [values[cell(layout.table_row(k), layout.side_col + 1)]
             for k in range(1, layout.steps + 1)]
    assert_close(table, fresh.loss, scale=loss_size(fresh))


@pytest.fixture(scope="module")
def small(ratings, engine, tmp_path_factory, seed):
    """A small slice with momentum and weight decay, written and recomputed."""
    rec = unrolled_records(ratings, steps=4, n_users=6, n_movies=7, n_factors=1,
                           hyper=UnrolledHyper(opt="momentum", weight_decay=0.01), seed=seed)
    path = write_workbook(tmp_path_factory.mktemp("small") / "small.xlsx",
                          lambda b: write_unrolled_sheet(b, rec))
    return rec, path, recalc(path, engine=engine)


def test_a_small_slice_with_momentum_and_weight_decay_verifies(small):
    rec, _, after = small
    assert set(rec.state) == {"momentum_buffer"}
    np.testing.assert_array_equal(rec.grad_used["u_weight"],
                                  rec.grad["u_weight"] + 0.01 * rec.value["u_weight"][:-1])
    report = verify(after, rtol=RTOL)
    assert report.ok, report.failures[:5]
    assert after.errors == []
    assert_follows(after.values[SHEET], UnrolledLayout(6, 7, 1, 4), rec)


def test_an_unknown_optimizer_shows_as_an_error_not_as_adam(small, engine, tmp_path):
    rec, path, _ = small
    L = UnrolledLayout(6, 7, 1, rec.steps)
    wb = openpyxl.load_workbook(path)
    r, c = L.setting("optimizer")
    wb[SHEET].cell(r + 1, c + 1).value = "rmsprop"
    wb.save(tmp_path / "rmsprop.xlsx")
    after = recalc(tmp_path / "rmsprop.xlsx", engine=engine)
    bad = {ref for sheet, ref, text in after.errors if sheet == SHEET and text == "#N/A"}
    assert {cell(r, c) for _, _, r, c in L.frame(1, "updated").elements()} <= bad


_REF = re.compile(r"(\$?)([A-Z]{1,3})(\$?)(\d+)")


def test_every_band_is_the_same_shape_one_band_lower(book, layout):
    """Band k's cells, with each reference into the bands made relative to band k's top, are
    band 1's: the same labels, the same formulas, at the same positions."""
    ws = openpyxl.load_workbook(book, read_only=True)[SHEET]
    # the same for all: the ratings, and the held-out grid inside the start
    ratings = range(layout.title_row, layout.start.pred_row + layout.n_users)
    rows = list(ws.iter_rows(min_row=1, max_row=layout.band(layout.steps + 1),
                             max_col=layout.side_col, values_only=True))

    def band(k: int) -> dict:
        top, out = layout.band(k), {}
        for dr, row in enumerate(rows[top:top + layout.band_rows]):
            for c, v in enumerate(row):
                if isinstance(v, str) and v.startswith("="):
                    v = _REF.sub(lambda m: m[0] if int(m[4]) - 1 in ratings else
                                 f"{m[1]}{m[2]}{m[3]}<{int(m[4]) - 1 - top}>", v)
                if v is not None:
                    out[(dr, c)] = v
        return out

    first = band(1)
    assert first[(0, 0)] == "step" and first[(0, 1)] == f"=B<{-layout.band_rows}>+1"
    for k in (2, layout.steps // 2, layout.steps):
        assert band(k) == first
    # the parameters are the previous band's updated ones, cell for cell
    for (_, idx, r, c), (_, _, r0, c0) in zip(layout.frame(5, "params").elements(),
                                              layout.frame(4, "updated").elements()):
        assert rows[r][c] == f"={cell(r0, c0)}"
    # band 0: torch's start (numbers, below the ratings), copied, and zeros for every state
    for name in FRAMES[2:]:
        start = [rows[r][c] for _, _, r, c in layout.frame(0, name).elements()]
        if name == "updated":
            assert start == [f"={cell(r, c)}" for _, _, r, c in layout.start.elements()]
        else:
            assert set(start) == {0}
    assert all(isinstance(rows[r][c], float) for _, _, r, c in layout.start.elements())
    assert layout.start.top < 3 * layout.n_users  # near the top, as the chart and settings


def test_records_are_torch_optims_run_from_the_bias_sheets_start(ratings, rec):
    assert (rec.steps, rec.n_factors, rec.hyper) == (STEPS, N_FACTORS, settings(UnrolledHyper()))
    start = lesson_records(ratings, n_factors=N_FACTORS, untrained=True, seed=rec.seed).bias
    for p in SLICE_PARAMS:
        np.testing.assert_array_equal(rec.value[p][0], getattr(start, p))
    # an independent loop: the model's own forward pass and torch.optim.Adam's defaults
    s = take_slice(ratings, 15, 15)
    torch.manual_seed(rec.seed)
    model = EmbeddingDotBias(*s.shape, N_FACTORS, y_range=ratings.rating_range).double()
    opt = torch.optim.Adam(model.parameters(), lr=rec.hyper.lr)
    train = ~s.long_valid  # the held-out ratings are never trained on
    users, movies, y = (torch.from_numpy(a[train]) for a in (s.rows, s.cols, s.long_ratings))
    losses = []
    for _ in range(rec.steps):
        loss = F.mse_loss(model(users, movies), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    np.testing.assert_array_equal(rec.loss, losses)  # the same forward pass and optimizer
    np.testing.assert_array_equal(rec.value["u_weight"][-1], model.u_weight.weight.detach().numpy())
    # the recorded grids are the loss's own pieces
    rated, held = ~np.isnan(rec.slice.ratings), rec.slice.valid
    assert 0.15 < held.sum() / rated.sum() < 0.25 and not (held & ~rated).any()
    assert_close((rec.err ** 2)[:, rec.slice.train].mean(1), rec.loss)  # positive terms
    assert_close((rec.err ** 2)[:, held].mean(1), rec.valid_loss)
    assert np.all(np.isnan(rec.pred[:, ~rated])) and not np.isnan(rec.pred[:, rated]).any()
    assert np.all(rec.dloss_dx[:, ~rated | held] == 0) and np.all(rec.dloss_dx[:, ~held & rated])
    assert set(rec.state) == {"exp_avg", "exp_avg_sq"}
    assert rec.step.tolist() == list(range(1, rec.steps + 1))
    np.testing.assert_array_equal(rec.grad_used["i_bias"], rec.grad["i_bias"])  # no decay


def test_held_out_ratings_are_marked_and_the_loss_counts_only_the_rest(book, rec, layout):
    wb = openpyxl.load_workbook(book)
    ws = wb[SHEET]
    g = layout.grid
    for i, j in zip(*np.nonzero(~np.isnan(rec.slice.ratings))):
        rating = ws.cell(layout.rating_row + i + 1, g.grid_col + j + 1)
        mark = ws.cell(layout.start.pred_row + i + 1, g.grid_col + j + 1)
        held = bool(rec.slice.valid[i, j])
        assert rating.value == rec.slice.ratings[i, j] and mark.value == int(held)
        assert (rating.fill.fgColor.rgb[-6:] == "D9D9D9") == held == (rating.border.left.style
                                                                      is not None)
    names = {n: d.attr_text for n, d in ws.defined_names.items()}
    start = layout.start
    assert names["held_out"] == "train!" + area(start.pred_row, g.grid_col, start.pred_row
                                                + layout.n_users - 1, g.last_col, absolute="rc")
    band = layout.band(1)
    mse = ws.cell(band + 1, layout.loss_col + 1).value
    assert "1-held_out" in mse and mse.endswith("/n")
    assert ws.cell(band + 1, layout.valid_col + 1).value.endswith(",held_out)/n_valid")
    assert ws.freeze_panes == cell(1, g.grid_col)


def test_bad_settings_say_why(ratings):
    with pytest.raises(CfxlError, match="unknown optimizer 'rmsprop'"):
        settings(UnrolledHyper(opt="rmsprop"))
    with pytest.raises(CfxlError, match="lr must be positive"):
        settings(UnrolledHyper(lr=0.0))
    with pytest.raises(CfxlError, match="steps >= 1"):
        unrolled_records(ratings, steps=0)
