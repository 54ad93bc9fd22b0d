"""lr_find: the lr finder's run, step by step, its loss smoothed live as fastai smooths it, and
the chart of smoothed loss against lr (log scale) with the suggested lr marked."""

from __future__ import annotations

from cfxl.records.types.lr_find import LrFindRecords
from cfxl.sheets.book import Book
from cfxl.sheets.refs import cell

SHEET = "lr_find"
TOP = 2                    # the settings block's first row
TABLE = 8                  # the table's header row; its steps follow
COLS = ("step", "lr", "loss", "average", "smoothed loss")
STEP, LR, LOSS, AVG, SMOOTH = range(len(COLS))
CHART_COL = 6
BETA_CELL = (TOP + 2, 1)


def write_lr_find_sheet(book: Book, rec: LrFindRecords) -> None:
    """The settings (beta yellow: it drives the smoothing), the table, and the chart."""
    ws = book.sheet(SHEET, "The lr finder (fastai's lr_find): training from a fresh model, one "
                           "mini-batch a step, the lr growing exponentially. The loss is smoothed "
                           "as fastai does, live from beta (yellow); the suggestion is fastai's "
                           "rule on torch's run.")
    beta = cell(*BETA_CELL, absolute="rc")
    rows = [("run", rec.label), ("ended", rec.ended)]
    for i, (label, text) in enumerate(rows):
        book.text(ws, TOP + i, 0, label, "label")
        book.text(ws, TOP + i, 1, text)
    book.text(ws, BETA_CELL[0], 0, "beta", "label")
    book.number(ws, *BETA_CELL, rec.beta, "hyper")
    book.text(ws, BETA_CELL[0], 2, "the smoothing: average = beta * the one above + (1 - beta) * "
                                   "loss; smoothed = average / (1 - beta ^ step)", "note")
    book.text(ws, TOP + 3, 0, "suggested lr", "label")
    book.number(ws, TOP + 3, 1, rec.suggestion, "sci")
    book.text(ws, TOP + 3, 2, f"fastai's {rec.rule} rule on torch's run (beta {rec.beta:g}): "
                              f"step {rec.suggested + 1}", "note")
    for j, name in enumerate(COLS):
        book.text(ws, TABLE, j, name, "col_head")
    for i in range(rec.n_steps):
        r = TABLE + 1 + i
        book.number(ws, r, STEP, i + 1, "int")
        book.number(ws, r, LR, rec.lr[i], "sci")
        book.number(ws, r, LOSS, rec.loss[i], "num6")
        loss, step = cell(r, LOSS), cell(r, STEP)
        before = f"{beta}*{cell(r - 1, AVG)}+" if i else ""
        book.formula(ws, r, AVG, f"={before}(1-{beta})*{loss}", rec.average[i], "num6")
        book.formula(ws, r, SMOOTH, f"={cell(r, AVG)}/(1-{beta}^{step})", rec.smooth[i], "num6")
    ws.set_column(0, 0, 12)
    ws.set_column(1, SMOOTH, 13)
    ws.freeze_panes(TABLE + 1, 0)
    _chart(book, ws, rec)


def _chart(book: Book, ws, rec: LrFindRecords) -> None:
    first, last = TABLE + 1, TABLE + rec.n_steps
    name, at = ws.get_name(), TABLE + 1 + rec.suggested
    chart = book.wb.add_chart({"type": "scatter", "subtype": "straight"})
    chart.add_series({"name": "smoothed loss", "categories": [name, first, LR, last, LR],
                      "values": [name, first, SMOOTH, last, SMOOTH]})
    chart.add_series({"name": "suggested lr", "categories": [name, at, LR, at, LR],
                      "values": [name, at, SMOOTH, at, SMOOTH],
                      "marker": {"type": "circle", "size": 8}, "line": {"none": True}})
    chart.set_title({"name": "Smoothed loss by learning rate"})
    chart.set_x_axis({"name": "learning rate (log scale)", "log_base": 10})
    chart.set_y_axis({"name": "loss (MSE)"})
    chart.set_legend({"position": "bottom"})
    chart.set_size({"width": 640, "height": 360})
    ws.insert_chart(TOP, CHART_COL, chart)
