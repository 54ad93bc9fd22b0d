"""The lesson's graddesc workbook, live: y = a*x + b trained one row at a time, in formulas.

A sheet per optimizer whose every step is a formula chained to the row above, cached with
torch's value (numpy's, for the lesson's rules); where things sit: cfxl.sheets.graddesc_layout.
Then `compare`, every sheet's loss per epoch side by side (cfxl.sheets.graddesc_compare).
"""

from __future__ import annotations

from cfxl.records.types.line import LINE_SHEETS, GraddescRecords, LineRecords
from cfxl.sheets.book import Book
from cfxl.sheets.graddesc_compare import write_compare_sheet
from cfxl.sheets.graddesc_epochs import truth_name, write_epoch_table
from cfxl.sheets.graddesc_intro import (
    DATA_HEAD,
    DATA_X,
    DATA_Y,
    write_data_sheet,
    write_intro_sheet,
)
from cfxl.sheets.graddesc_layout import (
    CHART_COL,
    CHART_COLS,
    SheetLayout,
    sheet_columns,
    sheet_layout,
)
from cfxl.sheets.refs import area, cell, on_sheet
from cfxl.sheets.rules import render

SETTINGS_FMT = {"b0": "param", "a0": "param", "eps": "hyper_sci"}  # start values; the others settings


def write_graddesc_sheets(book: Book, records: GraddescRecords, *, rules: str | None = None,
                          buttons: bool = False, cf: bool = False) -> None:
    """Intro, data, one live sheet per optimizer in the lesson's order, then compare.

    records come from cfxl.records.graddesc.run(rules); rules, when given, must be the records' rules;
    buttons: the Intro tells of the Reset and Run buttons (cfxl.excel.macros puts them in A1:B2);
    cf: the CF model's sheets follow (cfxl.sheets.cf_steps), and the Intro lists them too.
    """
    if rules is not None and rules != records.rules:
        raise ValueError(f"these records follow the {records.rules} rules, not {rules}: build "
                         f"them with cfxl.records.graddesc.run({rules!r})")
    write_intro_sheet(book, records, buttons=buttons, cf=cf)
    write_data_sheet(book, records.data)
    for r in records.runs.values():
        write_optimizer_sheet(book, r)
    write_compare_sheet(book, records)


def _note(r: LineRecords) -> tuple[str, str]:
    h = r.hyper
    if r.rules == "torch":
        what = (f"torch.optim.{_torch_class(r.opt)} trained y = b + a*x in float64, batch size 1, "
                f"{h.epochs} epochs of {len(r.x) // h.epochs} rows. Each row, step to new a, is "
                f"formulas following its update, chained to the row above; grey: torch's values.")
    else:
        what = (f"The lesson's own rules for {LINE_SHEETS[r.opt]} (see Intro), {h.epochs} epochs; "
                f"grey: the same rules computed in numpy"
                + (" (torch has no Eve)." if r.opt == "eve" else "."))
    edit = ("Edit the yellow cells (b, a, lr and the settings beside it"
            + (", the start state" if r.rules == "lesson" and r.state else "")
            + "): every row, the loss per epoch and its chart recompute.")
    return what, edit


def _torch_class(opt: str) -> str:
    return {"sgd": "SGD", "momentum": "SGD(momentum)", "adagrad": "Adagrad",
            "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW",
            "adam_ann": "Adam + StepLR"}[opt]


def write_optimizer_sheet(book: Book, r: LineRecords) -> None:
    """One optimizer's sheet: top cells, the loss table and chart, then the start row, a row
    per step and the truth beside them."""
    params, cols = sheet_columns(r)
    L = sheet_layout(r)
    ws = book.sheet(LINE_SHEETS[r.opt], _note(r), note_at=(0, L.note_col))  # A1:B2: the buttons
    for p in params:
        row, col = L.params[p.key]
        book.text(ws, row, col - 1, p.label, "right")
        book.number(ws, row, col, p.value, SETTINGS_FMT.get(p.key, "hyper"))
        if p.comment:
            ws.write_comment(row, col, p.comment)

    for j, c in enumerate(cols):
        book.text(ws, L.head_row, j, c.head, "col_head")
        if c.comment:
            ws.write_comment(L.head_row, j, c.comment)
        if c.start is not None:
            editable = "sci_in" if c.fmt == "sci" else "num_in"
            book.number(ws, L.start_row, j, c.start, editable if c.start_input else "start")
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
    widths = {j: max(13, len(c.head) + 2) for j, c in enumerate(cols[2:], start=2)}
    widths |= {j: 12 for j in range(L.truth_col, max(L.truth_col + 4, max(L.table.values()) + 1))
               if j not in widths}  # room for the labels above and exp_avg_sq's size
    ws.set_column(0, 1, 6)
    for j, w in widths.items():
        ws.set_column(j, j, w)
    chart_px = sum(_pixels(widths[j]) for j in range(CHART_COL, CHART_COL + CHART_COLS)) - 8
    write_epoch_table(book, ws, r, L, chart_px)
    for row in (L.band_row, L.head_row):
        ws.set_row(row, 30)  # two lines where a header is long: new b - torch
    ws.freeze_panes(0, 2)  # epoch and step stay in view; the rows scroll under the chart


def _pixels(width: float) -> int:
    """A column's width in pixels, as Excel draws a width in characters of Calibri 11."""
    return int(width * 7 + 5)


def _fill(template: str, step: int, r: LineRecords, L: SheetLayout) -> str:
    """A column's template as the formula of a 0-based step's row (tokens: graddesc_cols)."""
    row = L.row(step)

    def one(kind: str, name: str, mod: str | None) -> str:
        if kind == "$":
            return cell(*L.params[name], absolute="rc")
        if kind == "@":
            if name.startswith("e_"):  # this epoch's row of the epoch table: its lr, eve's d
                return cell(L.table_row(int(r.epoch[step])), L.table[name[2:]], absolute="rc")
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
    t = truth_name(r)
    c = L.truth_col
    for j, head in enumerate((f"{t} new b", f"{t} new a", "new b - " + t, "new a - " + t)):
        book.text(ws, L.head_row, c + j, head, "col_head")
    for step in range(r.n_steps):
        row = L.row(step)
        for j, (key, v) in enumerate((("new_b", r.new_b[step]), ("new_a", r.new_a[step]))):
            book.number(ws, row, c + j, v, "torch")
            book.formula(ws, row, c + 2 + j, f"={cell(row, L.cols[key])}-{cell(row, c + j)}", 0.0,
                         "diff", check=False)
