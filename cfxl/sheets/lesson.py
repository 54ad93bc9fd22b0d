"""The lesson's collab_filter.xlsx sheets, live: every prediction, error and loss a formula.

Formulas over parameter cells a reader may edit, cached with torch's value and listed for
verification.

`write_lesson_sheets` writes, in order, `dotprod` and `bias` (the crosstab sheets, here),
`movielens_emb`, `movielens_1hot` and `nn` (long format, cfxl.sheets.lesson_lookup) and `tensors`.
Geometry follows the lesson's (lesson-workbooks.md §2), one row lower for the note and one more
for the titles: the crosstab with movie ids across the top and user ids down column G, movie
factors as rows above the prediction grid, user factors as columns to its left, the loss at the
bottom right. `grid_layout` gives every position, for the README and for tests.
"""

from __future__ import annotations

import numpy as np

from cfxl.records.types.lesson import GridRecords, LessonRecords
from cfxl.sheets.book import Book
from cfxl.sheets.grid import (
    GridLayout,
    formula_or_blank,
    params_of,
    prediction_formula,
    rating_scale,
    trained_by,
    write_crosstab,
    write_grid_ids,
    write_param_block,
    write_sigmoid_range,
)
from cfxl.sheets.lesson_lookup import write_emb_sheet, write_net_sheet, write_onehot_sheet
from cfxl.sheets.refs import area, cell


def grid_layout(rec: LessonRecords, *, bias: bool) -> GridLayout:
    n_users, n_movies = rec.slice.ratings.shape
    return GridLayout(n_users, n_movies, rec.n_factors, bias)


def write_lesson_sheets(book: Book, rec: LessonRecords) -> None:
    """The six live sheets of the lesson, in the lesson's order of ideas."""
    write_grid_sheet(book, rec, "dotprod", rec.dot)
    write_grid_sheet(book, rec, "bias", rec.bias)
    write_emb_sheet(book, rec)
    write_onehot_sheet(book, rec)
    write_net_sheet(book, rec)
    write_tensors_sheet(book, rec)


def write_grid_sheet(book: Book, rec: LessonRecords, name: str, g: GridRecords) -> None:
    """`dotprod` (g without biases) or `bias`: crosstab, factors, prediction and error grids, loss."""
    bias = g.u_bias is not None
    L = grid_layout(rec, bias=bias)
    U, M = L.n_users, L.n_movies
    model = "EmbeddingDotBias" if bias else "EmbeddingDot"
    what = ("prediction = sigmoid(user factors . movie factors + user bias + movie bias) * "
            "(hi - lo) + lo, exactly as the model computes it" if bias
            else "prediction = user factors . movie factors (MMULT of a row and a column)")
    ws = book.sheet(name, f"{trained_by(rec, model)}. {what}; errors and the RMSE over the rated "
                          f"cells below. Edit any yellow factor{' or bias' if bias else ''} cell: "
                          f"predictions and loss follow.")
    gc = L.grid_col

    write_crosstab(book, ws, L, rec.slice)
    book.text(ws, L.rating_row, L.id_col - 1, "userId", "right")
    if bias:
        lo, hi = write_sigmoid_range(book, ws, L, g.y_range)
    write_param_block(book, ws, L, rec.slice, params_of(g))
    book.text(ws, L.mf_row - 1 - int(bias), L.uf_col,
              "movie factors: a column per movie; user factors: a row per user", "group")
    book.text(ws, L.err_head_row, L.uf_col, "error = rating - prediction", "group")
    write_grid_ids(book, ws, L, rec.slice, L.err_head_row)

    unrated = np.isnan(rec.slice.ratings)  # the formulas give "" there: not in the loss
    # what each value cancels (cfxl.proof.verify's scale): a dot product its terms (the bias
    # sheet's sigmoid damps them), an error its rating and prediction
    terms = None if bias else np.abs(g.u_weight) @ np.abs(g.i_weight).T  # (U, M)
    operands = np.abs(rec.slice.ratings) + np.abs(g.pred)  # (U, M)
    for i in range(U):
        pr, er = L.pred_row + i, L.err_row + i
        for j in range(M):
            c = gc + j
            rating = cell(L.rating_row + i, c)
            pred = prediction_formula(L, i, j, (lo, hi) if bias else None)
            err = f'=IF({rating}="","",{rating}-{cell(pr, c)})'
            formula_or_blank(book, ws, pr, c, pred, np.nan if unrated[i, j] else g.pred[i, j],
                             scale=None if bias else terms[i, j])
            formula_or_blank(book, ws, er, c, err, np.nan if unrated[i, j] else g.err[i, j],
                             scale=operands[i, j])
    rating_scale(ws, area(L.pred_row, gc, L.pred_row + U - 1, L.last_col), rec.slice.y_range)
    ws.conditional_format(area(L.err_row, gc, L.err_row + U - 1, L.last_col),
                          {"type": "3_color_scale", "min_color": "#5B9BD5", "mid_type": "num",
                           "mid_value": 0, "mid_color": "#FFFFFF", "max_color": "#F8696B"})

    errors = area(L.err_row, gc, L.err_row + U - 1, L.last_col)
    book.text(ws, L.loss_row, L.torch_col - 1, "torch", "right")
    book.number(ws, L.loss_row, L.torch_col, g.loss, "torch")
    book.text(ws, L.loss_row, L.last_col - 1, "RMSE", "right")
    book.formula(ws, L.loss_row, L.last_col, f"=SQRT(SUMSQ({errors})/COUNT({errors}))", g.loss,
                 "loss")

    ws.set_column(L.ub_col, L.ub_col, 8 if bias else 2)
    ws.set_column(L.uf_col, L.id_col, 8)
    ws.set_column(gc, L.last_col, 10)
    ws.freeze_panes(L.rating_row, gc)


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
            book.number(ws, top + i, blocks["a"] + j, t.a[i, j], "input")
            book.number(ws, top + i, blocks["b"] + j, t.b[i, j], "input")
            a, b = cell(top + i, blocks["a"] + j), cell(top + i, blocks["b"] + j)
            book.formula(ws, top + i, blocks["a*b"] + j, f"={a}*{b}", t.product[i, j], "num2")
        row_a = area(top + i, blocks["a"], top + i, blocks["a"] + 1)
        row_b = area(top + i, blocks["b"], top + i, blocks["b"] + 1)
        products = area(top + i, blocks["a*b"], top + i, blocks["a*b"] + 1)
        book.formula(ws, top + i, 10, f"=SUM({products})", t.dot[i], "num2")
        book.formula(ws, top + i, 11, f"=SUMPRODUCT({row_a},{row_b})", t.dot[i], "num2")
        book.number(ws, top + i, 12, t.dot[i], "torch")
    ws.set_column(0, 9, 7)
    ws.set_column(10, 12, 24)
