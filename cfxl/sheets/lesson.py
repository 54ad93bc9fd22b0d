"""The lesson's collab_filter.xlsx sheets, live: every prediction, error and loss a formula over
parameter cells a reader may edit, cached with torch's value and listed for verification.

`write_lesson_sheets` writes, in order, `dotprod` and `bias` (the crosstab sheets, here),
`movielens_emb`, `movielens_1hot` and `nn` (long format, cfxl.sheets.lesson_lookup) and `tensors`.
Geometry follows the lesson's (lesson-workbooks.md §2), one row lower for the note and one more
for the titles: the crosstab with movie ids across the top and user ids down column G, movie
factors as rows above the prediction grid, user factors as columns to its left, the loss at the
bottom right. `grid_layout` gives every position, for the README and for tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.records.types import GridRecords, LessonRecords, Slice
from cfxl.sheets.book import Book, area, cell
from cfxl.sheets.grid import (
    TITLE_ROW_HEIGHT,
    lesson_formats,
    rating_scale,
    span,
    trained_by,
    write_id,
)
from cfxl.sheets.lesson_lookup import write_emb_sheet, write_net_sheet, write_onehot_sheet


@dataclass(frozen=True)
class GridLayout:
    """0-based positions on `dotprod` and `bias`; `bias` adds the movie-bias row and column A."""

    n_users: int
    n_movies: int
    n_factors: int
    bias: bool

    title_row = 1           # row 2: movie titles above the ids
    id_row = 2              # row 3: movie ids; G3 "movieId"
    rating_row = 3          # rows 4..: the crosstab
    ub_col = 0              # column A: user bias (bias sheet)
    uf_col = 1              # columns B..: user factors

    @property
    def id_col(self) -> int:  # column G for 5 factors: user ids
        return self.uf_col + self.n_factors

    @property
    def grid_col(self) -> int:  # column H: the first movie
        return self.id_col + 1

    @property
    def last_col(self) -> int:
        return self.grid_col + self.n_movies - 1

    @property
    def mb_row(self) -> int:  # movie-bias row (bias sheet), after a blank row
        return self.rating_row + self.n_users + 1

    @property
    def mf_row(self) -> int:  # first movie-factor row
        return self.mb_row + int(self.bias)

    @property
    def head_row(self) -> int:  # "factor i" over the user factors, movie ids over the predictions
        return self.mf_row + self.n_factors

    @property
    def pred_row(self) -> int:
        return self.head_row + 1

    @property
    def err_head_row(self) -> int:
        return self.pred_row + self.n_users + 1

    @property
    def err_row(self) -> int:
        return self.err_head_row + 1

    @property
    def loss_row(self) -> int:  # the loss at (loss_row, last_col), the bottom right
        return self.err_row + self.n_users + 1

    @property
    def torch_col(self) -> int:  # torch's loss (a plain number) two cells left of the formula's
        return self.last_col - 2

    lo_cell = (4, 2)  # C5 on the bias sheet: the sigmoid range's lo; hi below it (C6)


def grid_layout(rec: LessonRecords, *, bias: bool) -> GridLayout:
    n_users, n_movies = rec.slice.ratings.shape
    return GridLayout(n_users, n_movies, rec.n_factors, bias)


def write_lesson_sheets(book: Book, rec: LessonRecords) -> None:
    """The six live sheets of the lesson, in the lesson's order of ideas."""
    lesson_formats(book)
    write_grid_sheet(book, rec, "dotprod", rec.dot)
    write_grid_sheet(book, rec, "bias", rec.bias)
    write_emb_sheet(book, rec)
    write_onehot_sheet(book, rec)
    write_net_sheet(book, rec)
    write_tensors_sheet(book, rec)


def write_crosstab(book: Book, ws, L, s: Slice) -> str:
    """The grid sheets' top: titles, movie and user ids, the ratings (blank where unrated) with a
    colour scale; returns the ratings area."""
    U, M, gc = L.n_users, L.n_movies, L.grid_col
    book.text(ws, L.title_row, L.id_col, "title", "right")
    book.text(ws, L.id_row, L.id_col, "movieId", "right")
    book.text(ws, L.rating_row, L.id_col - 1, "userId", "right")
    ws.set_row(L.title_row, TITLE_ROW_HEIGHT)
    for j in range(M):
        book.text(ws, L.title_row, gc + j, s.titles[j], "title")
        write_id(book, ws, L.id_row, gc + j, s.movie_ids[j])
    for i in range(U):
        write_id(book, ws, L.rating_row + i, L.id_col, s.user_ids[i])
        for j in range(M):
            if not np.isnan(s.ratings[i, j]):
                book.number(ws, L.rating_row + i, gc + j, s.ratings[i, j], "rating")
    ratings = area(L.rating_row, gc, L.rating_row + U - 1, L.last_col)
    rating_scale(ws, ratings, s.y_range)
    return ratings


def write_sigmoid_range(book: Book, ws, L, y_range) -> tuple[str, str]:
    """The labelled lo and hi cells of the sigmoid range; their absolute references."""
    r, c = L.lo_cell
    book.text(ws, r - 1, c - 1, "sigmoid range", "group")
    for d, (label, value) in enumerate(zip(("lo", "hi"), y_range)):
        book.text(ws, r + d, c - 1, label, "right")
        book.number(ws, r + d, c, value, "num2")
    return cell(r, c, absolute="rc"), cell(r + 1, c, absolute="rc")


def write_grid_sheet(book: Book, rec: LessonRecords, name: str, g: GridRecords) -> None:
    """`dotprod` (g without biases) or `bias`: crosstab, factors, prediction and error grids, loss."""
    bias = g.u_bias is not None
    L = grid_layout(rec, bias=bias)
    U, M, k = L.n_users, L.n_movies, L.n_factors
    model = "EmbeddingDotBias" if bias else "EmbeddingDot"
    what = ("prediction = sigmoid(user factors . movie factors + user bias + movie bias) * "
            "(hi - lo) + lo, exactly as the model computes it" if bias
            else "prediction = user factors . movie factors (MMULT of a row and a column)")
    ws = book.sheet(name, f"{trained_by(rec, model)}. {what}; errors and the RMSE over the rated "
                          f"cells below. Edit any yellow factor{' or bias' if bias else ''} cell: "
                          f"predictions and loss follow.")
    gc = L.grid_col

    write_crosstab(book, ws, L, rec.slice)
    if bias:
        lo, hi = write_sigmoid_range(book, ws, L, g.y_range)
        book.text(ws, L.mb_row, L.id_col, "bias", "right")
        book.text(ws, L.head_row, L.ub_col, "bias", "head")
        for j in range(M):
            book.number(ws, L.mb_row, gc + j, g.i_bias[j], "input")

    for f in range(k):
        book.text(ws, L.mf_row + f, L.id_col, f"factor {f + 1}", "right")
        book.text(ws, L.head_row, L.uf_col + f, f"factor {f + 1}", "head")
        for j in range(M):
            book.number(ws, L.mf_row + f, gc + j, g.i_weight[j, f], "input")
    book.text(ws, L.mf_row - 1 - int(bias), L.uf_col,
              "movie factors: a column per movie; user factors: a row per user", "group")
    book.text(ws, L.head_row, L.id_col, "userId", "head")
    for j in range(M):
        write_id(book, ws, L.head_row, gc + j, rec.slice.movie_ids[j])
    book.text(ws, L.err_head_row, L.uf_col, "error = rating - prediction", "group")
    book.text(ws, L.err_head_row, L.id_col, "userId", "head")
    for j in range(M):
        write_id(book, ws, L.err_head_row, gc + j, rec.slice.movie_ids[j])

    for i in range(U):
        pr, er = L.pred_row + i, L.err_row + i
        write_id(book, ws, pr, L.id_col, rec.slice.user_ids[i])
        write_id(book, ws, er, L.id_col, rec.slice.user_ids[i])
        if bias:
            book.number(ws, pr, L.ub_col, g.u_bias[i], "input")
        for f in range(k):
            book.number(ws, pr, L.uf_col + f, g.u_weight[i, f], "input")
        for j in range(M):
            c = gc + j
            rating = cell(L.rating_row + i, c)
            pred = prediction_formula(L, i, j, (lo, hi) if bias else None)
            err = f'=IF({rating}="","",{rating}-{cell(pr, c)})'
            if np.isnan(rec.slice.ratings[i, j]):
                ws.write_formula(pr, c, pred, book.fmt("num"), "")
                ws.write_formula(er, c, err, book.fmt("num"), "")
            else:
                book.formula(ws, pr, c, pred, g.pred[i, j])
                book.formula(ws, er, c, err, g.err[i, j])
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


def prediction_formula(L: GridLayout, i: int, j: int, y_range: tuple[str, str] | None) -> str:
    """The prediction grid's formula at user i, movie j: blank where not rated; with y_range
    (references to the lo and hi cells) the bias model's sigmoid range, else the dot product."""
    pr, c = L.pred_row + i, L.grid_col + j
    user = span(pr, L.uf_col, pr, L.uf_col + L.n_factors - 1, pin="c")
    movie = span(L.mf_row, c, L.mf_row + L.n_factors - 1, c, pin="r")
    value = f"MMULT({user},{movie})"
    if y_range is not None:
        lo, hi = y_range
        # torch's order of operations, so that the two agree to the last bit or two:
        # (dot + user bias + movie bias), then sigmoid(x) * (hi - lo) + lo
        x = f"{value}+{cell(pr, L.ub_col, absolute='c')}+{cell(L.mb_row, c, absolute='r')}"
        value = f"1/(1+EXP(-({x})))*({hi}-{lo})+{lo}"
    return f'=IF({cell(L.rating_row + i, c)}="","",{value})'


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
