"""A workbook updated in place, the same way whether it is a file (openpyxl, its VBA project and
buttons kept) or open in Excel (an xlwings Book), and sheets rendered by cfxl's own writers into a
scratch file, to be copied into it.

The buttons' actions (cfxl.excel.actions) read and write cells through `FileBook` or `LiveBook`: a
0-based (row, col) reads a cell, `write` sets many, `rows` reads a table down to its first blank
row, `replace_sheet` swaps a sheet's content for a rendered one. Nothing here imports xlwings: a
LiveBook is handed the xlwings Book.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from unittest import mock

import openpyxl
import openpyxl.cell._writer
from openpyxl.compat import safe_string

from cfxl.errors import CfxlError
from cfxl.io import atomic_write, scratch_folder
from cfxl.sheets.book import write_book


class FileBook:
    """A workbook file opened with openpyxl (keep_vba=True: macros and buttons survive a save)."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise CfxlError(f"{self.path}: no such workbook")
        try:
            self.wb = openpyxl.load_workbook(self.path, keep_vba=self.path.suffix.lower() == ".xlsm")
        except Exception as e:  # openpyxl fails in many ways on a file that is not a workbook
            raise CfxlError(f"{self.path}: not a workbook ({type(e).__name__})") from None

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def stem(self) -> str:
        return self.path.stem

    def sheet_names(self) -> list[str]:
        return self.wb.sheetnames

    def _ws(self, sheet: str):
        if sheet not in self.wb.sheetnames:
            raise CfxlError(f"{self.path.name} has no sheet {sheet!r}")
        return self.wb[sheet]

    def value(self, sheet: str, row: int, col: int):
        return self._ws(sheet).cell(row + 1, col + 1).value

    def write(self, sheet: str, cells: dict[tuple[int, int], object]) -> None:
        ws = self._ws(sheet)
        for (row, col), v in cells.items():
            ws.cell(row + 1, col + 1).value = v

    def rows(self, sheet: str, first: int, n_cols: int) -> list[list]:
        out = []
        for row in self._ws(sheet).iter_rows(min_row=first + 1, max_col=n_cols, values_only=True):
            if row[0] is None or row[0] == "":
                break
            out.append(list(row))
        return out

    def replace_sheet(self, sheet: str, source) -> None:
        """Make sheet a copy of an openpyxl worksheet: cells with their styles, merged cells,
        column widths, panes, filter, print area, colour scales and charts; its place among the
        sheets (and its buttons) are kept."""
        ws = self._ws(sheet)
        ws._cells.clear()
        ws.merged_cells.ranges = set()
        for row in source.iter_rows():
            for c in row:
                if c.value is None and not c.has_style:
                    continue
                new = ws.cell(c.row, c.column, c.value)
                if c.has_style:
                    for attr in ("font", "border", "fill", "number_format", "protection",
                                 "alignment"):
                        setattr(new, attr, copy.copy(getattr(c, attr)))
        for key, dim in source.column_dimensions.items():
            ws.column_dimensions[key].width = dim.width
        for merged in source.merged_cells.ranges:
            ws.merge_cells(str(merged))
        ws.freeze_panes = source.freeze_panes
        ws.auto_filter.ref = source.auto_filter.ref
        if source.print_area:
            ws.print_area = source.print_area
        ws.conditional_formatting = source.conditional_formatting
        ws._charts = list(source._charts)

    def save(self) -> Path:
        """Save over the file (its own: force), atomically, every number exactly: openpyxl
        writes 16 significant digits, which loses a float64's last bits (the fix
        cfxl.sheets.book.ExactWorksheet makes for XlsxWriter)."""
        def write(tmp):
            with mock.patch.object(openpyxl.cell._writer, "safe_string", _exact_string):
                self.wb.save(tmp)
        return atomic_write(self.path, write, force=True)


class LiveBook:
    """A workbook open in Excel, through the xlwings Book that RunPython or a script hands over;
    Excel recalculates as cells change, and saving is the reader's choice."""

    def __init__(self, book):
        self.book = book

    @property
    def folder(self) -> Path:
        return Path(self.book.fullname).parent

    @property
    def stem(self) -> str:
        return Path(self.book.name).stem

    def sheet_names(self) -> list[str]:
        return [s.name for s in self.book.sheets]

    def value(self, sheet: str, row: int, col: int):
        return self.book.sheets[sheet].range((row + 1, col + 1)).value

    def write(self, sheet: str, cells: dict[tuple[int, int], object]) -> None:
        """One call per run of cells down a column: far fewer round trips to Excel."""
        ws = self.book.sheets[sheet]
        for (row, col), values in _column_runs(cells):
            ws.range((row + 1, col + 1)).options(transpose=True).value = values

    def rows(self, sheet: str, first: int, n_cols: int) -> list[list]:
        ws = self.book.sheets[sheet]
        last = ws.used_range.last_cell.row
        if last <= first:
            return []
        block = ws.range((first + 1, 1), (last, n_cols)).options(ndim=2).value
        out = []
        for row in block:
            if row[0] is None or row[0] == "":
                break
            out.append(row)
        return out

    def replace_sheet(self, sheet: str, source) -> None:
        """The rendered sheet's values (Excel keeps the formats it has)."""
        ws = self.book.sheets[sheet]
        ws.clear_contents()
        values = [[c.value for c in row] for row in source.iter_rows()]
        if values:
            ws.range("A1").value = values

    def save(self) -> None:
        """Nothing to do: the reader saves the workbook in Excel."""


def _exact_string(value) -> str:
    """A cell's text as openpyxl writes it, but a float as the shortest text that reads back
    as the same float."""
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return safe_string(value)


def _column_runs(cells: dict[tuple[int, int], object]):
    """((row, col), [values]) for each run of consecutive rows in one column."""
    runs: list[tuple[tuple[int, int], list]] = []
    for (row, col) in sorted(cells, key=lambda rc: (rc[1], rc[0])):
        if runs and runs[-1][0][1] == col and runs[-1][0][0] + len(runs[-1][1]) == row:
            runs[-1][1].append(cells[row, col])
        else:
            runs.append(((row, col), [cells[row, col]]))
    return runs


def render(build):
    """Sheets written by cfxl's writers (build(book) fills a Book) into a scratch file, read back
    with openpyxl: the cells an action copies into the workbook it updates."""
    with scratch_folder() as folder:
        return openpyxl.load_workbook(write_book(folder / "rendered.xlsx", build, tmpdir=folder))
