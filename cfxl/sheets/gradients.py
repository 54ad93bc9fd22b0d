"""The `gradients` sheet: one step's gradient of the slice model's MSE with respect to every user
and movie factor and bias, as formulas on the `bias` sheet's grid, beside autograd's values.

The top is the `bias` sheet's geometry (cfxl.sheets.lesson.GridLayout): the ratings, the parameters
(movie bias and factors above the prediction grid, user bias and factors to its left), the
prediction with the sigmoid range. Below it the chain rule, one grid per stage:
d loss/d prediction = 2/n (prediction - rating) where rated (0 elsewhere: not in the loss);
d prediction/dx = (prediction - lo)(hi - prediction)/(hi - lo), the sigmoid range's slope, where
x = user . movie + user bias + movie bias; d loss/dx, their product. Then the gradients, laid out
like the parameters around the d loss/dx grid: a user bias's is its row's sum, a movie bias's its
column's, a user factor's the SUMPRODUCT of its dx row with that factor's movie row, a movie
factor's likewise down a column. Autograd's values follow in the same geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.records.types import Gradients
from cfxl.sheets.book import Book, area, cell
from cfxl.sheets.lesson import GridLayout, prediction_formula, write_crosstab, write_sigmoid_range
from cfxl.sheets.grid import (
    lesson_formats,
    rating_scale,
    span,
    write_id,
)

SHEET = "gradients"
# Formats of the CF sheets (here and cfxl.sheets.cf_steps), added to Book's and the lesson's.
CF_FORMATS = {
    "cf_hyper": {"bg_color": "#FFF2CC", "border": 1},               # editable, any magnitude
    "cf_start": {"bg_color": "#FFF2CC", "num_format": "0.000000"},  # editable starting value
    "cf_val": {"num_format": "0.000000"},
    "cf_sci": {"num_format": "0.000E+00"},                           # gradients and state
    "cf_torch_sci": {"num_format": "0.000E+00", "font_color": "#7F7F7F"},
}


@dataclass(frozen=True)
class Block:
    """Gradients laid out like the parameters: movie rows above a grid, user columns to its left."""

    top: int  # the title row
    n_factors: int

    @property
    def mb_row(self) -> int:  # movie biases' gradients
        return self.top + 1

    @property
    def mf_row(self) -> int:  # first movie factor's gradients
        return self.top + 2

    @property
    def head_row(self) -> int:
        return self.mf_row + self.n_factors

    @property
    def first(self) -> int:  # first user row
        return self.head_row + 1


@dataclass(frozen=True)
class GradLayout:
    """0-based positions; `g` is the bias sheet's layout for the same slice."""

    g: GridLayout

    n_cell = (6, 2)     # C7: the number of ratings, below the sigmoid range's lo and hi (C5, C6)
    loss_cell = (7, 2)  # C8: torch's MSE

    def grid_top(self, stage: int) -> int:
        """Head row of stage 0 (d loss/d prediction), 1 (d prediction/dx); the grid follows."""
        return self.g.pred_row + self.g.n_users + 1 + stage * (self.g.n_users + 2)

    @property
    def chain(self) -> Block:  # formulas: the gradients around the d loss/dx grid
        return Block(self.grid_top(2), self.g.n_factors)

    @property
    def autograd(self) -> Block:
        return Block(self.chain.first + self.g.n_users + 1, self.g.n_factors)


def gradients_layout(grad: Gradients) -> GradLayout:
    (n_users, n_movies), k = grad.slice.ratings.shape, grad.u_weight.shape[1]
    return GradLayout(GridLayout(n_users, n_movies, k, True))


def cf_formats(book: Book) -> None:
    """Register the lesson's formats and CF_FORMATS with the book, once."""
    lesson_formats(book)
    for name, spec in CF_FORMATS.items():
        if name not in book.formats:
            book.formats[name] = book.wb.add_format(spec)


def write_gradients_sheet(book: Book, grad: Gradients) -> None:
    cf_formats(book)
    G = gradients_layout(grad)
    L = G.g
    U, M, k, gc = L.n_users, L.n_movies, L.n_factors, L.grid_col
    ws = book.sheet(SHEET, (
        f"One step's gradient of the MSE over the slice's {grad.slice.n} ratings with respect to every "
        f"parameter of the bias sheet's EmbeddingDotBias, at its initial parameters: the chain "
        f"rule through the MSE, the sigmoid range and the dot product, as formulas on the bias "
        f"grid, beside autograd's values (the first step's grad on the cf_* sheets). Edit a "
        f"parameter or rating (yellow) and the chain rule follows; autograd's stay."))

    # the bias sheet's top: titles, ids, ratings, sigmoid range, parameters, predictions
    ratings = write_crosstab(book, ws, L, grad.slice)
    lo, hi = write_sigmoid_range(book, ws, L, grad.slice.y_range)
    n = cell(*G.n_cell, absolute="rc")
    book.text(ws, G.n_cell[0], G.n_cell[1] - 1, "n", "right")
    book.formula(ws, *G.n_cell, f"=COUNT({ratings})", grad.slice.n, "int")
    book.text(ws, G.loss_cell[0], G.loss_cell[1] - 1, "MSE", "right")
    book.number(ws, *G.loss_cell, grad.loss, "torch")

    book.text(ws, L.mf_row - 2, L.uf_col,
              "parameters: movie bias and factors a column per movie, user's a row per user; "
              "prediction = sigmoid(x) * (hi - lo) + lo, x = user . movie + user bias + movie bias",
              "group")
    book.text(ws, L.mb_row, L.id_col, "bias", "right")
    for j in range(M):
        book.number(ws, L.mb_row, gc + j, grad.i_bias[j], "input")
        for f in range(k):
            book.number(ws, L.mf_row + f, gc + j, grad.i_weight[j, f], "input")
    for f in range(k):
        book.text(ws, L.mf_row + f, L.id_col, f"factor {f + 1}", "right")
    book.text(ws, L.head_row, L.ub_col, "bias", "head")
    for f in range(k):
        book.text(ws, L.head_row, L.uf_col + f, f"factor {f + 1}", "head")
    _heads(book, ws, L, grad, L.head_row, "")
    for i in range(U):
        book.number(ws, L.pred_row + i, L.ub_col, grad.u_bias[i], "input")
        for f in range(k):
            book.number(ws, L.pred_row + i, L.uf_col + f, grad.u_weight[i, f], "input")

    # the chain rule, one grid per stage
    dpred, dpdx = G.grid_top(0), G.grid_top(1)
    dx = G.chain.first
    _heads(book, ws, L, grad, dpred, "d loss / d prediction = 2/n * (prediction - rating)")
    _heads(book, ws, L, grad, dpdx,
           "d prediction / dx = (prediction - lo)(hi - prediction)/(hi - lo)")
    for i in range(U):
        for j in range(M):
            c = gc + j
            rating, pred = cell(L.rating_row + i, c), cell(L.pred_row + i, c)
            at = {s: cell(s + 1 + i, c) for s in (dpred, dpdx)}
            formulas = {
                (L.pred_row, "num"): (prediction_formula(L, i, j, (lo, hi)), grad.pred),
                (dpred + 1, "cf_sci"): (f'=IF({rating}="",0,2/{n}*({pred}-{rating}))',
                                     grad.dloss_dpred),
                (dpdx + 1, "num"): (f'=IF({rating}="","",({pred}-{lo})*({hi}-{pred})/({hi}-{lo}))',
                                    grad.dpred_dx),
                (dx, "cf_sci"): (f'=IF({rating}="",0,{at[dpred]}*{at[dpdx]})', grad.dloss_dx)}
            for (top, fmt), (formula, values) in formulas.items():
                if np.isnan(values[i, j]):  # blank: not rated
                    ws.write_formula(top + i, c, formula, book.fmt(fmt), "")
                else:
                    book.formula(ws, top + i, c, formula, values[i, j], fmt)
    rating_scale(ws, area(L.pred_row, gc, L.pred_row + U - 1, L.last_col), grad.slice.y_range)

    chain, auto = G.chain, G.autograd
    _block_heads(book, ws, L, grad, chain,
                 "gradients by the chain rule: d loss/dx (the grid, d loss/d prediction * "
                 "d prediction/dx) summed into each parameter's gradient")
    _block_heads(book, ws, L, grad, auto, "autograd's gradients (torch), and its d loss/dx")
    user_factor = {f: span(L.pred_row, L.uf_col + f, L.pred_row + U - 1, L.uf_col + f, pin="rc")
                   for f in range(k)}
    for j in range(M):
        c = gc + j
        col = span(dx, c, dx + U - 1, c, pin="r")
        book.formula(ws, chain.mb_row, c, f"=SUM({col})", grad.d_i_bias[j], "cf_sci")
        book.number(ws, auto.mb_row, c, grad.d_i_bias[j], "cf_torch_sci")
        for f in range(k):
            book.formula(ws, chain.mf_row + f, c, f"=SUMPRODUCT({col},{user_factor[f]})",
                         grad.d_i_weight[j, f], "cf_sci")
            book.number(ws, auto.mf_row + f, c, grad.d_i_weight[j, f], "cf_torch_sci")
    for i in range(U):
        row = span(dx + i, gc, dx + i, L.last_col, pin="c")
        book.formula(ws, dx + i, L.ub_col, f"=SUM({row})", grad.d_u_bias[i], "cf_sci")
        book.number(ws, auto.first + i, L.ub_col, grad.d_u_bias[i], "cf_torch_sci")
        for f in range(k):
            movie_factor = span(L.mf_row + f, gc, L.mf_row + f, L.last_col, pin="rc")
            book.formula(ws, dx + i, L.uf_col + f, f"=SUMPRODUCT({row},{movie_factor})",
                         grad.d_u_weight[i, f], "cf_sci")
            book.number(ws, auto.first + i, L.uf_col + f, grad.d_u_weight[i, f], "cf_torch_sci")
        for j in range(M):
            book.number(ws, auto.first + i, gc + j, grad.dloss_dx[i, j], "cf_torch_sci")
    _difference(book, ws, L, chain, auto)

    ws.set_column(L.ub_col, L.id_col - 1, 10)
    ws.set_column(L.id_col, L.id_col, 9)
    ws.set_column(gc, L.last_col, 10)
    ws.freeze_panes(L.rating_row, gc)


def _heads(book: Book, ws, L: GridLayout, grad: Gradients, row: int, title: str) -> None:
    """A grid's title (left), userId and the movie ids over it, the user ids down column G."""
    if title:
        book.text(ws, row, L.uf_col, title, "group")
    book.text(ws, row, L.id_col, "userId", "head")
    for j in range(L.n_movies):
        write_id(book, ws, row, L.grid_col + j, grad.slice.movie_ids[j])
    for i in range(L.n_users):
        write_id(book, ws, row + 1 + i, L.id_col, grad.slice.user_ids[i])


def _block_heads(book: Book, ws, L: GridLayout, grad: Gradients, b: Block, title: str) -> None:
    book.text(ws, b.top, L.uf_col, title, "group")
    book.text(ws, b.mb_row, L.id_col, "d bias", "right")
    for f in range(L.n_factors):
        book.text(ws, b.mf_row + f, L.id_col, f"d factor {f + 1}", "right")
        book.text(ws, b.head_row, L.uf_col + f, f"d factor {f + 1}", "head")
    book.text(ws, b.head_row, L.ub_col, "d bias", "head")
    _heads(book, ws, L, grad, b.head_row, "")


def _difference(book: Book, ws, L: GridLayout, chain: Block, auto: Block) -> None:
    """The largest |chain rule - autograd| over both blocks: for the reader, not verified."""
    U = L.n_users
    pairs = [((chain.mb_row, L.grid_col, chain.mf_row + L.n_factors - 1, L.last_col),
              (auto.mb_row, L.grid_col, auto.mf_row + L.n_factors - 1, L.last_col)),
             ((chain.first, L.ub_col, chain.first + U - 1, L.last_col),
              (auto.first, L.ub_col, auto.first + U - 1, L.last_col))]
    terms = ",".join(f"SUMPRODUCT(MAX(ABS({area(*a)}-{area(*b)})))" for a, b in pairs)
    book.text(ws, auto.top, L.last_col - 2, "largest |difference|", "right")
    book.formula(ws, auto.top, L.last_col, f"=MAX({terms})", 0.0, "cf_torch_sci", check=False)
