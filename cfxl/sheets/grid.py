"""The crosstab grid every slice sheet is built on, and its building blocks.

Its layout, the ratings on top, parameter-shaped blocks, ids, the prediction formula, the rating
colour scale, and grid formulas that are blank where nothing is rated.

`dotprod`, `bias`, `gradients` and every band of `train` share one geometry (`GridLayout`): movie
ids across the top and user ids down a column, movie parameters as rows above a grid, user
parameters as columns to its left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.records.types.cf import SLICE_PARAMS
from cfxl.records.types.lesson import Fit
from cfxl.records.types.slice import Slice
from cfxl.sheets.book import Book
from cfxl.sheets.refs import area, cell
from cfxl.sheets.table import write_id  # the one id writer, shared with the value tables

TITLE_ROW_HEIGHT = 60  # points: a wrapped 8 pt title of about 45 characters in a 10-wide column
SUMMARY = ("train RMSE", "valid RMSE", "wd", "objective")  # the crosstab sheets' bottom right


@dataclass(frozen=True)
class GridLayout:
    """0-based positions on `dotprod` and `bias`; `bias` adds the movie-bias row and column A."""

    n_users: int
    n_movies: int
    n_factors: int
    bias: bool
    rating_row: int = 3     # row 4: the crosstab's first user

    ub_col = 0              # column A: user bias (bias sheet)
    uf_col = 1              # columns B..: user factors
    lo_cell = (4, 2)        # C5 on the bias sheet: the sigmoid range's lo; hi below it (C6)

    @property
    def title_row(self) -> int:  # row 2: movie titles above the ids
        return self.rating_row - 2

    @property
    def id_row(self) -> int:  # row 3: movie ids; G3 "movieId"
        return self.rating_row - 1

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
    def err_head_row(self) -> int:  # the errors at the training ratings
        return self.pred_row + self.n_users + 1

    @property
    def err_row(self) -> int:
        return self.err_head_row + 1

    @property
    def valid_head_row(self) -> int:  # the errors at the held-out ratings, below
        return self.err_row + self.n_users + 1

    @property
    def valid_row(self) -> int:
        return self.valid_head_row + 1

    @property
    def loss_row(self) -> int:  # the summary's head: SUMMARY below it, at the bottom right
        return self.valid_row + self.n_users + 1

    @property
    def value_col(self) -> int:  # the summary's formulas (and the wd cell)
        return self.last_col - 1

    @property
    def torch_col(self) -> int:  # torch's trained values, plain numbers, right of the formulas
        return self.last_col

    def summary(self, label: str) -> tuple[int, int]:
        """(row, col) of a summary formula (or the wd cell): one of SUMMARY."""
        return self.loss_row + 1 + SUMMARY.index(label), self.value_col

    def elements(self):
        """(parameter name, index, row, column) of every parameter element, in SLICE_PARAMS
        order: u_weight, i_weight, u_bias, i_bias (with biases), row-major."""
        U, M, k = self.n_users, self.n_movies, self.n_factors
        out = [("u_weight", (i, f), self.pred_row + i, self.uf_col + f)
               for i in range(U) for f in range(k)]
        out += [("i_weight", (j, f), self.mf_row + f, self.grid_col + j)
                for j in range(M) for f in range(k)]
        if self.bias:
            out += [("u_bias", (i,), self.pred_row + i, self.ub_col) for i in range(U)]
            out += [("i_bias", (j,), self.mb_row, self.grid_col + j) for j in range(M)]
        return out


@dataclass(frozen=True)
class Frame(GridLayout):
    """A parameter-shaped block with biases whose movie-bias row is `top`; predictions still
    refer to the ratings at `rating_row`."""

    top: int = 0

    @property
    def mb_row(self) -> int:
        return self.top


def params_of(obj, prefix: str = "") -> dict[str, np.ndarray]:
    """Something's u_weight, i_weight, u_bias and i_bias (or d_u_weight, ... with prefix 'd_')."""
    return {p: getattr(obj, prefix + p) for p in SLICE_PARAMS}


def write_grid_ids(book: Book, ws, L: GridLayout, s: Slice, head_row: int) -> None:
    """A grid's head: "userId" and the movie ids along head_row, the user ids down below it."""
    book.text(ws, head_row, L.id_col, "userId", "head")
    for j in range(L.n_movies):
        write_id(book, ws, head_row, L.grid_col + j, s.movie_ids[j])
    for i in range(L.n_users):
        write_id(book, ws, head_row + 1 + i, L.id_col, s.user_ids[i])


def write_crosstab(book: Book, ws, L: GridLayout, s: Slice, *, mark_valid: bool = False) -> str:
    """The ratings (blank where unrated) under the movies' titles and ids, the users' ids beside
    them, in the rating colour scale (with mark_valid, the held-out ones grey and bordered);
    returns the ratings' area."""
    ws.set_row(L.title_row, TITLE_ROW_HEIGHT)
    book.text(ws, L.title_row, L.id_col, "title", "right")
    book.text(ws, L.id_row, L.id_col, "movieId", "right")
    for j in range(L.n_movies):
        book.text(ws, L.title_row, L.grid_col + j, s.titles[j], "title")
        write_id(book, ws, L.id_row, L.grid_col + j, s.movie_ids[j])
    for i in range(L.n_users):
        write_id(book, ws, L.rating_row + i, L.id_col, s.user_ids[i])
        for j in range(L.n_movies):
            if not np.isnan(s.ratings[i, j]):
                held_out = mark_valid and s.valid[i, j]
                book.number(ws, L.rating_row + i, L.grid_col + j, s.ratings[i, j],
                            "held_out" if held_out else "rating")
    ratings = area(L.rating_row, L.grid_col, L.rating_row + L.n_users - 1, L.last_col)
    scaled = runs_of(~s.valid, L.rating_row, L.grid_col) if mark_valid else ratings
    rating_scale(ws, scaled, s.y_range)  # held out: their grey stays (a scale would paint it)
    return ratings


def write_param_block(book: Book, ws, L: GridLayout, s: Slice, values=None, fmt: str = "input",
                      *, prefix: str = "") -> None:
    """A block shaped like the parameters: "bias" and "factor i" labels down the id column (the
    movie rows) and along the head row (the user columns), the ids around its grid; with values
    (u_weight, i_weight, u_bias, i_bias by name), every element as a number."""
    if L.bias:
        book.text(ws, L.mb_row, L.id_col, f"{prefix}bias", "right")
        book.text(ws, L.head_row, L.ub_col, f"{prefix}bias", "head")
    for f in range(L.n_factors):
        book.text(ws, L.mf_row + f, L.id_col, f"{prefix}factor {f + 1}", "right")
        book.text(ws, L.head_row, L.uf_col + f, f"{prefix}factor {f + 1}", "head")
    write_grid_ids(book, ws, L, s, L.head_row)
    if values is not None:
        for p, idx, r, c in L.elements():
            book.number(ws, r, c, values[p][idx], fmt)


def write_sigmoid_range(book: Book, ws, L: GridLayout, y_range) -> tuple[str, str]:
    """The labelled lo and hi cells of the sigmoid range; their absolute references."""
    r, c = L.lo_cell
    book.text(ws, r - 1, c - 1, "sigmoid range", "group")
    for d, (label, value) in enumerate(zip(("lo", "hi"), y_range)):
        book.text(ws, r + d, c - 1, label, "right")
        book.number(ws, r + d, c, value, "num2")
    return cell(r, c, absolute="rc"), cell(r + 1, c, absolute="rc")


def formula_or_blank(book: Book, ws, row: int, col: int, formula: str, value: float,
                     fmt: str = "num", *, blank="", scale: float | None = None) -> None:
    """A grid cell's formula, cached with torch's value and verified; where value is NaN (an
    unrated cell, not in the loss: nothing of torch's to check) cached as what the formula gives
    there, blank ("" or 0)."""
    if np.isnan(value):
        ws.write_formula(row, col, formula, book.fmt(fmt), blank)
    else:
        book.formula(ws, row, col, formula, value, fmt, scale=scale)


def prediction_formula(L: GridLayout, i: int, j: int, y_range: tuple[str, str] | None) -> str:
    """The prediction grid's formula at user i, movie j: blank where not rated; with y_range
    (references to the lo and hi cells) the bias model's sigmoid range, else the dot product."""
    pr, c = L.pred_row + i, L.grid_col + j
    user = area(pr, L.uf_col, pr, L.uf_col + L.n_factors - 1, absolute="c")
    movie = area(L.mf_row, c, L.mf_row + L.n_factors - 1, c, absolute="r")
    value = f"MMULT({user},{movie})"
    if y_range is not None:
        lo, hi = y_range
        # torch's order of operations, so that the two agree to the last bit or two:
        # (dot + user bias + movie bias), then sigmoid(x) * (hi - lo) + lo
        x = f"{value}+{cell(pr, L.ub_col, absolute='c')}+{cell(L.mb_row, c, absolute='r')}"
        value = f"1/(1+EXP(-({x})))*({hi}-{lo})+{lo}"
    return f'=IF({cell(L.rating_row + i, c)}="","",{value})'


def rating_scale(ws, ref: str, y_range: tuple[float, float]) -> None:
    """The lesson's red-yellow-green colour scale, pinned to the rating range so grids compare;
    ref an area or several separated by spaces (runs_of gives them)."""
    lo, hi = y_range
    options = {"type": "3_color_scale", "min_type": "num", "min_value": lo,
               "mid_type": "num", "mid_value": (lo + hi) / 2, "max_type": "num", "max_value": hi}
    if " " in ref:
        options["multi_range"] = ref
    ws.conditional_format(ref.split()[0], options)


def runs_of(mask: np.ndarray, row: int, col: int) -> str:
    """The True cells of a mask placed at (row, col) as areas separated by spaces (a conditional
    format's multi_range, a colour scale that skips the others): a 2-d mask's runs along its
    rows, a 1-d mask's down one column."""
    lines = np.atleast_2d(mask) if mask.ndim == 2 else mask[None, :]
    runs = []
    for i, line in enumerate(lines):
        edges = np.diff(np.concatenate([[0], line.astype(int), [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1):
            r0, c0, r1, c1 = ((row + i, col + a, row + i, col + b) if mask.ndim == 2
                              else (row + a, col, row + b, col))
            runs.append(cell(r0, c0) if (r0, c0) == (r1, c1) else area(r0, c0, r1, c1))
    return " ".join(runs)


def fit_note(fit: Fit, n_train: int) -> str:
    """How torch trains a slice model, for a sheet's note."""
    return (f"Adam, lr {fit.lr:g}, {fit.steps} full-batch steps on the {n_train} training "
            f"ratings, minimising train MSE + wd * (sum of squared parameters), wd "
            f"{fit.weight_decay:g}")
