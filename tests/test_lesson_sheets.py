"""The lesson's live sheets: LibreOffice recomputes every prediction, error, RMSE and objective to
torch's value, at torch's start on the crosstab sheets and trained on their views; an edited
factor or wd moves exactly what torch says it moves, on dotprod and on the views linked to it;
Solver is set up; held-out ratings are marked; titles stay text; the records are plain numpy."""

import dataclasses
import re

import numpy as np
import openpyxl
import pytest
import torch
from openpyxl.utils import get_column_letter

from tolerance import assert_close

from cfxl.records.lesson import lesson_records
from cfxl.records.types.lesson import LessonRecords
from cfxl.engine.models import EmbeddingDot, EmbeddingDotBias, EmbeddingNet
from cfxl.proof.recalc import recalc
from cfxl.proof.verify import verify
from cfxl.sheets.grid import SUMMARY
from cfxl.sheets.refs import area, cell
from cfxl.sheets.lesson import SOLVER, grid_layout, write_lesson_sheets

# recompute workbooks and compare with torch: `make test` runs these with a second seed
pytestmark = pytest.mark.recompute

SHEETS = ["dotprod", "dotprod_trained", "bias", "bias_trained", "movielens_emb",
          "movielens_1hot", "nn", "tensors"]
HOSTILE = "=Equals (1995)"  # among the sample's 15 most rated movies


@pytest.fixture(scope="module")
def rec(ratings, seed):
    return lesson_records(ratings, seed=seed)


@pytest.fixture(scope="module")
def build(rec):
    return lambda b: write_lesson_sheets(b, rec)


@pytest.fixture(scope="module")
def opened(book):
    """The workbook as openpyxl reads it, for tests that only look."""
    return openpyxl.load_workbook(book)


def expected_checks(rec: LessonRecords) -> dict[str, int]:
    """Verified cells per sheet: every formula torch computed (MATCH positions are not torch's)."""
    n, (n_users, n_movies), k, nh = len(rec.slice.rows), rec.slice.ratings.shape, rec.n_factors, rec.nh
    grid = 2 * n + 3  # a prediction and an error per rating; train and valid RMSE, objective
    links = (n_users + n_movies) * k  # the tables: formulas pointing at dotprod's factors
    fit = 3 * n + 2  # a prediction, an error and its square per rating; train and valid RMSE
    return {"dotprod": grid, "dotprod_trained": grid, "bias": grid, "bias_trained": grid,
            "movielens_emb": links + n * 2 * k + fit,                      # looked-up embeddings
            "movielens_1hot": links + n * (n_users + n_movies) + n * 2 * k + fit,  # one-hot, products
            "nn": n * 2 * k + n * nh + n + fit + 1,                  # x, hidden, z; the objective
            "tensors": 8}


def test_every_prediction_error_and_loss_recomputes_to_torchs_value(rec, recomputed):
    report = verify(recomputed, rtol=1e-12)
    assert report.ok, report.failures[:5]
    assert {s: c.checked for s, c in report.sheets.items()} == expected_checks(rec)
    assert all(c.max_rel_err <= 1e-12 for c in report.sheets.values())
    assert recomputed.errors == []
    assert list(recomputed.values)[:len(SHEETS)] == SHEETS


def summary(L) -> dict[str, str]:
    return {label: cell(*L.summary(label)) for label in SUMMARY}


def test_errors_split_into_training_and_held_out_grids_and_the_rmses_skip_the_blanks(
        rec, recomputed, opened):
    L = grid_layout(rec, bias=False)
    values, formulas = recomputed.values["dotprod"], recomputed.formulas["dotprod"]
    s = rec.slice
    for (i, j), unrated, held_out in zip(np.ndindex(s.shape), np.isnan(s.ratings).ravel(),
                                         s.valid.ravel()):
        train_ref, valid_ref = (cell(r + i, L.grid_col + j) for r in (L.err_row, L.valid_row))
        if unrated:  # a formula that says "": a rating typed there later is a training one
            assert values[train_ref] == "" and train_ref in formulas
            assert values[cell(L.pred_row + i, L.grid_col + j)] == ""
        mine, other = (valid_ref, train_ref) if held_out else (train_ref, valid_ref)
        assert other not in formulas
        if not unrated:  # error = prediction - rating
            assert_close(values[mine], rec.dot.pred[i, j] - s.ratings[i, j],
                         scale=abs(rec.dot.pred[i, j]) + s.ratings[i, j])
    refs, torch_col = summary(L), L.torch_col
    assert values[refs["train RMSE"]] == pytest.approx(rec.dot.train_rmse, rel=1e-12)
    assert values[refs["valid RMSE"]] == pytest.approx(rec.dot.valid_rmse, rel=1e-12)
    assert values[refs["wd"]] == rec.dot.fit.weight_decay
    train_errors = area(L.err_row, L.grid_col, L.err_row + L.n_users - 1, L.last_col)
    assert opened["dotprod"][refs["objective"]].value.startswith(f"=SUMSQ({train_errors})/COUNT(")
    # torch's trained model beside the start's numbers: plain numbers, the _trained view's
    trained = recomputed.values["dotprod_trained"]
    for label, value in (("train RMSE", rec.dot_trained.train_rmse),
                         ("valid RMSE", rec.dot_trained.valid_rmse),
                         ("objective", rec.dot_trained.objective)):
        ref = cell(L.summary(label)[0], torch_col)
        assert ref not in formulas and values[ref] == value
        assert trained[refs[label]] == pytest.approx(value, rel=1e-12)
    assert rec.dot.train_rmse > 3 > 1 > rec.dot_trained.train_rmse  # the start predicts near 0


def test_the_bias_sheet_is_the_models_sigmoid_range(rec, ratings, recomputed):
    L = grid_layout(rec, bias=True)
    for name, g in (("bias", rec.bias), ("bias_trained", rec.bias_trained)):
        values = recomputed.values[name]
        assert (values["C5"], values["C6"]) == ratings.rating_range == g.y_range
        preds = np.array([values[cell(L.pred_row + i, L.grid_col + j)]
                          for i, j in zip(rec.slice.rows, rec.slice.cols)])
        assert ((preds > rec.slice.y_range[0]) & (preds < rec.slice.y_range[1])).all()
        np.testing.assert_allclose(preds, g.pred[rec.slice.rows, rec.slice.cols], rtol=1e-12)


def test_solver_is_set_up_over_exactly_the_yellow_parameters(rec, opened):
    for name in ("dotprod", "bias"):
        L, ws = grid_layout(rec, bias=name == "bias"), opened[name]
        names = ws.defined_names
        assert set(names) == {"solver_opt", "solver_adj", *SOLVER}
        assert all(d.hidden and d.localSheetId == opened.sheetnames.index(name)
                   for d in names.values())
        assert not opened.defined_names  # none of them global
        assert names["solver_opt"].attr_text == f"{name}!{cell(*L.summary('objective'), absolute='rc')}"
        assert {k: names[k].attr_text for k in ("solver_typ", "solver_eng", "solver_neg")} == {
            "solver_typ": "2", "solver_eng": "1", "solver_neg": "2"}
        adjusted = set()
        for ref in names["solver_adj"].attr_text.split(","):
            sheet, block = ref.split("!")
            assert sheet == name
            adjusted |= {c.coordinate for row in ws[block.replace("$", "")] for c in row}
        yellow = {c.coordinate for row in ws.iter_rows() for c in row
                  if c.fill.fgColor.rgb == "FFFFF2CC" and c.coordinate != cell(*L.summary("wd"))}
        assert adjusted == yellow == {cell(r, c) for _, _, r, c in L.elements()}
        assert "To train: Data > Solver > Solve" in ws.cell(L.title_row + 1, 1).value
    assert all(not opened[n].defined_names for n in SHEETS if n not in ("dotprod", "bias"))


def test_held_out_ratings_are_grey_and_bordered_everywhere(rec, opened):
    s, L = rec.slice, grid_layout(rec, bias=False)
    assert 0.15 < s.n_valid / s.n < 0.25
    for name in ("dotprod", "bias", "dotprod_trained"):
        ws = opened[name]
        for i, j in zip(s.rows, s.cols):
            c = ws.cell(L.rating_row + i + 1, L.grid_col + j + 1)
            marked = c.fill.fgColor.rgb == "FFD9D9D9" and c.border.left.style == "thin"
            assert marked == s.valid[i, j], (name, c.coordinate)
    for name in ("movielens_emb", "movielens_1hot", "nn"):
        ws = opened[name]
        col = _col_headed(ws, "valid") + 1
        flags = [ws.cell(4 + n, col).value for n in range(s.n)]
        assert flags == s.long_valid.astype(int).tolist()
        fills = [ws.cell(4 + n, col - 1).fill.fgColor.rgb == "FFD9D9D9" for n in range(s.n)]
        assert fills == s.long_valid.tolist()


def test_validation_ranks_the_models_as_the_lesson_does(rec):
    dot, bias, net = rec.dot_trained, rec.bias_trained, rec.net
    assert bias.valid_rmse < dot.valid_rmse and net.valid_rmse < dot.valid_rmse
    assert abs(net.valid_rmse - bias.valid_rmse) < 0.1  # the net about as good as the bias model
    s = rec.slice
    constant = np.sqrt(np.mean((s.ratings[s.valid] - s.ratings[s.train].mean()) ** 2))  # 1.097
    for g in (dot, bias, net):
        assert g.train_rmse < g.valid_rmse  # fitted to its training ratings
    # on ratings as noisy as MovieLens', the biases beat predicting the training mean; the dot
    # model's factors alone, from 163 ratings, do not (about 1.11, the lesson's worst)
    assert bias.valid_rmse < constant - 0.04 and net.valid_rmse < constant - 0.04
    assert bias.train_rmse > 0.25  # weight decay keeps it from memorising its training ratings


def _block(ws, row: int, col: int, n_rows: int, n_cols: int) -> np.ndarray:
    """Numbers of a block of an openpyxl sheet, 0-based top-left corner."""
    return np.array([[ws.cell(row + 1 + i, col + 1 + j).value for j in range(n_cols)]
                     for i in range(n_rows)], dtype=np.float64)


def _row_labelled(ws, label: str, col: int = 1) -> int:
    """0-based row of the first cell in column col (1-based) holding label."""
    return next(c.row - 1 for c in ws[get_column_letter(col)] if c.value == label)


def _col_headed(ws, label: str, row: int = 3) -> int:
    """0-based column of the header label in row 3."""
    return next(c.column - 1 for c in ws[row] if c.value == label)


def _load(model, params: dict) -> torch.nn.Module:
    """The model in float64 with the given parameters, in eval mode."""
    model = model.to(torch.float64)
    with torch.no_grad():
        for name, value in params.items():
            p = model.get_parameter(name)
            p.copy_(torch.from_numpy(value).reshape(p.shape))
    return model.eval()


def _fit(model, rec, wd: float) -> dict:
    """torch's predictions, errors, RMSEs and objective for a model over the slice's ratings."""
    s = rec.slice
    users, movies, y = (torch.from_numpy(a) for a in (s.rows, s.cols, s.long_ratings))
    train = ~s.long_valid
    with torch.no_grad():
        pred = model(users, movies)
        err = (pred - y).numpy()
        sumsq = float(sum(p.square().sum() for p in model.parameters()))
    pred = pred.numpy()
    size = float(np.abs(y.numpy()).max() + np.abs(pred).max())  # what an error's rounding scales
    return {"pred": pred, "size": size,
            "train RMSE": float(np.sqrt(np.mean(err[train] ** 2))),
            "valid RMSE": float(np.sqrt(np.mean(err[~train] ** 2))),
            "objective": float(np.mean(err[train] ** 2) + wd * sumsq),
            "objective size": size ** 2 + wd * sumsq}


def test_an_edited_factor_or_wd_moves_dotprod_and_its_views_as_torch_says(
        rec, book, recomputed, engine, tmp_path, save_exactly):
    L = grid_layout(rec, bias=False)
    U, M, k, nh = *rec.slice.ratings.shape, rec.n_factors, rec.nh
    user, wd = 3, 0.05  # one user's first factor and the weight decay on dotprod
    wb = openpyxl.load_workbook(book)
    dot, nn_ = wb["dotprod"], wb["nn"]
    dot.cell(L.pred_row + user + 1, L.uf_col + 1).value += 0.75
    dot[cell(*L.summary("wd"))].value = wd
    h1 = _row_labelled(nn_, "h1")
    nn_.cell(h1 + 1, 2).value -= 0.5
    edited = save_exactly(wb, tmp_path / "edited.xlsx")  # every other number bit for bit
    after = recalc(edited, engine=engine)
    assert after.errors == []

    # dotprod: the parameters as the edited workbook holds them, through torch's EmbeddingDot
    wb = openpyxl.load_workbook(edited)
    ws = wb["dotprod"]
    model = _load(EmbeddingDot(U, M, k), {
        "u_weight.weight": _block(ws, L.pred_row, L.uf_col, U, k),
        "i_weight.weight": _block(ws, L.mf_row, L.grid_col, k, M).T})
    want = _fit(model, rec, wd)
    u, m = (w.weight.detach().numpy() for w in (model.u_weight, model.i_weight))
    terms = (np.abs(u[rec.slice.rows]) * np.abs(m[rec.slice.cols])).sum(1)  # (n,) what it sums
    before, now = recomputed.values["dotprod"], after.values["dotprod"]
    refs = [cell(L.pred_row + i, L.grid_col + j) for i, j in zip(rec.slice.rows, rec.slice.cols)]
    assert_close([now[r] for r in refs], want["pred"], scale=terms)  # a dot product may cancel
    mine = rec.slice.rows == user
    assert all(now[r] != before[r] for r, m in zip(refs, mine) if m) and mine.sum() > 0
    assert all(now[r] == before[r] for r, m in zip(refs, mine) if not m)
    for label, ref in summary(L).items():
        if label != "wd":
            assert_close(now[ref], want[label], scale=want["objective size" if label ==
                                                            "objective" else "size"])
            assert now[ref] != before[ref]

    # the views of dotprod's model follow it: that user's predictions and both RMSEs
    for sheet in ("movielens_emb", "movielens_1hot"):
        ws, values = wb[sheet], after.values[sheet]
        column = {label: get_column_letter(_col_headed(ws, label) + 1)
                  for label in ("prediction", "this sheet")}
        refs = [f"{column['prediction']}{4 + n}" for n in range(rec.slice.n)]
        got = np.array([values[r] for r in refs])
        assert_close(got[mine], want["pred"][mine], scale=terms[mine])
        assert all((values[r] == recomputed.values[sheet][r]) != m for r, m in zip(refs, mine))
        for r, label in ((4, "train RMSE"), (5, "valid RMSE")):
            assert_close(values[f"{column['this sheet']}{r}"], want[label], scale=want["size"])
    for sheet in ("bias", "dotprod_trained", "bias_trained"):  # other models: untouched
        assert after.values[sheet] == recomputed.values[sheet]

    # nn: every parameter read back from the sheet, through torch's EmbeddingNet
    ws = wb["nn"]
    movie0 = _row_labelled(ws, "movieId", col=2) + 1
    lin2, lo = _row_labelled(ws, "out"), _row_labelled(ws, "lo")
    net = EmbeddingNet(U, M, k, nh=nh, y_range=rec.slice.y_range)
    assert net.y_range == (ws.cell(lo + 1, 2).value, ws.cell(lo + 2, 2).value)
    net = _load(net, {
        "u_weight.weight": _block(ws, 3, 2, U, k), "i_weight.weight": _block(ws, movie0, 2, M, k),
        "lin1.weight": _block(ws, h1, 1, nh, 2 * k), "lin1.bias": _block(ws, h1, 1 + 2 * k, nh, 1),
        "lin2.weight": _block(ws, lin2, 1, 1, nh), "lin2.bias": _block(ws, lin2, 1 + nh, 1, 1)})
    want = _fit(net, rec, rec.net.fit.weight_decay)
    users, movies = torch.from_numpy(rec.slice.rows), torch.from_numpy(rec.slice.cols)
    with torch.no_grad():
        x = torch.cat([net.u_weight(users), net.i_weight(movies)], dim=1)
        hidden = torch.relu(net.lin1(x)).numpy()
    before, now = recomputed.values["nn"], after.values["nn"]
    rows = range(4, 4 + rec.slice.n)
    column = {label: get_column_letter(_col_headed(ws, label) + 1)
              for label in ["prediction", "this sheet"] + [f"h{h + 1}" for h in range(nh)]}
    got = np.array([now[f"{column['prediction']}{r}"] for r in rows])
    lo, hi = net.y_range
    assert_close(got, want["pred"], scale=abs(hi - lo) + abs(lo))  # sigmoid(z) * (hi - lo) + lo
    assert not np.array_equal(got, rec.net.pred)
    h1_now = np.array([now[f"{column['h1']}{r}"] for r in rows])
    w1, b1 = net.lin1.weight.detach().numpy(), net.lin1.bias.detach().numpy()
    sizes = np.abs(x.numpy()) @ np.abs(w1).T + np.abs(b1)  # (n, nh) what each unit sums
    assert_close(h1_now, hidden[:, 0], scale=sizes[:, 0])
    for h in range(1, nh):  # the other hidden units do not see lin1's first row
        c = column[f"h{h + 1}"]
        assert [now[f"{c}{r}"] for r in rows] == [before[f"{c}{r}"] for r in rows]
    for r, label in ((4, "train RMSE"), (5, "valid RMSE"), (7, "objective")):
        assert_close(now[f"{column['this sheet']}{r}"], want[label],
                     scale=want["objective size" if label == "objective" else "size"])


def test_titles_are_text_never_formulas(rec, opened, recomputed):
    j = rec.slice.titles.index(HOSTILE)
    L = grid_layout(rec, bias=False)
    wb = opened
    found = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            found += [(ws.title, c) for c in row if c.value == HOSTILE]
    assert {s for s, _ in found} == set(SHEETS[:6])
    assert all(c.data_type == "s" for _, c in found)
    ref = cell(L.title_row, L.grid_col + j)
    assert wb["dotprod"][ref].value == HOSTILE
    assert recomputed.values["dotprod"][ref] == HOSTILE
    assert ref not in recomputed.formulas["dotprod"]


def test_parameters_are_editable_numbers_and_the_views_formulas(rec, opened):
    wb = opened
    L = grid_layout(rec, bias=True)
    ws = wb["bias"]
    params = [ws.cell(L.pred_row + 1, c + 1) for c in range(L.ub_col, L.id_col)]
    params += [ws.cell(r + 1, L.grid_col + 1) for r in range(L.mb_row, L.head_row)]
    assert all(c.data_type == "n" and c.fill.fgColor.rgb.endswith("FFF2CC") for c in params)
    assert ws.cell(L.pred_row + 1, L.grid_col + 1).value.startswith('=IF(H4="","",1/(1+EXP(-(MMULT(')
    D = grid_layout(rec, bias=False)
    for sheet in ("movielens_emb", "movielens_1hot"):  # one model: dotprod's cells, not yellow
        table = wb[sheet]
        assert table["C4"].value == f"=dotprod!{cell(D.pred_row, D.uf_col)}"
        assert table["G22"].value == f"=dotprod!{cell(D.mf_row + 4, D.grid_col)}"
        assert not any(table.cell(r, c).fill.fgColor.rgb.endswith("FFF2CC")
                       for r in range(4, 37) for c in range(3, 8))
    one_hot = wb["movielens_1hot"]
    arrays = [c for row in one_hot.iter_rows(min_row=4, max_row=4) for c in row
              if isinstance(c.value, openpyxl.worksheet.formula.ArrayFormula)]
    assert [a.value.ref for a in arrays] == ["AR4:AV207", "AW4:BA207"]
    assert all(re.fullmatch(r"=MMULT\(\w+4:\w+207,\$C\$\d+:\$G\$\d+\)", a.value.text) for a in arrays)
    assert {name: wb[name].freeze_panes for name in SHEETS[:7]} == {
        "dotprod": "H4", "dotprod_trained": "H4", "bias": "H4", "bias_trained": "H4",
        "movielens_emb": "A4", "movielens_1hot": "A4", "nn": "A4"}


def test_untrained_records_are_the_start_alone(ratings, seed, rec):
    start = lesson_records(ratings, untrained=True, seed=seed)
    U, M, k = *start.slice.ratings.shape, start.n_factors
    assert start.untrained and start.dot_trained is None and start.bias_trained is None
    assert (0 <= start.dot.u_weight).all() and (start.dot.i_weight <= 0.05).all()
    assert (np.abs(start.bias.u_bias) <= 0.01).all() and (np.abs(start.net.i_weight) <= 0.01).all()
    torch.manual_seed(start.seed)
    fresh = EmbeddingDotBias(U, M, k, y_range=start.slice.y_range)
    init = fresh.u_weight.weight.detach().double().numpy()
    np.testing.assert_array_equal(start.bias.u_weight, init)  # float32's start, widened exactly
    for name in ("dot", "bias"):  # the crosstab sheets show the same start either way
        np.testing.assert_array_equal(getattr(start, name).u_weight, getattr(rec, name).u_weight)
    assert start.dot.train_rmse > 2  # factors near 0 predict near 0 for ratings of 0.5 to 5


def _leaves(obj):
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _leaves(getattr(obj, f.name))
    elif isinstance(obj, tuple):
        for item in obj:
            yield from _leaves(item)
    else:
        yield obj


def test_records_are_plain_numpy_from_torchs_forward_pass(rec, ratings, opened, seed):
    leaves = list(_leaves(rec))
    assert all(isinstance(x, (np.ndarray, float, int, str, bool, type(None))) for x in leaves)
    assert not any(isinstance(x, torch.Tensor) for x in leaves)
    arrays = [x for x in leaves if isinstance(x, np.ndarray)]
    assert all(a.dtype.kind in "fiub" for a in arrays)  # b: the held-out mask
    assert rec.long.pred.dtype == np.float64 and rec.net.hidden.dtype == np.float64
    L = grid_layout(rec, bias=False)  # the sheets hold the models' parameters bit for bit
    U, k = rec.dot.u_weight.shape
    for name, g in (("dotprod", rec.dot), ("dotprod_trained", rec.dot_trained)):
        assert np.array_equal(_block(opened[name], L.pred_row, L.uf_col, U, k), g.u_weight)
    assert np.array_equal(rec.long.user_act, rec.long.user_emb)  # a one-hot product is a lookup
    assert np.array_equal(rec.long.pred, rec.dot.pred[rec.slice.rows, rec.slice.cols])
    assert rec.long.train_rmse == rec.dot.train_rmse  # the same errors, summed in the same order
    assert rec.tensors.dot.tolist() == [6.0, 70.0]
    assert len(rec.slice.rows) == np.count_nonzero(~np.isnan(rec.slice.ratings)) == 204
    again = lesson_records(ratings, seed=seed)  # one seed: the same records
    assert np.array_equal(again.net.lin1_weight, rec.net.lin1_weight)
