"""The epoch table of a graddesc optimizer sheet and its "Error by epoch" chart, in view under the
top cells: per epoch the loss, b and a at the epoch's end and their distance to the true values
on the data sheet; the lesson's adam_ann anneals its lr here, the lesson's eve computes its d."""

from __future__ import annotations

import numpy as np

from cfxl.records.types.line import LineRecords
from cfxl.sheets.book import Book
from cfxl.sheets.graddesc_intro import DATA_TOP, DATA_Y
from cfxl.sheets.graddesc_layout import CHART_COL, CHART_ROWS, SheetLayout
from cfxl.sheets.refs import area, cell, on_sheet
from cfxl.sheets.rules import EVE_EPOCH, render

ROW_PX = 20  # a default row's height in pixels


def truth_name(r: LineRecords) -> str:
    """Whose values the grey cells hold: torch.optim's, or numpy's run of the lesson's rules."""
    return "torch" if r.rules == "torch" else "numpy"


def loss_scale(r: LineRecords) -> np.ndarray:
    """(epochs,) the size of what each epoch's loss is computed from: err^2 = (pred - y)^2 keeps
    the rounding of pred and y (about their size times |pred - y|), and sqrt(mean) passes it on
    divided by twice the loss."""
    size = np.abs(r.pred - r.y) * (np.abs(r.pred) + np.abs(r.y))  # (steps,)
    loss = r.epoch_loss
    means = np.array([size[r.epoch == e].mean() for e in range(1, len(loss) + 1)])
    return np.divide(means, loss, out=np.zeros_like(loss), where=loss > 0)


def write_epoch_table(book: Book, ws, r: LineRecords, L: SheetLayout, chart_px: int) -> None:
    """epoch | loss | the truth's loss | b | a | b - true b | a - true a (and the lesson's
    extras), one row per epoch; then the chart of the loss, chart_px wide, left of the table."""
    T = L.table
    heads = {"epoch": "epoch", "loss": "loss", "truth_loss": f"{truth_name(r)} loss",
             "b": "b", "a": "a", "b_err": "b - true b", "a_err": "a - true a", "ft_1": "ft-1",
             "ft_2": "ft-2"}
    for k, j in T.items():
        book.text(ws, L.band_row, j, heads.get(k, k), "col_head")
    ws.write_comment(L.band_row, T["loss"], "sqrt of the mean err^2 over the epoch's rows")
    ws.write_comment(L.band_row, T["b"], "b and a at the epoch's end: its last row's new b, new a")
    ws.write_comment(L.band_row, T["b_err"], "the distance to the true b and a on the data sheet")
    book.text(ws, L.table_row(0), T["epoch"], "start", "start")
    loss, err2, scale = r.epoch_loss, L.cols["err2"], loss_scale(r)
    n = L.n_rows
    for e in range(1, L.epochs + 1):
        row = L.table_row(e)
        first, last = L.epoch_rows(e)
        book.number(ws, row, T["epoch"], e, "int")
        book.formula(ws, row, T["loss"], f"=SQRT(AVERAGE({area(first, err2, last, err2)}))",
                     loss[e - 1], "loss", scale=scale[e - 1])
        book.number(ws, row, T["truth_loss"], loss[e - 1], "torch")
        for j, p in enumerate("ba"):
            value = float((r.new_b, r.new_a)[j][e * n - 1])
            book.formula(ws, row, T[p], f"={cell(last, L.cols['new_' + p])}", value, "num")
            true = on_sheet("data", cell(DATA_TOP + j, DATA_Y, absolute="rc"))
            book.formula(ws, row, T[p + "_err"], f"={cell(row, T[p])}-{true}",
                         value - r.true[j], "sci", scale=abs(value) + abs(r.true[j]))
    if r.opt == "eve":
        _write_eve(book, ws, r, L)
    elif "lr" in T:
        _write_annealing(book, ws, r, L)
    _chart(book, ws, L, chart_px)


def _chart(book: Book, ws, L: SheetLayout, width: int) -> None:
    chart = book.wb.add_chart({"type": "line"})
    name, c = ws.get_name(), L.table
    first, last = L.table_row(1), L.table_row(L.epochs)
    chart.add_series({"name": "loss",
                      "categories": [name, first, c["epoch"], last, c["epoch"]],
                      "values": [name, first, c["loss"], last, c["loss"]],
                      "marker": {"type": "circle"}})
    chart.set_title({"name": "Error by epoch"})
    chart.set_x_axis({"name": "epoch"})
    chart.set_y_axis({"name": "loss"})
    chart.set_legend({"none": True})
    chart.set_size({"width": width, "height": CHART_ROWS * ROW_PX})
    ws.insert_chart(L.band_row, CHART_COL, chart)


def _write_annealing(book: Book, ws, r: LineRecords, L: SheetLayout) -> None:
    """The lesson's adam_ann macro as formulas: after each epoch, lr / divisor when
    sqrt(ms b) + sqrt(ms a) at its end is over ratio times the smallest such value before it."""
    T, x = L.table, r.epoch_extra
    ms_b, ms_a = L.cols["ms_b"], L.cols["ms_a"]
    start, top = L.table_row(0), L.start_row
    avg0 = (r.state_start["ms"][0] ** 0.5) + (r.state_start["ms"][1] ** 0.5)
    book.formula(ws, start, T["avg_grad2"], f"=SQRT({cell(top, ms_b)})+SQRT({cell(top, ms_a)})",
                 avg0, "sci")
    ratio, divisor = (cell(*L.params[k], absolute="rc") for k in ("ratio", "divisor"))
    lr, avg, low, rat = T["lr"], T["avg_grad2"], T["prev_grad2"], T["gradrat"]
    for e in range(1, L.epochs + 1):
        row = L.table_row(e)
        last = L.epoch_rows(e)[1]
        f = (cell(*L.params["lr"], absolute="rc") if e == 1 else
             f"IF({cell(row - 1, rat)}>{ratio},{cell(row - 1, lr)}/{divisor},{cell(row - 1, lr)})")
        book.formula(ws, row, lr, "=" + f, x["lr"][e - 1], "general")
        book.formula(ws, row, avg, f"=SQRT({cell(last, ms_b)})+SQRT({cell(last, ms_a)})",
                     x["avg_grad2"][e - 1], "sci")
        book.formula(ws, row, low, f"=MIN({area(start, avg, row - 1, avg)})",
                     x["prev_grad2"][e - 1], "sci")
        book.formula(ws, row, rat, f"={cell(row, avg)}/{cell(row, low)}", x["gradrat"][e - 1],
                     "num")


def _write_eve(book: Book, ws, r: LineRecords, L: SheetLayout) -> None:
    """The lesson's eve macro as formulas: before each epoch, ft-1 and ft-2 are the two losses
    before it, r their volatility and d its running average (cfxl.sheets.rules.EVE_EPOCH); the
    start values (the Reset's d = 1, and for the first epoch the start values' loss and half of
    it) are yellow, as the state in the step table's start row."""
    T, x = L.table, r.epoch_extra
    start = L.table_row(0)
    book.number(ws, start, T["d"], r.epoch_start["d"], "sci_in")
    ws.write_comment(start, T["d"], "the Reset's d: 1")
    for e in range(1, L.epochs + 1):
        row = L.table_row(e)
        f1, f2 = x["ft_1"][e - 1], x["ft_2"][e - 1]
        if e == 1:
            book.number(ws, row, T["ft_1"], f1, "num_in")
            book.number(ws, row, T["ft_2"], f2, "num_in")
            ws.write_comment(row, T["ft_1"], "the Reset's losses: the start values' loss and "
                                             "half of it (so r = 1)")
        else:
            book.formula(ws, row, T["ft_1"], f"={cell(row - 1, T['loss'])}", f1, "num")
            book.formula(ws, row, T["ft_2"], f"={cell(row - 1, T['ft_1'])}", f2, "num")

        def ref(kind: str, name: str, mod: str | None, row: int = row) -> str:
            if kind == "$":
                top = cell(*L.params[name.removeprefix("1-")], absolute="rc")
                return f"(1-{top})" if name.startswith("1-") else top
            return cell(row - 1 if mod else row, T[name])

        (r_stage, d_stage) = EVE_EPOCH
        book.formula(ws, row, T["r"], "=" + render(r_stage.formula, ref), x["r"][e - 1], "sci",
                     scale=(f1 + f2) / min(f1, f2))
        book.formula(ws, row, T["d"], "=" + render(d_stage.formula, ref), x["d"][e - 1], "sci")
    ws.write_comment(L.band_row, T["r"], EVE_EPOCH[0].note)
    ws.write_comment(L.band_row, T["d"], EVE_EPOCH[1].note)
