"""The `train` sheet: K steps of full-batch training of the slice model, entirely as formulas, so
editing lr or the optimizer cell re-trains the model inside the spreadsheet.

Each step is a band of rows (positions: cfxl.sheets.unrolled_layout): the parameters (the previous
band's updated ones), the prediction grid with the sigmoid range, the errors and the MSE, the
chain rule back to every parameter's gradient (as the `gradients` sheet does it), the optimizer
state and the updated parameters. torch.optim's single-tensor rules, in its order of operations:

    gradient         g = d MSE/d param + weight_decay * param
    momentum_buffer  b = momentum * b' + g                       (momentum only; else 0)
    exp_avg          m = m' + (1 - beta1) * (g - m')             (adam only; else 0)
    exp_avg_sq       v = v' * beta2 + (1 - beta2) * g * g        (adam only; else 0)
    updated          param - lr * g | param - lr * b |
                     param - lr / bias_correction1 * m / (SQRT(v) / bias_correction2^0.5 + eps)

where ' is the previous band's cell and the choice follows the `optimizer` cell. Settings are
sheet-level names (lr, optimizer, momentum, beta1, beta2, eps, weight_decay, lo, hi, n), so the
formulas read as the rules do. Every formula torch computes is cached with torch's value
(cfxl.records.unrolled) and listed for `cfxl recalc --verify`.
"""

from __future__ import annotations

import functools

import numpy as np
from xlsxwriter.utility import xl_col_to_name

from cfxl.errors import CfxlError
from cfxl.records.types import SLICE_PARAMS, UnrolledRecords
from cfxl.sheets.book import MAX_ROWS, Book, area, cell
from cfxl.sheets.gradients import cf_formats
from cfxl.sheets.lesson import prediction_formula
from cfxl.sheets.grid import rating_scale, span, write_id
from cfxl.sheets.unrolled_layout import FRAMES, STATES, Frame, TrainLayout
from cfxl.sheets.unrolled_top import write_legend, write_ratings, write_settings, write_summary

SHEET = "train"
TITLES = {  # each block's title and a second line, in its empty top-left corner
    "params": ("parameters", "(step k-1's updated)"),
    "grad": ("gradient", "(+ weight_decay * param)"),
    "momentum_buffer": ("momentum_buffer", "(momentum only)"),
    "exp_avg": ("exp_avg", "(adam only)"),
    "exp_avg_sq": ("exp_avg_sq", "(adam only)"),
    "updated": ("updated parameters", "(torch.optim's rule)"),
    "start": ("start: torch's initial", "parameters (edit them)"),  # band 0's `updated`
}


def write_train_sheet(book: Book, rec: UnrolledRecords) -> None:
    """The `train` sheet for K recorded steps (rec.steps), in its own sheet of `book`."""
    cf_formats(book)
    U, M = rec.slice.ratings.shape
    L = TrainLayout(U, M, rec.n_factors, rec.steps)
    last = L.band(L.steps + 1) - 1
    if last >= MAX_ROWS:
        raise CfxlError(f"{L.steps} steps need {last + 1:,} rows, more than a sheet's "
                         f"{MAX_ROWS:,}: take fewer steps")
    ws = book.sheet(SHEET, _note(rec, L))
    write_settings(book, ws, L, rec)
    write_ratings(book, ws, L, rec)
    write_legend(book, ws, L)
    _start(book, ws, L, rec)
    for k, tol in enumerate(_tolerances(rec), start=1):
        _band(book, ws, L, rec, k, tol)
    write_summary(book, ws, L, rec)
    _looks(ws, L, rec)


def _note(rec: UnrolledRecords, L: TrainLayout) -> str:
    h, per_factor = rec.hyper, 6 * (L.n_users + L.n_movies)
    return (f"The bias sheet's EmbeddingDotBias on the slice's {rec.slice.n} ratings, {L.n_factors} "
            f"factors, trained full-batch for {L.steps} steps entirely in formulas, a band of "
            f"{L.band_rows} rows per step; torch.optim ({h.opt}, lr {h.lr:g}, float64) computed "
            f"every cached value. Edit lr or pick another optimizer (yellow, top right): every "
            f"band, the loss table and the chart recompute. Size: {L.formulas_per_step:,} "
            f"formulas per step, {L.formulas:,} in all; a step costs 3 grids of {L.n_users} x "
            f"{L.n_movies} plus 6 per parameter, a factor {per_factor} more per step (200 steps "
            f"of 3 factors: about 280,000 formulas, seconds to recompute).")


def _frame_heads(book: Book, ws, fr: Frame, rec: UnrolledRecords, title: str) -> None:
    """A block's title in its corner, row labels, and the ids along its head row and column."""
    title, line = TITLES[title]
    book.text(ws, fr.mb_row, 0, title, "group")
    book.text(ws, fr.mb_row + 1, 0, line, "note")
    book.text(ws, fr.mb_row, fr.id_col, "bias", "right")
    book.text(ws, fr.head_row, fr.ub_col, "bias", "head")
    for f in range(fr.n_factors):
        book.text(ws, fr.mf_row + f, fr.id_col, f"factor {f + 1}", "right")
        book.text(ws, fr.head_row, fr.uf_col + f, f"factor {f + 1}", "head")
    _ids(book, ws, fr.head_row, fr, rec)


def _ids(book: Book, ws, head: int, g, rec: UnrolledRecords) -> None:
    book.text(ws, head, g.id_col, "userId", "head")
    for j in range(g.n_movies):
        write_id(book, ws, head, g.grid_col + j, rec.slice.movie_ids[j])
    for i in range(g.n_users):
        write_id(book, ws, head + 1 + i, g.id_col, rec.slice.user_ids[i])


def _band_title(book: Book, ws, L: TrainLayout, k: int) -> None:
    t = L.band(k)
    book.text(ws, t, 0, "step", "head")
    if k == 0:
        book.number(ws, t, L.step_col, 0, "int")
    else:
        book.formula(ws, t, L.step_col, f"={cell(L.band(k - 1), L.step_col)}+1", k, "int")


def _start(book: Book, ws, L: TrainLayout, rec: UnrolledRecords) -> None:
    """Band 0: torch's initial parameters as the `updated` block, zeros for the state."""
    _band_title(book, ws, L, 0)
    book.text(ws, L.band(0), L.grid.grid_col,
              "the start: torch's initial parameters (seed "
              f"{rec.seed}) in 'updated parameters' below, the optimizer's empty state as zeros",
              "note")
    for name in STATES + ("updated",):
        fr = L.frame(0, name)
        _frame_heads(book, ws, fr, rec, "start" if name == "updated" else name)
        for p, idx, r, c in fr.elements():
            if name == "updated":
                book.number(ws, r, c, rec.value[p][0][idx], "cf_start")
            else:
                book.number(ws, r, c, 0, "cf_sci")


def _band(book: Book, ws, L: TrainLayout, rec: UnrolledRecords, k: int, tol: dict) -> None:
    """Step k: torch's k-th optimizer step, as formulas over this band and the one above."""
    s, t = k - 1, L.band(k)  # s: index into the per-step records
    here = {name: L.frame(k, name) for name in FRAMES}
    P, G = here["params"], here["grad"]
    for name in FRAMES:
        _frame_heads(book, ws, here[name], rec, name)
    _band_title(book, ws, L, k)
    step = cell(t, L.step_col)
    for d, (col, values) in enumerate(zip(L.bc_cols, (rec.bias_correction1,
                                                      rec.bias_correction2))):
        # torch's 1 - beta ** step, computed whichever the optimizer (only Adam uses it)
        book.text(ws, t, col - 1, f"bias_correction{d + 1}", "right")
        book.formula(ws, t, col, f"=1-beta{d + 1}^{step}", values[s], "cf_val")

    # forward: predictions, errors, the MSE; backward: d loss/dx
    U, gc, lc = L.n_users, P.grid_col, P.last_col
    er, dx = L.err_row(k), G.pred_row
    book.text(ws, L.err_head(k), 0, "error = rating - prediction", "group")
    _ids(book, ws, L.err_head(k), P, rec)
    for i in range(U):
        for j in range(L.n_movies):
            c = gc + j
            y, p = cell(L.rating_row + i, c), cell(P.pred_row + i, c)
            grids = (
                (P.pred_row, prediction_formula(P, i, j, ("lo", "hi")), rec.pred, None, "num"),
                (er, f'=IF({y}="","",{y}-{p})', rec.err, tol["err"], "num"),
                (dx, f'=IF({y}="",0,2/n*({p}-{y})*(({p}-lo)*(hi-{p})/(hi-lo)))', rec.dloss_dx,
                 tol["dloss_dx"], "cf_sci"))
            for top, formula, values, scale, fmt in grids:
                if np.isnan(rec.slice.ratings[i, j]):  # not in the loss: nothing of torch's to check
                    blank = 0 if values is rec.dloss_dx else ""
                    ws.write_formula(top + i, c, formula, book.fmt(fmt), blank)
                else:
                    book.formula(ws, top + i, c, formula, values[s, i, j], fmt,
                                 scale=None if scale is None else scale[i, j])
    errors = area(er, gc, er + U - 1, lc)
    book.text(ws, t, L.loss_col - 1, "MSE", "right")
    book.formula(ws, t, L.loss_col, f"=SUMSQ({errors})/COUNT({errors})", rec.loss[s], "loss")

    # every element: parameter, gradient, optimizer state, update
    bc1, bc2 = (cell(t, c) for c in L.bc_cols)
    tops = {name: here[name].top for name in FRAMES}
    cols = _columns(L)
    for p, idx, r, c in P.elements():
        d, col = r - P.top, cols[c]  # the element's row within any block of a band; its column
        at = {name: f"{col}{top + d + 1}" for name, top in tops.items()}
        was = {name: f"{col}{top + d + 1 - L.band_rows}" for name, top in tops.items()}
        # a copy of the cell one band up, verified there
        book.formula(ws, r, c, f"={was['updated']}", rec.value[p][s][idx], "cf_val", check=False)
        book.formula(ws, tops["grad"] + d, c, f"={_chain_rule(P, dx, p, idx)}+weight_decay*"
                                              f"{at['params']}", rec.grad_used[p][s][idx],
                     "cf_sci", scale=tol["grad"][p][idx])
        g = at["grad"]
        rules = {
            "momentum_buffer": f'=IF(optimizer="momentum",momentum*{was["momentum_buffer"]}+{g},0)',
            "exp_avg": f'=IF(optimizer="adam",{was["exp_avg"]}+(1-beta1)*({g}-{was["exp_avg"]}),0)',
            "exp_avg_sq": f'=IF(optimizer="adam",{was["exp_avg_sq"]}*beta2+(1-beta2)*{g}*{g},0)'}
        for name, formula in rules.items():
            if name in rec.state:
                book.formula(ws, tops[name] + d, c, formula, rec.state[name][p][s][idx], "cf_sci",
                             scale=tol[name][p][idx] if name in tol else None)
            else:  # the recorded optimizer keeps no such state: the formula gives 0
                ws.write_formula(tops[name] + d, c, formula, book.fmt("cf_sci"), 0)
        update = (f'={at["params"]}-IF(optimizer="sgd",lr*{g},IF(optimizer="momentum",'
                  f'lr*{at["momentum_buffer"]},IF(optimizer="adam",lr/{bc1}*{at["exp_avg"]}/'
                  f'(SQRT({at["exp_avg_sq"]})/{bc2}^0.5+eps),NA())))')
        book.formula(ws, tops["updated"] + d, c, update, rec.value[p][k][idx], "cf_val",
                     scale=tol["updated"][p][idx])


@functools.cache
def _columns(L: TrainLayout) -> tuple[str, ...]:
    """Column letters of every column a band uses (references are built for every element)."""
    return tuple(xl_col_to_name(c) for c in range(L.side_col))


def _chain_rule(P: Frame, dx: int, p: str, idx) -> str:
    """A parameter's gradient of the MSE: d loss/dx along its user's row (or movie's column),
    times the matching factor of each movie (or user) for a factor, summed."""
    gc, lc, U = P.grid_col, P.last_col, P.n_users
    if p.startswith("u_"):
        dx_ref = span(dx + idx[0], gc, dx + idx[0], lc)
        other = p == "u_weight" and span(P.mf_row + idx[1], gc, P.mf_row + idx[1], lc)
    else:
        dx_ref = span(dx, gc + idx[0], dx + U - 1, gc + idx[0])
        other = p == "i_weight" and span(P.pred_row, P.uf_col + idx[1], P.pred_row + U - 1,
                                         P.uf_col + idx[1])
    return f"SUMPRODUCT({dx_ref},{other})" if other else f"SUM({dx_ref})"


def _tolerances(rec: UnrolledRecords):
    """Per step, the size of the numbers each verified value is a difference of (cfxl.proof.verify's
    scale): rating - prediction cancels near convergence, and so do the gradient's sums and the
    running sums of gradients; a parameter is its start minus every update so far, and may come
    close to zero. Yields a dict per step, 0..K-1, of arrays shaped like what they scale."""
    h, n = rec.hyper, rec.slice.n
    lo, hi = rec.slice.y_range
    rated = ~np.isnan(rec.slice.ratings)
    y = np.abs(np.nan_to_num(rec.slice.ratings))  # (U, M)
    size = {p: np.abs(rec.value[p][0]) for p in SLICE_PARAMS}  # the largest |parameter| so far
    buf = {p: 0.0 for p in SLICE_PARAMS}
    avg = {p: 0.0 for p in SLICE_PARAMS}
    for s in range(rec.steps):
        v = {p: rec.value[p][s] for p in SLICE_PARAMS}
        # d loss/dx per unit of error (where the error is exactly 0, the steepest slope)
        ratio = np.divide(rec.dloss_dx[s], rec.err[s], out=np.full(y.shape, 2 / n * (hi - lo) / 4),
                          where=rated & (rec.err[s] != 0))
        dx = y * np.abs(ratio)  # (U, M)
        grad = {"u_weight": dx @ np.abs(v["i_weight"]), "i_weight": dx.T @ np.abs(v["u_weight"]),
                "u_bias": dx.sum(1), "i_bias": dx.sum(0)}
        grad = {p: grad[p] + abs(h.weight_decay) * np.abs(v[p]) for p in SLICE_PARAMS}
        buf = {p: h.momentum * buf[p] + grad[p] for p in SLICE_PARAMS}
        avg = {p: h.betas[0] * avg[p] + grad[p] for p in SLICE_PARAMS}
        after = {p: rec.value[p][s + 1] for p in SLICE_PARAMS}
        size = {p: np.maximum(size[p], np.abs(after[p])) for p in SLICE_PARAMS}
        yield {"err": y, "dloss_dx": dx, "grad": grad, "momentum_buffer": buf, "exp_avg": avg,
               "updated": {p: size[p] + np.abs(after[p] - v[p]) for p in SLICE_PARAMS}}


def _looks(ws, L: TrainLayout, rec: UnrolledRecords) -> None:
    """Column widths, and the ratings' colour scale on every prediction grid."""
    g = L.grid
    ws.set_column(g.ub_col, g.id_col - 1, 11)
    ws.set_column(g.id_col, g.id_col, 9)
    ws.set_column(g.grid_col, L.side_col - 1, 10)
    ws.set_column(L.side_col, L.side_col, 17)
    ws.set_column(L.side_col + 1, L.side_col + 2, 12)
    for k in range(1, L.steps + 1):
        P = L.frame(k, "params")
        rating_scale(ws, area(P.pred_row, g.grid_col, P.pred_row + L.n_users - 1, g.last_col),
                     rec.slice.y_range)
