"""The graddesc workbook's `compare` sheet: every optimizer sheet side by side.

At the top, each sheet's last epoch: its loss, b and a, and their distance to the true values;
under it a chart of every sheet's loss by epoch (a log scale: the losses span decades); to the
right, the table the chart draws. Every number is a formula reading a sheet's epoch table, so an
edit on a sheet (its lr, a beta) moves this sheet too."""

from __future__ import annotations

from cfxl.records.types.line import COMPARE_SHEET, LINE_SHEETS, GraddescRecords, LineRecords
from cfxl.sheets.book import Book
from cfxl.sheets.graddesc_epochs import loss_scale
from cfxl.sheets.graddesc_layout import sheet_layout
from cfxl.sheets.refs import cell, on_sheet

END_HEAD = 3         # row 4: the last-epoch table's headers; a row per sheet below
END = ("loss", "b", "a", "b_err", "a_err")
END_HEADS = ("sheet", "rules", "epochs", "loss", "b", "a", "b - true b", "a - true a")
LOSS_COL = 9         # J: the loss-by-epoch table
CHART = {"width": 620, "height": 380}


def compare_cells(i: int, r: LineRecords) -> dict[tuple[int, int], tuple[int, int]]:
    """The compare sheet's cells of the i-th optimizer sheet (r's), each to the cell of that
    sheet it reads (0-based (row, col) both): the last epoch's loss, b, a and distances, then its
    loss by epoch. Run (cfxl.excel.actions) updates their proof from the sheet's."""
    L = sheet_layout(r)
    last = L.table_row(L.epochs)
    cells = {(END_HEAD + 1 + i, 3 + j): (last, L.table[k]) for j, k in enumerate(END)}
    return cells | {(END_HEAD + e, LOSS_COL + 1 + i): (L.table_row(e), L.table["loss"])
                    for e in range(1, L.epochs + 1)}


def write_compare_sheet(book: Book, records: GraddescRecords) -> None:
    ws = book.sheet(COMPARE_SHEET, [
        "Every optimizer sheet side by side: its last epoch's loss, b and a against the true "
        "values (data sheet), and its loss by epoch.",
        "All formulas reading each sheet's epoch table: edit an lr or a beta on a sheet and it "
        "moves here too."])
    book.text(ws, END_HEAD - 1, 0, "At the last epoch", "section")
    for j, h in enumerate(END_HEADS):
        book.text(ws, END_HEAD, j, h, "col_head")
    book.text(ws, END_HEAD - 1, LOSS_COL, "Loss by epoch", "section")
    book.text(ws, END_HEAD, LOSS_COL, "epoch", "col_head")
    most = max(int(r.epoch.max()) for r in records.runs.values())
    for e in range(1, most + 1):
        book.number(ws, END_HEAD + e, LOSS_COL, e, "int")
    chart = book.wb.add_chart({"type": "line"})
    for i, (opt, r) in enumerate(records.runs.items()):
        name, L = LINE_SHEETS[opt], sheet_layout(r)
        row, loss, size = END_HEAD + 1 + i, r.epoch_loss, loss_scale(r)
        last = {"loss": (loss[-1], size[-1]), "b": (r.new_b[-1], None), "a": (r.new_a[-1], None),
                "b_err": (r.new_b[-1] - r.true[0], abs(r.new_b[-1]) + abs(r.true[0])),
                "a_err": (r.new_a[-1] - r.true[1], abs(r.new_a[-1]) + abs(r.true[1]))}
        expected = [last[k] for k in END] + [(v, s) for v, s in zip(loss, size)]
        book.text(ws, row, 0, name, "label")
        book.text(ws, row, 1, r.rules)
        book.number(ws, row, 2, L.epochs, "int")
        keys = [*END, *["loss"] * L.epochs]
        for (at, source), k, (value, scale) in zip(compare_cells(i, r).items(), keys, expected):
            fmt = "loss" if k == "loss" else "sci" if k.endswith("_err") else "num"
            book.formula(ws, *at, "=" + on_sheet(name, cell(*source)), value, fmt, scale=scale)
        col = LOSS_COL + 1 + i
        book.text(ws, END_HEAD, col, name, "col_head")
        chart.add_series({"name": [COMPARE_SHEET, END_HEAD, col],
                          "categories": [COMPARE_SHEET, END_HEAD + 1, LOSS_COL,
                                         END_HEAD + L.epochs, LOSS_COL],
                          "values": [COMPARE_SHEET, END_HEAD + 1, col, END_HEAD + L.epochs, col],
                          "marker": {"type": "circle", "size": 4}})
    chart.set_title({"name": "Loss by epoch, every optimizer"})
    chart.set_x_axis({"name": "epoch"})
    chart.set_y_axis({"name": "loss (log scale)", "log_base": 10})
    chart.set_legend({"position": "right"})
    chart.set_size(CHART)
    ws.insert_chart(END_HEAD + len(records.runs) + 2, 0, chart)
    ws.set_column(0, 0, 12)
    ws.set_column(1, 8, 12)
    ws.set_column(LOSS_COL, LOSS_COL + len(records.runs), 11)
    ws.set_row(END_HEAD, 30)
    ws.freeze_panes(END_HEAD + 1, 0)
