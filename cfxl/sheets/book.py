"""The workbook being written: XlsxWriter, every named format, torch's values for proof.

Every sheet module writes through a `Book`; its text is never taken for a formula. Formula
cells are written with torch's value as the cached result (so Excel shows the right number
before it recalculates) and, when `check=True`, the same value is recorded for the hidden
`_torch` sheet that `cfxl recalc --verify` compares against (the convention in
cfxl.proof.verify).
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib.metadata
import math
import os
import re
import sys
import traceback
import zipfile
from pathlib import Path

import numpy as np
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from cfxl.proof.contract import TORCH_HEADER, TORCH_SHEET
from cfxl.sheets.refs import cell
from cfxl.sheets.styles import FORMATS

MAX_ROWS = 1_048_576  # Excel's sheet limit
PRINT_ROWS = 60  # a long sheet prints (and renders to a picture) its first rows only
MARK = "cfxl"  # a custom document property, cfxl's version: the workbook is cfxl's own
MARKED = re.compile(rb'<property [^>]*name="cfxl"')


# Dynamic-array and newer functions: LibreOffice 7.4 computes them differently or not at all.
NOT_PORTABLE = re.compile(r"\b(ANCHORARRAY|BYCOL|BYROW|CHOOSECOLS|CHOOSEROWS|DROP|EXPAND|FILTER|"
                          r"HSTACK|LAMBDA|LET|MAKEARRAY|MAP|RANDARRAY|REDUCE|SCAN|SINGLE|SEQUENCE|"
                          r"SORT|SORTBY|TAKE|TEXTSPLIT|TOCOL|TOROW|UNIQUE|VSTACK|WRAPCOLS|"
                          r"WRAPROWS|XLOOKUP|XMATCH)\(")


class ExactWorksheet(Worksheet):
    """An XlsxWriter sheet that writes numbers exactly and only portable formulas.

    XlsxWriter writes numbers to 16 significant digits, which loses a float64's last bits; this
    writes the shortest text that reads back as the same float, so a sheet's parameters are
    exactly the model's. And it refuses dynamic-array functions instead of rewriting each
    formula through thirty regular expressions to prefix them (a third of the writing time)."""

    def _xml_number_element(self, number, attributes=()) -> None:
        attr = "".join(f' {k}="{self._escape_attributes(v)}"' for k, v in attributes)
        self.fh.write(f"<c{attr}><v>{float(number)!r}</v></c>")

    def _prepare_formula(self, formula, expand_future_functions=False):
        found = NOT_PORTABLE.search(formula)
        if found:
            raise ValueError(f"{formula}: {found[1]} is not computed alike by Excel and LibreOffice")
        return formula.removeprefix("{").removeprefix("=").removesuffix("}")


class StreamedWorksheet(ExactWorksheet):
    """An ExactWorksheet in XlsxWriter's constant_memory mode: each row goes to a temp file once
    a later row is started, so a sheet of millions of cells holds one row in memory. Its rows
    must be written in order (cells within a row in any order); a write to a row already gone
    is an error here, where XlsxWriter would drop it silently."""

    def _initialize(self, init_data) -> None:
        super()._initialize({**init_data, "constant_memory": True})

    def _check_dimensions(self, row, col, ignore_row=False, ignore_col=False) -> int:
        found = super()._check_dimensions(row, col, ignore_row, ignore_col)
        if found == -2:
            raise ValueError(f"sheet {self.name!r}: row {row + 1} was written already (a streamed "
                             "sheet is written row by row)")
        return found


class Book:
    """An XlsxWriter workbook plus the bookkeeping every cfxl sheet needs."""

    def __init__(self, path: Path, *, tmpdir: Path | None = None):
        """tmpdir: where XlsxWriter keeps its temp files as it saves (None: the temp folder)."""
        self.path = Path(path)
        options = {"nan_inf_to_errors": True, "tmpdir": tmpdir and str(tmpdir)}
        self.wb = xlsxwriter.Workbook(str(self.path), options)
        self.wb.set_custom_property(MARK, _version())  # invisible: no cell or snapshot shows it
        if epoch := os.environ.get("SOURCE_DATE_EPOCH"):  # reproducible builds: the same bytes
            created = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)
            self.wb.set_properties({"created": created})
        self.formats = {k: self.wb.add_format(v) for k, v in FORMATS.items()}  # cfxl.sheets.styles
        self.torch: dict[str, dict[str, float]] = {}

    def sheet(self, name: str, note: str | list[str], *, note_at: tuple[int, int] = (0, 0),
              streamed: bool = False):
        """A new sheet with a short note (a line, or lines going down from note_at): what it
        shows and which cells a reader may edit. A1 unless the corner is kept for buttons.
        streamed: a long value sheet written row by row in order (StreamedWorksheet)."""
        kind = StreamedWorksheet if streamed else ExactWorksheet
        ws = self.wb.add_worksheet(name, worksheet_class=kind)
        row, col = note_at
        for i, line in enumerate([note] if isinstance(note, str) else note):
            ws.write_string(row + i, col, line, self.formats["note"])
        return ws

    def fmt(self, name: str | None):
        return None if name is None else self.formats[name]

    def text(self, ws, row: int, col: int, value, fmt: str | None = None) -> None:
        """Write data text as text: a title like '=Equals' must never become a formula."""
        ws.write_string(row, col, "" if value is None else str(value), self.fmt(fmt))

    def number(self, ws, row: int, col: int, value, fmt: str | None = "num") -> None:
        ws.write_number(row, col, float(value), self.fmt(fmt))

    def formula(self, ws, row: int, col: int, formula: str, value: float,
                fmt: str | None = "num", *, check: bool = True, scale: float | None = None) -> None:
        """A live formula, cached with torch's value; recorded for verification when check.

        scale: the size of the numbers the value is a difference of (see cfxl.proof.verify), for a
        value like pred - y that cancels most of its operands' digits."""
        value = float(value)
        ws.write_formula(row, col, formula, self.fmt(fmt), value)
        if check:
            self.expect(ws.name, cell(row, col), value, scale)

    def array_formula(self, ws, r0: int, c0: int, r1: int, c1: int, formula: str,
                      values: np.ndarray, fmt: str | None = "num", *, check: bool = True) -> None:
        """A legacy (Ctrl+Shift+Enter) array formula over a block; values is (rows, cols)."""
        values = np.asarray(values, dtype=float).reshape(r1 - r0 + 1, c1 - c0 + 1)
        ws.write_array_formula(r0, c0, r1, c1, "{" + formula + "}", self.fmt(fmt), values[0, 0])
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if (i, j) != (0, 0):  # XlsxWriter caches only the first cell; fill the rest
                    ws.write_number(r0 + i, c0 + j, values[i, j], self.fmt(fmt))
                if check:
                    self.expect(ws.name, cell(r0 + i, c0 + j), values[i, j])

    def expect(self, sheet: str, ref: str, value: float, scale: float | None = None) -> None:
        """Torch's value for a formula cell, to be compared after recalculation."""
        if not math.isfinite(value) or (scale is not None and not math.isfinite(scale)):
            raise ValueError(f"torch's value for {sheet}!{ref} is not finite: {value}, {scale}")
        self.torch.setdefault(sheet, {})[ref] = (value, scale)

    def _write_torch_sheet(self) -> None:
        if not self.torch:
            return
        ws = self.wb.add_worksheet(TORCH_SHEET, worksheet_class=StreamedWorksheet)  # in row order
        ws.hide()
        for j, h in enumerate(TORCH_HEADER):
            ws.write_string(0, j, h)
        row = 1
        for sheet, cells in self.torch.items():
            for ref, (value, scale) in cells.items():
                ws.write_string(row, 0, sheet)
                ws.write_string(row, 1, ref)
                ws.write_number(row, 2, value)
                ws.write_number(row, 3, 0.0 if scale is None else scale)  # dense: fast to read
                row += 1

    def _page_setup(self) -> None:
        """Each visible sheet prints on one landscape page, long ones their first rows."""
        for ws in self.wb.worksheets():
            ws.set_landscape()
            ws.fit_to_pages(1, 1)
            if ws.dim_rowmax is None:
                continue
            # a chart sits beside its data: print its anchor plus about its width and height
            charts = [(c[0] + 20, c[1] + 9) for c in ws.charts]
            last_row = max([min(ws.dim_rowmax, PRINT_ROWS - 1)] + [r for r, _ in charts])
            last_col = max([ws.dim_colmax or 0] + [c for _, c in charts])
            if last_row < ws.dim_rowmax or charts:
                ws.print_area(0, 0, last_row, last_col)

    def close(self) -> None:
        self._write_torch_sheet()
        self._page_setup()
        try:
            self.wb.close()
        except BaseException as e:
            _close_quietly(e)
            raise


def write_book(path, build, *, tmpdir: Path | None = None) -> Path:
    """Write the workbook at path: build(book) fills a new Book, which is then closed (saved).
    tmpdir: where XlsxWriter keeps its temp files meanwhile (the temp folder if None)."""
    book = Book(path, tmpdir=tmpdir)
    build(book)
    book.close()
    return book.path


def written_by_cfxl(path) -> bool:
    """Whether the workbook at path carries cfxl's mark (MARK): cfxl wrote it."""
    try:
        with zipfile.ZipFile(path) as zf:
            with zf.open("docProps/custom.xml") as f:  # at most 1 MiB, whatever its header says
                return bool(MARKED.search(f.read(1 << 20)))
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def _version() -> str:
    try:
        return importlib.metadata.version("cfxl")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _close_quietly(error: BaseException) -> None:
    """XlsxWriter leaves its zip file open when saving fails (a full disk): closing it when it is
    collected would fail again and print a second traceback. Free it now, silently."""
    hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None
    try:
        todo, seen = [error], set()
        while todo:  # the error, the errors it wraps, and those raised while handling them
            e = todo.pop()
            if e is not None and id(e) not in seen:
                seen.add(id(e))
                traceback.clear_frames(e.__traceback__)
                todo += [e.__context__, e.__cause__]
        gc.collect()
    finally:
        sys.unraisablehook = hook
