"""The `gradients` sheet: one step's gradient of the slice model's MSE, by the chain rule.

The gradient with respect to every user and movie factor and bias, as formulas on the `bias`
sheet's grid, beside autograd's values.

The top is the `bias` sheet's geometry (cfxl.sheets.grid.GridLayout): the ratings, the parameters
(movie bias and factors above the prediction grid, user bias and factors to its left), the
prediction with the sigmoid range. Below it the chain rule, one grid per stage:
d loss/d prediction = 2/n (prediction - rating) at each training rating (blank elsewhere, grey
where a rating is held out: not in the loss), coloured as every sheet colours an error;
d prediction/dx = (prediction - lo)(hi - prediction)/(hi - lo), the sigmoid range's slope, where
x = user . movie + user bias + movie bias; d loss/dx, their product. Then the gradients, laid out
like the parameters around the d loss/dx grid: a user bias's is its row's sum, a movie bias's its
column's, a user factor's the SUMPRODUCT of its dx row with that factor's movie row, a movie
factor's likewise down a column. Autograd's values follow in the same geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.records.types.cf import Gradients
from cfxl.sheets.book import Book
from cfxl.sheets.grid import (
    Frame,
    GridLayout,
    formula_or_blank,
    params_of,
    prediction_formula,
    rating_scale,
    write_crosstab,
    write_grid_ids,
    write_param_block,
    write_sigmoid_range,
)
from cfxl.sheets.refs import area, cell
from cfxl.sheets.styles import error_scale

SHEET = "gradients"


@dataclass(frozen=True)
class GradLayout:
    """0-based positions; `g` is the bias sheet's layout for the same slice."""

    g: GridLayout

    n_cell = (6, 2)     # C7: the training ratings, below the sigmoid range's lo and hi (C5, C6)
    loss_cell = (7, 2)  # C8: torch's MSE
    held_cell = (8, 2)  # C9: the ratings held out (grey), not in the loss

    def grid_top(self, stage: int) -> int:
        """Head row of stage 0 (d loss/d prediction), 1 (d prediction/dx); the grid follows."""
        return self.g.pred_row + self.g.n_users + 1 + stage * (self.g.n_users + 2)

    def _block(self, title_row: int) -> Frame:
        """Gradients shaped like the parameters, under a title row."""
        g = self.g
        return Frame(g.n_users, g.n_movies, g.n_factors, True, top=title_row + 1)

    @property
    def chain(self) -> Frame:  # formulas: the gradients around the d loss/dx grid
        return self._block(self.grid_top(2))

    @property
    def autograd(self) -> Frame:
        return self._block(self.chain.pred_row + self.g.n_users + 1)

    @property
    def difference(self) -> tuple[int, int]:
        """The largest |chain rule - autograd|, on autograd's title row."""
        return self.autograd.top - 1, self.g.last_col


def gradients_layout(grad: Gradients) -> GradLayout:
    (n_users, n_movies), k = grad.slice.ratings.shape, grad.u_weight.shape[1]
    return GradLayout(GridLayout(n_users, n_movies, k, True))


def write_gradients_sheet(book: Book, grad: Gradients) -> None:
    G = gradients_layout(grad)
    L, s = G.g, grad.slice
    U, M, k, gc = L.n_users, L.n_movies, L.n_factors, L.grid_col
    ws = book.sheet(SHEET, (
        f"One step's gradient of the MSE over the slice's {s.n - s.n_valid} training ratings "
        f"({s.n_valid} held out, grey: not in the loss) with respect to every "
        f"parameter of the bias sheet's EmbeddingDotBias, at its initial parameters: the chain "
        f"rule through the MSE, the sigmoid range and the dot product, as formulas on the bias "
        f"grid, beside autograd's values (the first step's grad on the cf_* sheets). Edit a "
        f"parameter or rating (yellow) and the chain rule follows; autograd's stay."))

    # the bias sheet's top: titles, ids, ratings, sigmoid range, parameters, predictions
    ratings = write_crosstab(book, ws, L, s, mark_valid=True)
    book.text(ws, L.rating_row, L.id_col - 1, "userId", "right")
    lo, hi = write_sigmoid_range(book, ws, L, s.y_range)
    n = cell(*G.n_cell, absolute="rc")
    book.text(ws, G.n_cell[0], G.n_cell[1] - 1, "n", "right")
    held = cell(*G.held_cell, absolute="rc")
    book.text(ws, G.held_cell[0], G.held_cell[1] - 1, "held out", "right")
    book.number(ws, *G.held_cell, s.n_valid, "int")
    book.formula(ws, *G.n_cell, f"=COUNT({ratings})-{held}", s.n - s.n_valid, "int")
    book.text(ws, G.loss_cell[0], G.loss_cell[1] - 1, "MSE", "right")
    book.number(ws, *G.loss_cell, grad.loss, "torch")
    book.text(ws, L.mf_row - 2, L.uf_col,
              "parameters: movie bias and factors a column per movie, user's a row per user; "
              "prediction = sigmoid(x) * (hi - lo) + lo, x = user . movie + user bias + movie bias",
              "group")
    write_param_block(book, ws, L, s, params_of(grad))

    # the chain rule, one grid per stage
    dpred, dpdx = G.grid_top(0), G.grid_top(1)
    dx = G.chain.pred_row
    rated = ~np.isnan(s.ratings)
    for top, title in ((dpred, "d loss / d prediction = 2/n * (prediction - rating)"),
                       (dpdx, "d prediction / dx = (prediction - lo)(hi - prediction)/(hi - lo)")):
        book.text(ws, top, L.uf_col, title, "group")
        write_grid_ids(book, ws, L, s, top)
    for i in range(U):
        for j in range(M):
            c = gc + j
            rating, pred = cell(L.rating_row + i, c), cell(L.pred_row + i, c)
            at = {t: cell(t + 1 + i, c) for t in (dpred, dpdx)}
            formulas = {
                (L.pred_row, "num"): (prediction_formula(L, i, j, (lo, hi)), grad.pred),
                (dpred + 1, "sci"): (f'=IF({rating}="","",2/{n}*({pred}-{rating}))',
                                     grad.dloss_dpred),
                (dpdx + 1, "num"): (f'=IF({rating}="","",({pred}-{lo})*({hi}-{pred})/({hi}-{lo}))',
                                    grad.dpred_dx),
                (dx, "sci"): (f'=IF({rating}="","",{at[dpred]}*{at[dpdx]})', grad.dloss_dx)}
            for (top, fmt), (formula, values) in formulas.items():
                if s.valid[i, j] and top in (dpred + 1, dx):  # not in the loss: marked, blank
                    ws.write_blank(top + i, c, None, book.fmt("held_out"))
                    continue
                value = values[i, j] if rated[i, j] else np.nan  # blank where not rated
                formula_or_blank(book, ws, top + i, c, formula, value, fmt)
    rating_scale(ws, area(L.pred_row, gc, L.pred_row + U - 1, L.last_col), s.y_range)
    # d loss/d prediction is the error (prediction - rating) times 2/n: the errors' colours
    ws.conditional_format(area(dpred + 1, gc, dpred + U, L.last_col),
                          error_scale(2 / s.n * (s.y_range[1] - s.y_range[0])))

    chain, auto = G.chain, G.autograd
    book.text(ws, chain.top - 1, L.uf_col,
              "gradients by the chain rule: d loss/dx (the grid, d loss/d prediction * "
              "d prediction/dx) summed into each parameter's gradient", "group")
    write_param_block(book, ws, chain, s, prefix="d ")
    book.text(ws, auto.top - 1, L.uf_col, "autograd's gradients (torch), and its d loss/dx",
              "group")
    write_param_block(book, ws, auto, s, params_of(grad, "d_"), "torch_sci", prefix="d ")
    user_factor = {f: area(L.pred_row, L.uf_col + f, L.pred_row + U - 1, L.uf_col + f,
                           absolute="rc") for f in range(k)}
    for j in range(M):
        c = gc + j
        col = area(dx, c, dx + U - 1, c, absolute="r")
        book.formula(ws, chain.mb_row, c, f"=SUM({col})", grad.d_i_bias[j], "sci")
        for f in range(k):
            book.formula(ws, chain.mf_row + f, c, f"=SUMPRODUCT({col},{user_factor[f]})",
                         grad.d_i_weight[j, f], "sci")
    for i in range(U):
        row = area(dx + i, gc, dx + i, L.last_col, absolute="c")
        book.formula(ws, dx + i, L.ub_col, f"=SUM({row})", grad.d_u_bias[i], "sci")
        for f in range(k):
            movie_factor = area(L.mf_row + f, gc, L.mf_row + f, L.last_col, absolute="rc")
            book.formula(ws, dx + i, L.uf_col + f, f"=SUMPRODUCT({row},{movie_factor})",
                         grad.d_u_weight[i, f], "sci")
        for j in np.flatnonzero(s.train[i]):
            book.number(ws, auto.pred_row + i, gc + j, grad.dloss_dx[i, j], "torch_sci")
    _difference(book, ws, G)

    ws.set_column(L.ub_col, L.id_col - 1, 10)
    ws.set_column(L.id_col, L.id_col, 9)
    ws.set_column(gc, L.last_col, 10)
    ws.freeze_panes(L.rating_row, gc)


def _difference(book: Book, ws, G: GradLayout) -> None:
    """The largest |chain rule - autograd| over every parameter's gradient: for the reader, not
    verified (d loss/dx, blank where not rated, is verified cell by cell)."""
    L, chain, auto = G.g, G.chain, G.autograd
    U, last_user_col = L.n_users, L.uf_col + L.n_factors - 1
    pairs = [((chain.mb_row, L.grid_col, chain.mf_row + L.n_factors - 1, L.last_col),
              (auto.mb_row, L.grid_col, auto.mf_row + L.n_factors - 1, L.last_col)),
             ((chain.pred_row, L.ub_col, chain.pred_row + U - 1, last_user_col),
              (auto.pred_row, L.ub_col, auto.pred_row + U - 1, last_user_col))]
    terms = ",".join(f"SUMPRODUCT(MAX(ABS({area(*a)}-{area(*b)})))" for a, b in pairs)
    row, col = G.difference
    book.text(ws, row, col - 2, "largest |difference|", "right")
    book.formula(ws, row, col, f"=MAX({terms})", 0.0, "torch_sci", check=False)
