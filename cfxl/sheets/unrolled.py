"""The `train` sheet: K steps of full-batch training of the slice model, entirely as formulas.

Editing lr or the optimizer cell re-trains the model inside the spreadsheet. A fifth of the
slice's ratings is held out (Slice.valid, grey with a border): not in the loss or the gradients,
only in each step's validation MSE, beside the training MSE torch minimises.

Each step is a band of rows (positions: cfxl.sheets.unrolled_layout): the parameters (the previous
band's updated ones), the prediction grid with the sigmoid range, the errors and the MSE, the
chain rule back to every parameter's gradient (as the `gradients` sheet does it), the optimizer
state and the updated parameters. torch.optim's single-tensor rules (cfxl.sheets.rules), in its
order of operations:

    gradient         g = d MSE/d param + weight_decay * param
    momentum_buffer  b = b' * momentum + g                       (momentum only; else 0)
    exp_avg          m = m' + (1 - beta1) * (g - m')             (adam only; else 0)
    exp_avg_sq       v = v' * beta2 + (1 - beta2) * g * g        (adam only; else 0)
    updated          param - lr * g | param - lr * b |
                     param - lr / bias_correction1 * m / (SQRT(v) / bias_correction2^0.5 + eps)

where ' is the previous band's cell, each state is wrapped in IF(optimizer=...) and the update
chooses by the `optimizer` cell. Settings are sheet-level names (lr, optimizer, momentum, beta1,
beta2, eps, weight_decay, lo, hi, n, n_valid, held_out), so the formulas read as the rules do.
Every formula torch computes is cached with torch's value (cfxl.records.unrolled) and listed for
`cfxl recalc --verify`.
"""

from __future__ import annotations

import functools

import numpy as np

from cfxl.errors import CfxlError
from cfxl.records.types.cf import SLICE_OPTIMIZERS, SLICE_PARAMS
from cfxl.records.types.unrolled import UNROLLED_STATES, UnrolledRecords
from cfxl.sheets.book import MAX_ROWS, Book
from cfxl.sheets.grid import (
    Frame,
    formula_or_blank,
    prediction_formula,
    rating_scale,
    write_crosstab,
    write_grid_ids,
    write_param_block,
)
from cfxl.sheets.refs import area, cell, column
from cfxl.sheets.rules import RULES, render
from cfxl.sheets.styles import error_scale
from cfxl.sheets.unrolled_layout import FIRST_BAND, FRAMES, UnrolledLayout
from cfxl.sheets.unrolled_top import write_legend, write_settings, write_summary

SHEET = "train"
STAGES = {s.name: s for opt in SLICE_OPTIMIZERS for s in RULES[opt].stages}
OWNER = {state: opt for opt in SLICE_OPTIMIZERS for state in RULES[opt].states}
# the new value: param minus the step of the optimizer the optimizer cell names
UPDATE = "{param}-" + functools.reduce(
    lambda rest, opt: f'IF(optimizer="{opt}",{RULES[opt].step},{rest})',
    reversed(SLICE_OPTIMIZERS), "NA()")
TITLES = {  # each block's title and a second line, in its empty top-left corner
    "params": ("parameters", "(step k-1's updated)"),
    "grad": ("gradient", "(+ weight_decay * param)"),
    **{state: (state, f"({OWNER[state]} only)") for state in UNROLLED_STATES},
    "updated": ("updated parameters", "(torch.optim's rule)"),
    "start": ("start: torch's initial", "parameters (edit them)"),
    "copy": ("the start", "(a copy of the top's)"),  # band 0's `updated`
}


def write_unrolled_sheet(book: Book, rec: UnrolledRecords) -> None:
    """The `train` sheet for K recorded steps (rec.steps), in its own sheet of `book`."""
    U, M = rec.slice.ratings.shape
    L = UnrolledLayout(U, M, rec.n_factors, rec.steps)
    last = L.band(L.steps + 1) - 1
    if last >= MAX_ROWS:
        raise CfxlError(f"{L.steps} steps need {last + 1:,} rows, more than a sheet's "
                         f"{MAX_ROWS:,}: take fewer steps")
    ws = book.sheet(SHEET, _note(rec, L))
    write_settings(book, ws, L, rec)
    write_crosstab(book, ws, L.grid, rec.slice, mark_valid=True)
    book.text(ws, L.rating_row, L.grid.uf_col, "ratings", "group")
    book.text(ws, L.rating_row + 1, L.grid.uf_col, "grey: held out", "note")
    write_legend(book, ws, L)
    _start(book, ws, L, rec)
    for k, tol in enumerate(_tolerances(rec), start=1):
        _band(book, ws, L, rec, k, tol)
    write_summary(book, ws, L, rec)
    _looks(ws, L, rec)


def _note(rec: UnrolledRecords, L: UnrolledLayout) -> str:
    h, per_factor = rec.hyper, 6 * (L.n_users + L.n_movies)
    s = rec.slice
    return (f"The bias sheet's EmbeddingDotBias on the slice's {s.n - s.n_valid} training ratings "
            f"({s.n_valid} more held out for validation, grey), {L.n_factors} "
            f"factors, trained full-batch for {L.steps} steps entirely in formulas, a band of "
            f"{L.band_rows} rows per step; torch.optim ({h.opt}, lr {h.lr:g}, float64) computed "
            f"every cached value. Edit lr, pick another optimizer (yellow, top right) or edit a "
            f"start value (yellow, below the ratings): every band, the loss table and the chart "
            f"recompute. Size: {L.formulas_per_step:,} "
            f"formulas per step, {L.formulas:,} in all; a step costs 3 grids of {L.n_users} x "
            f"{L.n_movies} plus 6 per parameter, a factor {per_factor} more per step (200 steps "
            f"of 3 factors: about 280,000 formulas, seconds to recompute).")


def _frame(book: Book, ws, fr: Frame, rec: UnrolledRecords, title: str, values=None,
           fmt: str = "input6") -> None:
    """A block's title in its empty corner, its labels and ids, and (band 0) its values."""
    title, line = TITLES[title]
    book.text(ws, fr.mb_row, 0, title, "group")
    book.text(ws, fr.mb_row + 1, 0, line, "note")
    write_param_block(book, ws, fr, rec.slice, values, fmt)


def _band_title(book: Book, ws, L: UnrolledLayout, k: int) -> None:
    t = L.band(k)
    book.text(ws, t, 0, "step", "head")
    if k == 0:
        book.number(ws, t, L.step_col, 0, "int")
    else:
        book.formula(ws, t, L.step_col, f"={cell(L.band(k - 1), L.step_col)}+1", k, "int")


def _start(book: Book, ws, L: UnrolledLayout, rec: UnrolledRecords) -> None:
    """Band 0: torch's initial parameters (editable) around the held-out grid, right below the
    ratings; zeros for the state; its `updated` block a copy of the start."""
    _band_title(book, ws, L, 0)
    book.text(ws, L.band(0), L.grid.grid_col,
              "the start: torch's initial parameters (seed "
              f"{rec.seed}) below the ratings, the optimizer's empty state as zeros",
              "note")
    start = {p: rec.value[p][0] for p in SLICE_PARAMS}
    zeros = {p: np.zeros_like(v) for p, v in start.items()}
    S = L.start
    _frame(book, ws, S, rec, "start", start)
    book.text(ws, S.top - 1, S.grid_col, "inside the start: 1 where a rating is held out "
              "(validation only), 0 where the model trains on it", "group")
    for i, j in zip(*np.nonzero(~np.isnan(rec.slice.ratings))):
        held = bool(rec.slice.valid[i, j])
        book.number(ws, S.pred_row + i, S.grid_col + j, int(held), "held_out" if held else "int")
    for name in UNROLLED_STATES:
        _frame(book, ws, L.frame(0, name), rec, name, zeros, "sci")
    copy = L.frame(0, "updated")
    _frame(book, ws, copy, rec, "copy")
    for (p, idx, r, c), (_, _, r0, c0) in zip(copy.elements(), S.elements()):
        book.formula(ws, r, c, f"={cell(r0, c0)}", start[p][idx], "num6", check=False)


def _refs(now: dict[str, str], was: dict[str, str]):
    """The rules' tokens (cfxl.sheets.rules.render) on this band, now, and one band up, was; a
    setting by its sheet-level name, 1 - beta1 as (1-beta1)."""
    def ref(kind: str, name: str, mod: str | None) -> str:
        if kind == "$":
            return f"(1-{name[2:]})" if name.startswith("1-") else name
        return (was if mod else now)[name]

    return ref


def _band(book: Book, ws, L: UnrolledLayout, rec: UnrolledRecords, k: int, tol: dict) -> None:
    """Step k: torch's k-th optimizer step, as formulas over this band and the one above."""
    s, t = k - 1, L.band(k)  # s: index into the per-step records
    here = {name: L.frame(k, name) for name in FRAMES}
    P, G = here["params"], here["grad"]
    for name in FRAMES:
        _frame(book, ws, here[name], rec, name)
    _band_title(book, ws, L, k)
    shared = {"step": cell(t, L.step_col), "lr": "lr"}  # the same for every element
    for col, name in zip(L.bc_cols, ("bias_correction1", "bias_correction2")):
        # torch's 1 - beta ** step, computed whichever the optimizer (only Adam uses it)
        book.text(ws, t, col - 1, name, "right")
        book.formula(ws, t, col, "=" + render(STAGES[name].formula, _refs(shared, {})),
                     getattr(rec, name)[s], "num6")
        shared[name] = cell(t, col)

    # forward: predictions, errors, the MSE; backward: d loss/dx
    U, gc, lc = L.n_users, P.grid_col, P.last_col
    er, dx = L.err_row(k), G.pred_row
    book.text(ws, L.err_head(k), 0, "error = prediction - rating", "group")
    write_grid_ids(book, ws, P, rec.slice, L.err_head(k))
    unrated = np.isnan(rec.slice.ratings)  # not in the loss: nothing of torch's to check
    for i in range(U):
        for j in range(L.n_movies):
            c = gc + j
            y, p = cell(L.rating_row + i, c), cell(P.pred_row + i, c)
            held = cell(L.start.pred_row + i, c)  # 1: held out, not in the loss
            grids = (
                (P.pred_row, prediction_formula(P, i, j, ("lo", "hi")), rec.pred, None, "num", ""),
                (er, f'=IF({y}="","",{p}-{y})', rec.err, tol["err"], "num", ""),
                (dx, f'=IF(OR({y}="",{held}=1),0,2/n*({p}-{y})*(({p}-lo)*(hi-{p})/(hi-lo)))',
                 rec.dloss_dx, tol["dloss_dx"], "sci", 0))
            for top, formula, values, scale, fmt, blank in grids:
                formula_or_blank(book, ws, top + i, c, formula,
                                 np.nan if unrated[i, j] else values[s, i, j], fmt, blank=blank,
                                 scale=None if scale is None else scale[i, j])
    errors = area(er, gc, er + U - 1, lc)
    ws.conditional_format(errors, error_scale(rec.slice.y_range[1] - rec.slice.y_range[0]))
    book.text(ws, t, L.loss_col - 1, "MSE", "right")
    book.formula(ws, t, L.loss_col, f"=SUMPRODUCT({errors},{errors},1-held_out)/n", rec.loss[s],
                 "loss", scale=tol["mse"])
    if rec.slice.n_valid:
        book.text(ws, t, L.valid_col - 1, "valid MSE", "right")
        book.formula(ws, t, L.valid_col, f"=SUMPRODUCT({errors},{errors},held_out)/n_valid",
                     rec.valid_loss[s], "num", scale=tol["valid_mse"])

    # every element: parameter, gradient, optimizer state, update (torch's rules, rendered here)
    tops = {name: here[name].top for name in FRAMES}
    cols = _columns(L)
    for p, idx, r, c in P.elements():
        d, col = r - P.top, cols[c]  # the element's row within any block of a band; its column
        now = {name: f"{col}{top + d + 1}" for name, top in tops.items()}
        was = {name: f"{col}{top + d + 1 - L.band_rows}" for name, top in tops.items()}
        now |= shared | {"param": now["params"], "dloss": _chain_rule(P, dx, p, idx)}
        ref = _refs(now, was)
        # a copy of the cell one band up, verified there
        book.formula(ws, r, c, f"={was['updated']}", rec.value[p][s][idx], "num6", check=False)
        book.formula(ws, tops["grad"] + d, c, "=" + render(STAGES["grad"].formula, ref),
                     rec.grad_used[p][s][idx], "sci", scale=tol["grad"][p][idx])
        for name in UNROLLED_STATES:
            formula = f'=IF(optimizer="{OWNER[name]}",{render(STAGES[name].formula, ref)},0)'
            if name in rec.state:
                book.formula(ws, tops[name] + d, c, formula, rec.state[name][p][s][idx], "sci",
                             scale=tol[name][p][idx] if name in tol else None)
            else:  # the recorded optimizer keeps no such state: the formula gives 0
                ws.write_formula(tops[name] + d, c, formula, book.fmt("sci"), 0)
        book.formula(ws, tops["updated"] + d, c, "=" + render(UPDATE, ref), rec.value[p][k][idx],
                     "num6", scale=tol["updated"][p][idx])


@functools.cache
def _columns(L: UnrolledLayout) -> tuple[str, ...]:
    """Column letters of every column a band uses (references are built for every element)."""
    return tuple(column(c) for c in range(L.side_col))


def _chain_rule(P: Frame, dx: int, p: str, idx) -> str:
    """A parameter's gradient of the MSE: d loss/dx along its user's row (or movie's column),
    times the matching factor of each movie (or user) for a factor, summed."""
    gc, lc, U = P.grid_col, P.last_col, P.n_users
    if p.startswith("u_"):
        dx_ref = area(dx + idx[0], gc, dx + idx[0], lc)
        other = p == "u_weight" and area(P.mf_row + idx[1], gc, P.mf_row + idx[1], lc)
    else:
        dx_ref = area(dx, gc + idx[0], dx + U - 1, gc + idx[0])
        other = p == "i_weight" and area(P.pred_row, P.uf_col + idx[1], P.pred_row + U - 1,
                                         P.uf_col + idx[1])
    return f"SUMPRODUCT({dx_ref},{other})" if other else f"SUM({dx_ref})"


def _tolerances(rec: UnrolledRecords):
    """Per step, the size of the numbers each verified value is a difference of (cfxl.proof.verify's
    scale): prediction - rating cancels near convergence, and so do the gradient's sums and the
    running sums of gradients; a parameter is its start minus every update so far, and may come
    close to zero. Yields a dict per step, 0..K-1, of arrays shaped like what they scale."""
    h, n = rec.hyper, rec.slice.n - rec.slice.n_valid
    lo, hi = rec.slice.y_range
    rated, held = rec.slice.train, rec.slice.valid  # in the loss; held out
    y = np.abs(np.nan_to_num(rec.slice.ratings))  # (U, M)
    size = {p: np.abs(rec.value[p][0]) for p in SLICE_PARAMS}  # the largest |parameter| so far
    buf = {p: 0.0 for p in SLICE_PARAMS}
    avg = {p: 0.0 for p in SLICE_PARAMS}
    for s in range(rec.steps):
        v = {p: rec.value[p][s] for p in SLICE_PARAMS}
        # d loss/dx per unit of error (where the error is exactly 0, the steepest slope)
        ratio = np.divide(rec.dloss_dx[s], rec.err[s], out=np.full(y.shape, 2 / n * (hi - lo) / 4),
                          where=rated & (rec.err[s] != 0))
        dx = y * np.abs(ratio) * rated  # (U, M)
        grad = {"u_weight": dx @ np.abs(v["i_weight"]), "i_weight": dx.T @ np.abs(v["u_weight"]),
                "u_bias": dx.sum(1), "i_bias": dx.sum(0)}
        grad = {p: grad[p] + abs(h.weight_decay) * np.abs(v[p]) for p in SLICE_PARAMS}
        buf = {p: h.momentum * buf[p] + grad[p] for p in SLICE_PARAMS}
        avg = {p: h.betas[0] * avg[p] + grad[p] for p in SLICE_PARAMS}
        after = {p: rec.value[p][s + 1] for p in SLICE_PARAMS}
        size = {p: np.maximum(size[p], np.abs(after[p])) for p in SLICE_PARAMS}
        # a sum of squared errors moves by 2 |error| times each error's rounding (of y's size)
        sq = 2 * np.abs(np.nan_to_num(rec.err[s])) * y
        yield {"err": y, "dloss_dx": dx, "grad": grad, "momentum_buffer": buf, "exp_avg": avg,
               "mse": sq[rated].mean(), "valid_mse": sq[held].mean() if held.any() else 0.0,
               "updated": {p: size[p] + np.abs(after[p] - v[p]) for p in SLICE_PARAMS}}


def _looks(ws, L: UnrolledLayout, rec: UnrolledRecords) -> None:
    """Column widths, the ratings' colour scale on every prediction grid, and frozen panes: the
    note row and the user columns (biases, factors, ids) stay while the bands scroll."""
    g = L.grid
    ws.freeze_panes(FIRST_BAND, g.grid_col)
    ws.set_column(g.ub_col, g.id_col - 1, 11)
    ws.set_column(g.id_col, g.id_col, 9)
    ws.set_column(g.grid_col, L.side_col - 1, 10)
    ws.set_column(L.side_col, L.side_col, 17)
    ws.set_column(L.side_col + 1, L.side_col + 2, 12)
    for k in range(1, L.steps + 1):
        P = L.frame(k, "params")
        rating_scale(ws, area(P.pred_row, g.grid_col, P.pred_row + L.n_users - 1, g.last_col),
                     rec.slice.y_range)
