"""The top of the `train` sheet: settings, a legend, the summary, the loss table and its chart.

The settings are named cells the formulas use (and `held_out`, the start's grid of 1s where a
rating is held out for validation); the legend says how a band reads."""

from __future__ import annotations

from cfxl.records.types.cf import SLICE_OPTIMIZERS
from cfxl.records.types.unrolled import UnrolledRecords
from cfxl.sheets.book import Book
from cfxl.sheets.refs import area, cell, on_sheet
from cfxl.sheets.unrolled_layout import SETTINGS, SUMMARY, UnrolledLayout

HINTS = {"lr": "edit me", "optimizer": "sgd, momentum or adam", "momentum": "momentum only",
         "beta1": "adam only", "beta2": "adam only", "eps": "adam only",
         "weight_decay": "L2, added to the gradient", "lo": "sigmoid range", "hi": "sigmoid range",
         "n": "training ratings: in the loss", "n_valid": "held out (grey): validation only"}
LEGEND = (
    "How a band reads (one band per step; step k + 1's band is the same shape, one band lower):",
    "parameters: the previous band's updated parameters (movie rows above, user columns left)",
    "prediction = sigmoid(user . movie + user bias + movie bias) * (hi - lo) + lo, as the model",
    "error = prediction - rating; MSE (title row): training errors' sum of squares / n, the loss",
    "d loss/dx = 2/n error (prediction - lo)(hi - prediction)/(hi - lo); 0 where held out",
    "gradient: d loss/dx summed along a user's row (times the movie factors) or a movie's column",
    "state and update: torch.optim's rules for the optimizer cell; other optimizers' state is 0",
    "Band 0 is the start: torch's initial parameters (yellow, editable, above), empty state (0)",
)


def write_settings(book: Book, ws, L: UnrolledLayout, rec: UnrolledRecords) -> None:
    """The labelled settings, each a sheet-level name the formulas use (lr, optimizer, ...)."""
    h = rec.hyper
    values = {"lr": h.lr, "optimizer": h.opt, "momentum": h.momentum, "beta1": h.betas[0],
              "beta2": h.betas[1], "eps": h.eps, "weight_decay": h.weight_decay,
              "lo": rec.slice.y_range[0], "hi": rec.slice.y_range[1]}
    s = L.side_col
    book.text(ws, L.title_row, s, "settings (yellow: edit them)", "group")
    for name in SETTINGS:
        r, c = L.setting(name)
        book.text(ws, r, s, name, "right")
        book.text(ws, r, c + 1, HINTS[name], "note")
        if name == "n":
            ratings = area(L.rating_row, L.grid.grid_col, L.rating_row + L.n_users - 1,
                           L.grid.last_col, absolute="rc")
            book.formula(ws, r, c, f"=COUNT({ratings})-n_valid", rec.slice.n - rec.slice.n_valid,
                         "int")
        elif name == "n_valid":
            book.formula(ws, r, c, "=SUM(held_out)", rec.slice.n_valid, "int")
        elif name == "optimizer":
            book.text(ws, r, c, values[name], "hyper")
            ws.data_validation(r, c, r, c, {"validate": "list", "source": list(SLICE_OPTIMIZERS),
                                            "error_message": "sgd, momentum or adam"})
        else:
            fmt = {"lo": "num2", "hi": "num2", "eps": "hyper_sci"}.get(name, "hyper")
            book.number(ws, r, c, values[name], fmt)
        book.wb.define_name(f"{ws.name}!{name}", "=" + on_sheet(ws.name, cell(r, c, absolute="rc")))
    g = L.start
    book.wb.define_name(f"{ws.name}!held_out", "=" + on_sheet(ws.name, area(
        g.pred_row, g.grid_col, g.pred_row + L.n_users - 1, g.last_col, absolute="rc")))


def write_summary(book: Book, ws, L: UnrolledLayout, rec: UnrolledRecords) -> None:
    """First and last MSE (live) against torch's, the last step's train and valid RMSE, the
    size, the loss table (the MSE and the valid MSE at every step) and its chart."""
    S = L.side_col
    first, last = L.table_row(1), L.table_row(L.steps)
    valid = rec.slice.n_valid > 0
    book.text(ws, L.summary(SUMMARY[0])[0] - 1, S, "summary", "group")
    sized = {"steps K": L.steps, "factors F": L.n_factors,
             "formulas per step": L.formulas_per_step, "formulas in all": L.formulas}
    for name in SUMMARY:
        r, c = L.summary(name)
        book.text(ws, r, S, name, "right")
        if name == "first MSE":
            book.formula(ws, r, c, f"={cell(first, S + 1)}", rec.loss[0], "loss")
        elif name == "last MSE":
            book.formula(ws, r, c, f"={cell(last, S + 1)}", rec.loss[-1], "loss")
        elif name == "torch's last MSE":
            book.number(ws, r, c, rec.loss[-1], "torch")
        elif name == "difference":
            live, torch = (cell(*L.summary(s)) for s in ("last MSE", "torch's last MSE"))
            book.formula(ws, r, c, f"={live}-{torch}", 0.0, "torch_sci", check=False)
        elif name == "train RMSE":
            book.formula(ws, r, c, f"=SQRT({cell(*L.summary('last MSE'))})",
                         rec.loss[-1] ** 0.5, "loss")
        elif name == "valid RMSE" and valid:
            book.formula(ws, r, c, f"=SQRT({cell(last, S + 2)})", rec.valid_loss[-1] ** 0.5,
                         "loss")
        elif name == "torch's valid RMSE" and valid:
            book.number(ws, r, c, rec.valid_loss[-1] ** 0.5, "torch")
        elif name in sized:
            book.number(ws, r, c, sized[name], "int")
    book.text(ws, L.summary("last MSE")[0], S + 2, f"at step {L.steps}, before its update", "note")
    book.text(ws, L.summary("train RMSE")[0], S + 2, "the last step's, square roots of its MSEs",
              "note")

    heads = ("step", "MSE", "valid MSE", "torch's MSE", "torch's valid MSE")
    for d, head in enumerate(heads):
        book.text(ws, L.table_head, S + d, head, "head")
    for k in range(1, L.steps + 1):
        r = L.table_row(k)
        book.number(ws, r, S, k, "int")
        book.formula(ws, r, S + 1, f"={cell(L.band(k), L.loss_col)}", rec.loss[k - 1], "num")
        book.number(ws, r, S + 3, rec.loss[k - 1], "torch")
        if valid:
            book.formula(ws, r, S + 2, f"={cell(L.band(k), L.valid_col)}",
                         rec.valid_loss[k - 1], "num")
            book.number(ws, r, S + 4, rec.valid_loss[k - 1], "torch")
    chart = book.wb.add_chart({"type": "line"})
    for d, name in enumerate(heads[1:], start=1):
        if d % 2 == 0 and not valid:
            continue
        chart.add_series({"name": name, "categories": [ws.name, first, S, last, S],
                          "values": [ws.name, first, S + d, last, S + d],
                          **({"line": {"dash_type": "dash"}} if d > 2 else {})})
    chart.set_title({"name": "MSE by step: training and held-out ratings"})
    chart.set_x_axis({"name": "step"})
    chart.set_y_axis({"name": "MSE", "log_base": 10})
    chart.set_legend({"position": "bottom"})
    chart.set_size({"width": 560, "height": max(240, 20 * len(L.legend_rows))})
    ws.insert_chart(L.legend_rows[0], L.chart_col, chart)


def write_legend(book: Book, ws, L: UnrolledLayout) -> None:
    """How a band reads, in band 0's free rows below the ratings (as many lines as fit)."""
    for r, line in zip(L.legend_rows, LEGEND):
        book.text(ws, r, 0, line, "note")
