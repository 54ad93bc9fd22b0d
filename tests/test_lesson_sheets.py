"""The lesson's live sheets: LibreOffice recomputes every prediction, error and loss to torch's
value, an edited parameter moves exactly the cells torch says it moves, titles stay text, and the
records that feed the sheets are plain numpy, trained or as initialised."""

import dataclasses
import re

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F
from openpyxl.utils import get_column_letter

from tolerance import assert_close

from cfxl.records.lesson import lesson_records
from cfxl.records.types.lesson import LessonRecords
from cfxl.engine.models import EmbeddingDot, EmbeddingDotBias, EmbeddingNet
from cfxl.proof.recalc import recalc
from cfxl.proof.verify import verify
from cfxl.sheets.refs import cell
from cfxl.sheets.lesson import grid_layout, write_lesson_sheets

# recompute workbooks and compare with torch: `make test` runs these with a second seed
pytestmark = pytest.mark.recompute

SHEETS = ["dotprod", "bias", "movielens_emb", "movielens_1hot", "nn", "tensors"]
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
    fit = 2 * n + 1  # a prediction and an error (or squared error) per rating, and the loss
    return {"dotprod": fit, "bias": fit,
            "movielens_emb": n * 2 * k + fit,                          # looked-up embeddings
            "movielens_1hot": n * (n_users + n_movies) + n * 2 * k + fit,  # one-hot, products
            "nn": n * 2 * k + n * nh + n + fit,                        # x, hidden, z
            "tensors": 8}


def test_every_prediction_error_and_loss_recomputes_to_torchs_value(rec, recomputed):
    report = verify(recomputed, rtol=1e-12)
    assert report.ok, report.failures[:5]
    assert {s: c.checked for s, c in report.sheets.items()} == expected_checks(rec)
    assert all(c.max_rel_err <= 1e-12 for c in report.sheets.values())
    assert recomputed.errors == []
    assert list(recomputed.values)[:6] == SHEETS


def test_unrated_cells_predict_blank_and_the_loss_skips_them(rec, recomputed):
    L = grid_layout(rec, bias=False)
    i, j = np.argwhere(np.isnan(rec.slice.ratings))[0]
    values = recomputed.values["dotprod"]
    for row in (L.pred_row, L.err_row):
        ref = cell(row + i, L.grid_col + j)
        assert ref in recomputed.formulas["dotprod"] and values[ref] == ""
    loss = values[cell(L.loss_row, L.last_col)]
    assert loss == pytest.approx(rec.dot.loss, rel=1e-12)
    torch_loss = cell(L.loss_row, L.torch_col)  # torch's, a plain number beside the formula
    assert torch_loss not in recomputed.formulas["dotprod"]
    assert values[torch_loss] == rec.dot.loss


def test_the_bias_sheet_is_the_models_sigmoid_range(rec, ratings, recomputed):
    L = grid_layout(rec, bias=True)
    values = recomputed.values["bias"]
    assert (values["C5"], values["C6"]) == ratings.rating_range == rec.bias.y_range
    preds = np.array([values[cell(L.pred_row + i, L.grid_col + j)] for i, j in zip(rec.slice.rows, rec.slice.cols)])
    assert ((preds > rec.slice.y_range[0]) & (preds < rec.slice.y_range[1])).all()
    np.testing.assert_allclose(preds, rec.bias.pred[rec.slice.rows, rec.slice.cols], rtol=1e-12)


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


def test_an_edited_parameter_moves_exactly_what_torch_moves(rec, book, recomputed, engine, tmp_path,
                                                           save_exactly):
    L = grid_layout(rec, bias=False)
    U, M, k, nh = *rec.slice.ratings.shape, rec.n_factors, rec.nh
    user = 3  # one user's first factor on dotprod; hidden unit h1's weight on u1 on nn
    wb = openpyxl.load_workbook(book)
    dot, nn_ = wb["dotprod"], wb["nn"]
    dot.cell(L.pred_row + user + 1, L.uf_col + 1).value += 0.75
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
    users, movies = torch.from_numpy(rec.slice.rows), torch.from_numpy(rec.slice.cols)
    y = torch.from_numpy(rec.slice.long_ratings)
    with torch.no_grad():
        pred = model(users, movies).numpy()
        terms = (model.u_weight(users) * model.i_weight(movies)).abs().sum(1).numpy()
        loss = float(F.mse_loss(model(users, movies), y).sqrt())
    before, now = recomputed.values["dotprod"], after.values["dotprod"]
    refs = [cell(L.pred_row + i, L.grid_col + j) for i, j in zip(rec.slice.rows, rec.slice.cols)]
    assert_close([now[r] for r in refs], pred, scale=terms)  # a dot product may cancel
    mine = rec.slice.rows == user
    assert all(now[r] != before[r] for r, m in zip(refs, mine) if m) and mine.sum() > 0
    assert all(now[r] == before[r] for r, m in zip(refs, mine) if not m)
    loss_ref = cell(L.loss_row, L.last_col)
    assert_close(now[loss_ref], loss, scale=np.abs(y.numpy()).max() + np.abs(pred).max())
    assert now[loss_ref] != before[loss_ref]
    for sheet in ("bias", "movielens_emb", "movielens_1hot"):  # each sheet has its own tables
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
    with torch.no_grad():
        x = torch.cat([net.u_weight(users), net.i_weight(movies)], dim=1)
        hidden = torch.relu(net.lin1(x)).numpy()
        pred = net(users, movies).numpy()
        rmse = float(F.mse_loss(net(users, movies), y).sqrt())
    before, now = recomputed.values["nn"], after.values["nn"]
    rows = range(4, 4 + len(rec.slice.rows))
    column = {label: get_column_letter(_col_headed(ws, label) + 1)
              for label in ["prediction", "RMSE"] + [f"h{h + 1}" for h in range(nh)]}
    got = np.array([now[f"{column['prediction']}{r}"] for r in rows])
    lo, hi = net.y_range
    assert_close(got, pred, scale=abs(hi - lo) + abs(lo))  # sigmoid(z) * (hi - lo) + lo
    assert not np.array_equal(got, rec.net.pred)
    h1_now = np.array([now[f"{column['h1']}{r}"] for r in rows])
    w1, b1 = net.lin1.weight.detach().numpy(), net.lin1.bias.detach().numpy()
    sizes = np.abs(x.numpy()) @ np.abs(w1).T + np.abs(b1)  # (n, nh) what each unit sums
    assert_close(h1_now, hidden[:, 0], scale=sizes[:, 0])
    for h in range(1, nh):  # the other hidden units do not see lin1's first row
        c = column[f"h{h + 1}"]
        assert [now[f"{c}{r}"] for r in rows] == [before[f"{c}{r}"] for r in rows]
    assert_close(now[f"{column['RMSE']}4"], rmse, scale=abs(hi - lo) + abs(lo))


def test_titles_are_text_never_formulas(rec, opened, recomputed):
    j = rec.slice.titles.index(HOSTILE)
    L = grid_layout(rec, bias=False)
    wb = opened
    found = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            found += [(ws.title, c) for c in row if c.value == HOSTILE]
    assert {s for s, _ in found} == {"dotprod", "bias", "movielens_emb", "movielens_1hot"}
    assert all(c.data_type == "s" for _, c in found)
    ref = cell(L.title_row, L.grid_col + j)
    assert wb["dotprod"][ref].value == HOSTILE
    assert recomputed.values["dotprod"][ref] == HOSTILE
    assert ref not in recomputed.formulas["dotprod"]


def test_parameters_are_editable_numbers_and_outputs_formulas(rec, opened):
    wb = opened
    L = grid_layout(rec, bias=True)
    ws = wb["bias"]
    params = [ws.cell(L.pred_row + 1, c + 1) for c in range(L.ub_col, L.id_col)]
    params += [ws.cell(r + 1, L.grid_col + 1) for r in range(L.mb_row, L.head_row)]
    assert all(c.data_type == "n" and c.fill.fgColor.rgb.endswith("FFF2CC") for c in params)
    assert ws.cell(L.pred_row + 1, L.grid_col + 1).value.startswith('=IF(H4="","",1/(1+EXP(-(MMULT(')
    one_hot = wb["movielens_1hot"]
    arrays = [c for row in one_hot.iter_rows(min_row=4, max_row=4) for c in row
              if isinstance(c.value, openpyxl.worksheet.formula.ArrayFormula)]
    assert [a.value.ref for a in arrays] == ["AQ4:AU213", "AV4:AZ213"]
    assert all(re.fullmatch(r"=MMULT\(\w+4:\w+213,\$C\$\d+:\$G\$\d+\)", a.value.text) for a in arrays)
    assert {name: wb[name].freeze_panes for name in SHEETS[:5]} == {
        "dotprod": "H4", "bias": "H4", "movielens_emb": "A4", "movielens_1hot": "A4", "nn": "A4"}


def test_untrained_records_are_the_initial_parameters(ratings, seed):
    rec = lesson_records(ratings, untrained=True, seed=seed)
    U, M, k = *rec.slice.ratings.shape, rec.n_factors
    assert rec.untrained and rec.steps == 0
    assert (0 <= rec.dot.u_weight).all() and (rec.dot.i_weight <= 0.05).all()
    assert (np.abs(rec.bias.u_bias) <= 0.01).all() and (np.abs(rec.net.i_weight) <= 0.01).all()
    torch.manual_seed(rec.seed)
    fresh = EmbeddingDotBias(U, M, k, y_range=rec.slice.y_range)
    init = fresh.u_weight.weight.detach().double().numpy()
    np.testing.assert_array_equal(rec.bias.u_weight, init)  # float32's start, widened exactly
    assert rec.dot.loss > 2  # factors near 0 predict near 0 for ratings of 0.5 to 5


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
    assert all(a.dtype.kind in "fiu" for a in arrays)
    assert rec.long.pred.dtype == np.float64 and rec.net.hidden.dtype == np.float64
    L = grid_layout(rec, bias=False)  # the sheet holds the model's parameters bit for bit
    U, k = rec.dot.u_weight.shape
    assert np.array_equal(_block(opened["dotprod"], L.pred_row, L.uf_col, U, k), rec.dot.u_weight)
    assert rec.dot.loss < 0.3 and rec.bias.loss < 0.2 and rec.net.rmse < 0.7  # trained
    assert np.array_equal(rec.long.user_act, rec.long.user_emb)  # a one-hot product is a lookup
    assert np.array_equal(rec.long.pred, rec.dot.pred[rec.slice.rows, rec.slice.cols])
    assert rec.long.rmse == rec.dot.loss  # the same errors, summed in the same order
    assert rec.tensors.dot.tolist() == [6.0, 70.0]
    assert len(rec.slice.rows) == np.count_nonzero(~np.isnan(rec.slice.ratings)) == 210
    again = lesson_records(ratings, seed=seed)  # one seed: the same records
    assert np.array_equal(again.net.lin1_weight, rec.net.lin1_weight)
