"""The lesson's graddesc workbook, live: y = a*x + b trained one row at a time, in formulas.

A sheet per optimizer whose every step is a formula chained to the row above, cached with
torch's value.

Layout of an optimizer sheet (`sheet_layout` gives it): A1:B2 stay free for the Reset / Run
buttons; the start values b and a sit in D1 and D2 (labels in C), lr in F1, the optimizer's other
settings to its right in pairs (label, value), the note from L1. Row 3 holds the headers, row 4
the start row (the optimizer's state before the first step), rows 5.. one row per step, epochs
stacked. Beside the update: the truth's new b and new a (grey numbers) and their differences;
then a table of the loss per epoch and the "Error by epoch" chart below it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cfxl.records.types.line import LINE_SHEETS, GraddescRecords, LineRecords
from cfxl.sheets.book import Book
from cfxl.sheets.graddesc_cols import Col, Param, lesson_columns, torch_columns
from cfxl.sheets.graddesc_intro import (
    DATA_HEAD,
    DATA_X,
    DATA_Y,
    write_data_sheet,
    write_intro_sheet,
)
from cfxl.sheets.refs import area, cell, on_sheet
from cfxl.sheets.rules import render


@dataclass(frozen=True)
class SheetLayout:
    """0-based positions on an optimizer sheet; cols maps a column key to its column."""

    params: dict[str, tuple[int, int]]  # top cell key -> (row, col) of its value
    cols: dict[str, int]
    n_rows: int                  # data rows per epoch
    epochs: int
    truth_col: int               # truth's new b; new a, then the two differences to its right
    table_col: int               # the epoch table: epoch, loss, truth's loss (, lesson extras)
    note_col: int = 11           # L1: the note, L2: what to edit (right of the top cells)
    head_row: int = 2            # row 3
    start_row: int = 3           # row 4: state before the first step
    first_row: int = 4           # row 5: the first step

    def row(self, step: int) -> int:
        """0-based sheet row of a 0-based step."""
        return self.first_row + step

    def epoch_rows(self, epoch: int) -> tuple[int, int]:
        """First and last sheet rows of a 1-based epoch."""
        first = self.first_row + (epoch - 1) * self.n_rows
        return first, first + self.n_rows - 1

    @property
    def chart_row(self) -> int:
        return self.start_row + self.epochs + 3


def sheet_columns(r: LineRecords) -> tuple[list[Param], list[Col]]:
    return torch_columns(r) if r.rules == "torch" else lesson_columns(r)


def sheet_layout(r: LineRecords) -> SheetLayout:
    params, cols = sheet_columns(r)
    fixed = {"b0": (0, 3), "a0": (1, 3), "lr": (0, 5), "weight_decay": (1, 5)}  # D1 D2 F1 F2
    pos = {p.key: fixed[p.key] for p in params if p.key in fixed}
    rest = [p for p in params if p.key not in fixed]
    pos.update({p.key: (i % 2, 7 + 2 * (i // 2)) for i, p in enumerate(rest)})  # H1, H2, J1, J2
    keys = {c.key: j for j, c in enumerate(cols)}
    truth = len(cols) + 1
    return SheetLayout(pos, keys, len(r.x) // int(r.epoch.max()), int(r.epoch.max()),
                       truth, truth + 5)


def write_graddesc_sheets(book: Book, records: GraddescRecords, *, rules: str | None = None,
                          buttons: bool = False) -> None:
    """Intro, data, then one live sheet per optimizer, in the lesson's order.

    records come from cfxl.records.graddesc.run(rules); rules, when given, must be the records' rules;
    buttons: the Intro tells of the Reset and Run buttons (cfxl.excel.macros puts them in A1:B2).
    """
    if rules is not None and rules != records.rules:
        raise ValueError(f"these records follow the {records.rules} rules, not {rules}: build "
                         f"them with cfxl.records.graddesc.run({rules!r})")
    write_intro_sheet(book, records, buttons=buttons)
    write_data_sheet(book, records.data)
    for r in records.runs.values():
        write_optimizer_sheet(book, r)


def _truth(r: LineRecords) -> str:
    return "torch" if r.rules == "torch" else "numpy"


def _note(r: LineRecords) -> tuple[str, str]:
    h = r.hyper
    if r.rules == "torch":
        what = (f"torch.optim.{_torch_class(r.opt)} trained y = b + a*x in float64, batch size 1, "
                f"{h.epochs} epochs of {len(r.x) // h.epochs} rows. Each row, step to new a, is "
                f"formulas following its update, chained to the row above; grey: torch's values.")
    else:
        what = (f"The lesson's own rules for {LINE_SHEETS[r.opt]} (see Intro), {h.epochs} epochs; "
                f"grey: the same rules computed in numpy.")
    edit = ("Edit the yellow cells (b, a, lr and the settings beside it"
            + (", the start state in row 4" if r.rules == "lesson" and r.state else "")
            + "): every row and the loss recompute.")
    return what, edit


def _torch_class(opt: str) -> str:
    return {"sgd": "SGD", "momentum": "SGD(momentum)", "adagrad": "Adagrad",
            "rmsprop": "RMSprop", "adam": "Adam", "adam_ann": "Adam + StepLR"}[opt]


def write_optimizer_sheet(book: Book, r: LineRecords) -> None:
    """One optimizer's sheet: top cells, start row, a row per step, truth, loss table, chart."""
    params, cols = sheet_columns(r)
    L = sheet_layout(r)
    ws = book.sheet(LINE_SHEETS[r.opt], _note(r), note_at=(0, L.note_col))  # A1:B2: the buttons
    for p in params:
        row, col = L.params[p.key]
        book.text(ws, row, col - 1, p.label, "right")
        book.number(ws, row, col, p.value, "param")
        if p.comment:
            ws.write_comment(row, col, p.comment)

    for j, c in enumerate(cols):
        book.text(ws, L.head_row, j, c.head, "col_head")
        if c.comment:
            ws.write_comment(L.head_row, j, c.comment)
        if c.start is not None:
            book.number(ws, L.start_row, j, c.start, "start_input" if c.start_input else "start")
    book.text(ws, L.start_row, 0, "start", "start")
    for step in range(r.n_steps):
        row = L.row(step)
        new_epoch = step > 0 and r.epoch[step] != r.epoch[step - 1]
        for j, c in enumerate(cols):
            if c.formula is None:
                book.number(ws, row, j, c.values[step], c.fmt)
                continue
            template = (c.first if step == 0 and c.first else
                        c.epoch_first if new_epoch and c.epoch_first else c.formula)
            book.formula(ws, row, j, _fill(template, step, r, L), c.values[step], c.fmt,
                         check=c.check, scale=None if c.scale is None else c.scale[step])
    _write_truth(book, ws, r, L)
    _write_epoch_table(book, ws, r, L)
    ws.set_column(0, 1, 6)
    for j, c in enumerate(cols[2:], start=2):  # room for the labels above and exp_avg_sq's size
        ws.set_column(j, j, max(13, len(c.head) + 2))
    ws.set_column(L.truth_col, L.table_col + 6, 12)
    ws.set_row(L.head_row, 30)  # two lines where a header is long: new b - torch
    ws.freeze_panes(L.start_row, 2)


def _fill(template: str, step: int, r: LineRecords, L: SheetLayout) -> str:
    """A column's template as the formula of a 0-based step's row (tokens: graddesc_cols)."""
    row = L.row(step)

    def one(kind: str, name: str, mod: str | None) -> str:
        if kind == "$":
            return cell(*L.params[name], absolute="rc")
        if kind == "@":
            if name == "elr":  # this epoch's lr in the epoch table
                return cell(L.start_row + int(r.epoch[step]), L.table_col + 3, absolute="rc")
            data_row = DATA_HEAD + 1 + step % L.n_rows
            return on_sheet("data", cell(data_row, DATA_X if name == "x" else DATA_Y))
        col = L.cols[name]
        if mod == ":prev_epoch":
            first, last = L.epoch_rows(int(r.epoch[step]) - 1)
            return area(first, col, last, col, absolute="rc")
        return cell(row - 1 if mod == "-" else row, col)

    return render(template, one)


def _write_truth(book: Book, ws, r: LineRecords, L: SheetLayout) -> None:
    """The truth's new b and new a beside each row, and the sheet's minus the truth's."""
    t = _truth(r)
    c = L.truth_col
    for j, head in enumerate((f"{t} new b", f"{t} new a", "new b - " + t, "new a - " + t)):
        book.text(ws, L.head_row, c + j, head, "col_head")
    for step in range(r.n_steps):
        row = L.row(step)
        for j, (key, v) in enumerate((("new_b", r.new_b[step]), ("new_a", r.new_a[step]))):
            book.number(ws, row, c + j, v, "torch")
            book.formula(ws, row, c + 2 + j, f"={cell(row, L.cols[key])}-{cell(row, c + j)}", 0.0,
                         "diff", check=False)


def _write_epoch_table(book: Book, ws, r: LineRecords, L: SheetLayout) -> None:
    """epoch | loss (formula) | the truth's loss, per epoch; the lesson's adam_ann adds its
    annealing: lr | avg_grad2 | prev_grad2 | gradrat; then the chart of the loss."""
    c, t = L.table_col, _truth(r)
    heads = ["epoch", "loss", f"{t} loss"]
    extra = r.epoch_extra
    if extra:
        heads += ["lr", "avg_grad2", "prev_grad2", "gradrat"]
    for j, h in enumerate(heads):
        book.text(ws, L.head_row, c + j, h, "col_head")
    ws.write_comment(L.head_row, c + 1, "sqrt of the mean err^2 over the epoch's rows")
    loss = r.epoch_loss
    err2 = L.cols["err2"]
    for e in range(1, L.epochs + 1):
        row = L.start_row + e
        first, last = L.epoch_rows(e)
        book.number(ws, row, c, e, "int")
        book.formula(ws, row, c + 1, f"=SQRT(AVERAGE({area(first, err2, last, err2)}))",
                     loss[e - 1], "loss")
        book.number(ws, row, c + 2, loss[e - 1], "torch")
    if extra:
        _write_annealing(book, ws, r, L)
    chart = book.wb.add_chart({"type": "line"})
    name = ws.get_name()
    chart.add_series({
        "name": "loss",
        "categories": [name, L.start_row + 1, c, L.start_row + L.epochs, c],
        "values": [name, L.start_row + 1, c + 1, L.start_row + L.epochs, c + 1],
        "marker": {"type": "circle"}})
    chart.set_title({"name": "Error by epoch"})
    chart.set_x_axis({"name": "epoch"})
    chart.set_y_axis({"name": "loss"})
    chart.set_legend({"none": True})
    ws.insert_chart(L.chart_row, c, chart)


def _write_annealing(book: Book, ws, r: LineRecords, L: SheetLayout) -> None:
    """The lesson's adam_ann macro as formulas: after each epoch, lr / divisor when
    sqrt(ms b) + sqrt(ms a) at its end is over ratio times the smallest such value before it."""
    c, x = L.table_col, r.epoch_extra
    ms_b, ms_a = L.cols["ms_b"], L.cols["ms_a"]
    start = L.start_row
    book.text(ws, start, c, "start", "start")
    avg0 = (r.state_start["ms"][0] ** 0.5) + (r.state_start["ms"][1] ** 0.5)
    book.formula(ws, start, c + 4, f"=SQRT({cell(start, ms_b)})+SQRT({cell(start, ms_a)})", avg0)
    ratio, divisor = (cell(*L.params[k], absolute="rc") for k in ("ratio", "divisor"))
    for e in range(1, L.epochs + 1):
        row = start + e
        last = L.epoch_rows(e)[1]
        lr = (cell(*L.params["lr"], absolute="rc") if e == 1 else
              f"IF({cell(row - 1, c + 6)}>{ratio},{cell(row - 1, c + 3)}/{divisor},"
              f"{cell(row - 1, c + 3)})")
        book.formula(ws, row, c + 3, "=" + lr, x["lr"][e - 1], "num6")
        book.formula(ws, row, c + 4, f"=SQRT({cell(last, ms_b)})+SQRT({cell(last, ms_a)})",
                     x["avg_grad2"][e - 1])
        book.formula(ws, row, c + 5, f"=MIN({area(start, c + 4, row - 1, c + 4)})",
                     x["prev_grad2"][e - 1])
        book.formula(ws, row, c + 6, f"={cell(row, c + 4)}/{cell(row, c + 5)}", x["gradrat"][e - 1])
