"""Fast value tables on a sheet: a bold header, whole rows of numbers per call, and a cap.

A table's columns are written in runs: consecutive numeric columns with one number format go
out with one `write_row` per row (no per-cell format lookups), and every text column goes
through `Book.text`, so a title like '=cmd|...' or '+1' stays a string.

Ids are numbers only while a spreadsheet shows them exactly: Excel keeps 15 significant digits
(and a double holds every integer only up to 2**53), so a longer id is written as its digits in
text, here and on every other sheet (`write_id`), so that MATCH finds text in text.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cfxl.sheets.book import Book

BLOCK = 1 << 16  # rows turned into Python values at a time: bounded memory on ml-25m's tables
EXACT_IDS = 10 ** 15  # ids below this in size have at most 15 digits: numbers in any spreadsheet
SCALE = {"type": "3_color_scale", "min_color": "#F8696B", "mid_type": "num", "mid_value": 0,
         "mid_color": "#FFFFFF", "max_color": "#63BE7B"}  # red below 0, green above, white at 0


@dataclass(frozen=True)
class Column:
    """How one column of a table looks: its number format (None for General) and width; formula,
    for a live column: a template with {row} (the sheet's 1-based row), cached with the table's
    value, e.g. '=E{row}-D{row}'."""

    fmt: str | None = "num"
    width: float = 10
    formula: str | None = None


class Pending:
    """Cells beside a table, each written when the table's writing reaches its row: a streamed
    sheet (cfxl.sheets.book.StreamedWorksheet) takes its rows in order only."""

    def __init__(self):
        self._at: dict[int, list] = {}

    def add(self, row: int, write) -> None:
        """write() fills cells of `row` (0-based)."""
        self._at.setdefault(row, []).append(write)

    def upto(self, row: int) -> None:
        """Write everything pending at rows up to `row`, in row order."""
        for r in sorted(r for r in self._at if r <= row):
            for write in self._at.pop(r):
                write()

    def rest(self) -> None:
        """Write what is left, in row order."""
        self.upto(max(self._at, default=-1))


def id_as_text(raw_id) -> bool:
    """Whether a raw user or movie id is written as text: a string, or an integer of 16 digits
    or more (which Excel would round to 15)."""
    if isinstance(raw_id, (int, np.integer)) and not isinstance(raw_id, bool):
        return abs(int(raw_id)) >= EXACT_IDS
    return not isinstance(raw_id, (float, np.floating))


def write_id(book: Book, ws, row: int, col: int, raw_id, fmt: str | None = "id") -> None:
    """A raw user or movie id: a number when a spreadsheet holds it exactly, else its text
    (never a formula); every id cell goes through here, so both sides of a lookup agree."""
    if id_as_text(raw_id):
        book.text(ws, row, col, raw_id if isinstance(raw_id, str) else str(int(raw_id)), fmt)
    else:
        book.number(ws, row, col, raw_id, fmt)


def header(book: Book, ws, row: int, col: int, names) -> None:
    for j, name in enumerate(names):
        book.text(ws, row, col + j, name, "head")


def write_table(book: Book, ws, table: pd.DataFrame, columns: dict[str, Column], *, row: int,
                col: int = 0, widths: bool = True, beside: Pending | None = None) -> int:
    """Write the header at `row` and the table's rows below it; returns the row after the last.

    `columns` names the columns to write, in order. Numeric columns are numbers (NaN is left
    blank), object columns are text, an integer column with ids too long for a number
    (`id_as_text`) goes cell by cell through `write_id`, and a column with a formula template is
    that formula, cached with the column's values. Rows go out in order, a block of rows at a
    time (bounded memory on millions of rows), with `beside`'s cells as their rows are reached.
    """
    names = list(columns)
    header(book, ws, row, col, names)
    if widths:
        for j, name in enumerate(names):
            ws.set_column(col + j, col + j, columns[name].width)
    beside = beside or Pending()
    beside.upto(row)
    first = row + 1
    with paused_gc():
        for lo in range(0, len(table), BLOCK):
            block = table.iloc[lo:lo + BLOCK]
            runs = [(c, kind, f, book.fmt(f), rows) for c, kind, f, rows in _runs(block, columns)]
            for i in range(len(block)):
                r = first + lo + i
                for c, kind, f, cell_format, rows in runs:
                    if kind == "number":
                        ws.write_row(r, col + c, rows[i], cell_format)
                    elif kind == "text":
                        book.text(ws, r, col + c, rows[i][0], f)
                    elif kind == "ids":
                        write_id(book, ws, r, col + c, rows[i][0], f)
                    else:  # a formula column: kind is its template
                        ws.write_formula(r, col + c, kind.format(row=r + 1), cell_format, rows[i][0])
                beside.upto(r)
    return first + len(table)


@contextmanager
def paused_gc():
    """No cycle collection while cells pile up: they hold no cycles, and the collector's repeated
    passes over millions of new cell objects cost more than writing them (half the time on 0.6M cells)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _kind(column: pd.Series) -> str:
    """How a column is written: text, ids (integers, some too long for a number) or number."""
    dtype = column.dtype
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return "text"
    if dtype.kind in "iu" and len(column):
        if max(abs(int(column.min())), abs(int(column.max()))) >= EXACT_IDS:
            return "ids"
    return "number"


def _runs(table: pd.DataFrame, columns: dict[str, Column]):
    """(first column, kind, format, row lists) for one text, ids or formula column (its kind is
    then its template), or for consecutive numeric columns sharing a format (a run per call)."""
    runs: list[tuple[int, str, str | None, list[str]]] = []
    for j, name in enumerate(columns):
        kind = columns[name].formula or _kind(table[name])
        if runs and kind == runs[-1][1] == "number" and runs[-1][2] == columns[name].fmt:
            runs[-1][3].append(name)
        else:
            runs.append((j, kind, columns[name].fmt, [name]))
    for j, kind, f, names in runs:
        if kind == "ids":
            rows = [[v] for v in table[names[0]].tolist()]  # python ints, exact
        elif kind == "text":
            rows = table[names].astype(str).to_numpy().tolist()
        else:
            block = table[names].to_numpy(dtype=np.float64)  # (n, len(names))
            missing = np.isnan(block)
            # lists of Python floats: XlsxWriter dispatches on the exact type, fastest for float
            rows = np.where(missing, None, block).tolist() if missing.any() else block.tolist()
        yield j, kind, f, rows


def colour_scale(ws, first_row: int, last_row: int, col: int) -> None:
    """Red-white-green by sign, on one column's data cells (no-op for an empty table)."""
    if last_row >= first_row:
        ws.conditional_format(first_row, col, last_row, col, SCALE)


def capped(table: pd.DataFrame, first_data_row: int, max_rows: int) -> tuple[pd.DataFrame, int]:
    """The rows that fit above a sheet's last allowed row (one kept free for the cap note).

    Returns (rows to write, rows left out).
    """
    room = max_rows - first_data_row
    if len(table) <= room:
        return table, 0
    keep = room - 1
    if keep < 1:
        raise ValueError(f"max_rows={max_rows} leaves no room for data below row {first_data_row}")
    return table.iloc[:keep], len(table) - keep
