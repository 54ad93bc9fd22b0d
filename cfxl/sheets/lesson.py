"""The lesson's collab_filter.xlsx sheets, live: every prediction, error and loss a formula.

Formulas over parameter cells a reader may edit, cached with torch's value and listed for
verification.

`write_lesson_sheets` writes, in order, `dotprod` and `bias` (the crosstab sheets, here) each
followed by its `_trained` view, then `movielens_emb`, `movielens_1hot` and `nn` (long format,
cfxl.sheets.lesson_lookup) and `tensors`. `dotprod` and `bias` hold torch's seeded start, with
Excel's Solver set up to train them (the hidden sheet-local `solver_*` names the lesson's
workbook has); the `_trained` views hold torch's trained parameters under the same formulas.
Geometry follows the lesson's (lesson-workbooks.md §2), one row lower for the note and one more
for the titles: the crosstab with movie ids across the top and user ids down column G, movie
factors as rows above the prediction grid, user factors as columns to its left, the errors at
the training and at the held-out ratings below, train and valid RMSE, wd and the objective at
the bottom right. `grid_layout` gives every position, for the README and for tests.
"""

from __future__ import annotations

import numpy as np

from cfxl.records.types.lesson import GridRecords, LessonRecords
from cfxl.sheets.book import Book
from cfxl.sheets.grid import (
    SUMMARY,
    GridLayout,
    fit_note,
    formula_or_blank,
    params_of,
    prediction_formula,
    rating_scale,
    write_crosstab,
    write_grid_ids,
    write_param_block,
    write_sigmoid_range,
)
from cfxl.sheets.lesson_lookup import write_emb_sheet, write_net_sheet, write_onehot_sheet
from cfxl.sheets.refs import area, cell, on_sheet
from cfxl.sheets.styles import error_scale

# Excel Solver's model, as the lesson's workbook stores it (lesson-workbooks.md §2.1) besides
# solver_opt and solver_adj: minimise (typ 2) with GRG Nonlinear (eng 1), variables free to be
# negative (neg 2), central derivatives (drv 2), its convergence and precision, no constraints.
SOLVER = {"solver_typ": "2", "solver_eng": "1", "solver_neg": "2", "solver_drv": "2",
          "solver_cvg": "0.0001", "solver_pre": "0.000001", "solver_num": "0"}


def grid_layout(rec: LessonRecords, *, bias: bool) -> GridLayout:
    n_users, n_movies = rec.slice.ratings.shape
    return GridLayout(n_users, n_movies, rec.n_factors, bias)


def write_lesson_sheets(book: Book, rec: LessonRecords) -> None:
    """The live sheets of the lesson, in the lesson's order of ideas."""
    for name, start, trained in (("dotprod", rec.dot, rec.dot_trained),
                                 ("bias", rec.bias, rec.bias_trained)):
        write_grid_sheet(book, rec, name, start, trained)
        if trained is not None:
            write_grid_sheet(book, rec, f"{name}_trained", trained, trained, view=True)
    write_emb_sheet(book, rec)
    write_onehot_sheet(book, rec)
    write_net_sheet(book, rec)
    write_tensors_sheet(book, rec)


def write_grid_sheet(book: Book, rec: LessonRecords, name: str, g: GridRecords,
                     trained: GridRecords | None, *, view: bool = False) -> None:
    """`dotprod` (g without biases) or `bias` at torch's start, with Solver set up; or (view)
    its `_trained` view: crosstab, parameters, predictions, errors, RMSEs and objective."""
    bias = g.u_bias is not None
    L = grid_layout(rec, bias=bias)
    s = rec.slice
    model = "EmbeddingDotBias" if bias else "EmbeddingDot"
    what = ("prediction = sigmoid(user factors . movie factors + user bias + movie bias) * "
            "(hi - lo) + lo, exactly as the model computes it" if bias
            else "prediction = user factors . movie factors (MMULT of a row and a column)")
    n_train = int(s.train.sum())
    state = (f"trained by torch in float64 ({fit_note(g.fit, n_train)})" if view
             else f"at torch's seeded start (seed {rec.seed})")
    if trained is not None and not view:
        state += f"; torch's trained values bottom right ({fit_note(trained.fit, n_train)})"
    ws = book.sheet(name, f"{model} {state}. {what}.")
    todo = (f"torch's trained parameters: edit any yellow cell and everything below follows; "
            f"compare with what Solver finds on {name.removesuffix('_trained')}." if view else
            "To train: Data > Solver > Solve (set up to minimise the objective, bottom right, "
            "over the yellow cells). Grey ratings are held out: watch valid RMSE.")
    ws.merge_range(L.title_row, 0, L.title_row, L.id_col - 1, todo, book.fmt("wrap"))

    write_crosstab(book, ws, L, s, mark_valid=True)
    book.text(ws, L.rating_row, L.id_col - 1, "userId", "right")
    if bias:
        lo, hi = write_sigmoid_range(book, ws, L, g.y_range)
    write_param_block(book, ws, L, s, params_of(g), "num_in")
    book.text(ws, L.mf_row - 1 - int(bias), L.uf_col,
              "movie factors: a column per movie; user factors: a row per user", "group")
    errors = _write_grid(book, ws, L, s, g, (lo, hi) if bias else None)

    objective, params = _write_summary(book, ws, L, s, g, errors, trained, view)
    if not view:
        write_solver(book, ws.name, objective, params)

    ws.set_column(L.ub_col, L.ub_col, 8 if bias else 2)
    ws.set_column(L.uf_col, L.id_col, 8)
    ws.set_column(L.grid_col, L.last_col, 10)
    ws.freeze_panes(L.rating_row, L.grid_col)


_SUMMARY_TEXT = {"train RMSE": "train RMSE", "valid RMSE": "valid RMSE (held-out ratings)",
                 "wd": "wd (weight decay)",
                 "objective": "objective: train MSE + wd * sum of squared parameters"}


def _write_summary(book: Book, ws, L: GridLayout, s, g: GridRecords, errors: tuple[str, str],
                   trained: GridRecords | None, view: bool) -> tuple[str, list[str]]:
    """train and valid RMSE, the wd cell and the objective (train MSE + wd * sum of squared
    parameters), torch's trained values beside them; returns the objective's reference and the
    parameter areas it penalises."""
    book.text(ws, L.loss_row, L.value_col, "this sheet", "head")
    for label in SUMMARY:
        book.text(ws, L.summary(label)[0], L.value_col - 1, _SUMMARY_TEXT[label], "right")
    train, valid = errors
    book.formula(ws, *L.summary("train RMSE"), f"=SQRT(SUMSQ({train})/COUNT({train}))",
                 g.train_rmse, "loss")
    if s.n_valid:
        book.formula(ws, *L.summary("valid RMSE"), f"=SQRT(SUMSQ({valid})/COUNT({valid}))",
                     g.valid_rmse, "loss")
    else:
        book.text(ws, *L.summary("valid RMSE"), "none held out")
    book.number(ws, *L.summary("wd"), g.fit.weight_decay, "hyper")
    wd = cell(*L.summary("wd"), absolute="rc")
    params = _param_areas(L)
    sumsq = "+".join(f"SUMSQ({p})" for p in params)
    book.formula(ws, *L.summary("objective"), f"=SUMSQ({train})/COUNT({train})+{wd}*({sumsq})",
                 g.objective, "loss")
    if trained is not None:
        book.text(ws, L.loss_row, L.torch_col, "torch" if view else "torch, trained", "head")
        values = {"train RMSE": trained.train_rmse, "valid RMSE": trained.valid_rmse,
                  "wd": trained.fit.weight_decay, "objective": trained.objective}
        for label, value in values.items():
            if np.isfinite(value):
                book.number(ws, L.summary(label)[0], L.torch_col, value, "torch")
    return cell(*L.summary("objective"), absolute="rc"), params


def _write_grid(book: Book, ws, L: GridLayout, s, g: GridRecords, y_range) -> tuple[str, str]:
    """The prediction grid and the error grids (training ratings, then the held-out ones);
    returns the two error grids' areas."""
    U, gc = L.n_users, L.grid_col
    book.text(ws, L.err_head_row, L.uf_col, "error = prediction - rating, training ratings",
              "group")
    book.text(ws, L.valid_head_row, L.uf_col, "error = prediction - rating, held-out ratings",
              "group")
    write_grid_ids(book, ws, L, s, L.err_head_row)
    write_grid_ids(book, ws, L, s, L.valid_head_row)
    unrated = np.isnan(s.ratings)  # the formulas give "" there: not in the loss
    # what each value cancels (cfxl.proof.verify's scale): a dot product its terms (the bias
    # sheet's sigmoid damps them), an error its rating and prediction
    terms = None if y_range else np.abs(g.u_weight) @ np.abs(g.i_weight).T  # (U, M)
    operands = np.abs(s.ratings) + np.abs(g.pred)  # (U, M)
    for i in range(U):
        pr = L.pred_row + i
        for j in range(L.n_movies):
            c = gc + j
            rating = cell(L.rating_row + i, c)
            formula_or_blank(book, ws, pr, c, prediction_formula(L, i, j, y_range),
                             np.nan if unrated[i, j] else g.pred[i, j],
                             scale=None if y_range else terms[i, j])
            er = (L.valid_row if s.valid[i, j] else L.err_row) + i  # unrated: a new training rating
            formula_or_blank(book, ws, er, c, f'=IF({rating}="","",{cell(pr, c)}-{rating})',
                             np.nan if unrated[i, j] else g.err[i, j], scale=operands[i, j])
    rating_scale(ws, area(L.pred_row, gc, L.pred_row + U - 1, L.last_col), s.y_range)
    lo, hi = s.y_range
    blocks = tuple(area(r, gc, r + U - 1, L.last_col) for r in (L.err_row, L.valid_row))
    for block in blocks:
        ws.conditional_format(block, error_scale(hi - lo))
    return blocks


def _param_areas(L: GridLayout) -> list[str]:
    """The parameter blocks, absolute: movie (bias row and) factors, user (bias and) factors."""
    return [area(L.mb_row, L.grid_col, L.mf_row + L.n_factors - 1, L.last_col, absolute="rc"),
            area(L.pred_row, L.ub_col if L.bias else L.uf_col, L.pred_row + L.n_users - 1,
                 L.id_col - 1, absolute="rc")]


def write_solver(book: Book, sheet: str, objective: str, variables: list[str]) -> None:
    """Excel Solver's model on a sheet: hidden sheet-local names, as Solver stores them, that
    minimise the objective cell by changing the variables' areas."""
    names = {"solver_opt": on_sheet(sheet, objective),
             "solver_adj": ",".join(on_sheet(sheet, v) for v in variables), **SOLVER}
    for name, value in names.items():
        if book.wb.define_name(f"{on_sheet(sheet, name)}", f"={value}") != 0:
            raise ValueError(f"XlsxWriter refused the name {sheet}!{name} = {value}")
        # XlsxWriter has no option for a hidden name; its own hidden ones (_FilterDatabase)
        # are this flag of the entry define_name just added
        book.wb.defined_names[-1][3] = True


def write_tensors_sheet(book: Book, rec: LessonRecords) -> None:
    """The notebook's first cell: a*b and (a*b).sum(1), DotProduct's forward, beside torch's."""
    t = rec.tensors
    ws = book.sheet("tensors", "DotProduct.forward(u, m) = (u*m).sum(1): a row-wise dot product, "
                               "the heart of every model here. Edit a or b (yellow); torch's "
                               "answer for the notebook's a and b is [6, 70].")
    top = 3  # row 4: first row of each 2x2 block
    blocks = {"a": 1, "b": 4, "a*b": 7}  # first column of each block
    heads = {**blocks, "(a*b).sum(1)": 10, "SUMPRODUCT(a row, b row)": 11,
             "torch: DotProduct()(a, b)": 12}
    for label, c in heads.items():
        book.text(ws, top - 1, c, label, "head")
    for i in range(2):
        book.text(ws, top + i, 0, f"row {i + 1}", "right")
        for j in range(2):
            book.number(ws, top + i, blocks["a"] + j, t.a[i, j], "num_in")
            book.number(ws, top + i, blocks["b"] + j, t.b[i, j], "num_in")
            a, b = cell(top + i, blocks["a"] + j), cell(top + i, blocks["b"] + j)
            book.formula(ws, top + i, blocks["a*b"] + j, f"={a}*{b}", t.product[i, j], "num")
        row_a = area(top + i, blocks["a"], top + i, blocks["a"] + 1)
        row_b = area(top + i, blocks["b"], top + i, blocks["b"] + 1)
        products = area(top + i, blocks["a*b"], top + i, blocks["a*b"] + 1)
        book.formula(ws, top + i, 10, f"=SUM({products})", t.dot[i], "num")
        book.formula(ws, top + i, 11, f"=SUMPRODUCT({row_a},{row_b})", t.dot[i], "num")
        book.number(ws, top + i, 12, t.dot[i], "torch")
    ws.set_column(0, 9, 7)
    ws.set_column(10, 12, 24)
