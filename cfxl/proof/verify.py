"""Check a recalculated workbook's formulas against the values torch computed for them.

The proof convention, followed by every workbook cfxl writes: the value torch computed for each
verified formula cell is stored in a hidden sheet `_torch` with the header row `sheet | cell |
value` and one row per cell below it (`add_torch_values` writes it). `verify` recomputes the
workbook in LibreOffice (cfxl.proof.recalc) and compares cell by cell: a cell passes when
|engine - torch| <= max(rtol * |torch|, atol); the relative error it reports is
|engine - torch| / max(|torch|, atol / rtol), so values near zero are judged by atol.
A `_torch` row that points at a cell without a formula fails: a constant proves nothing.
An optional fourth column, `scale`, gives the size of the numbers a value is a difference of
(pred - y near convergence cancels most of the digits of pred and y): the error is then judged
relative to max(|torch|, scale), which is what 1e-12 relative can mean for such a cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cfxl.errors import CfxlError
from cfxl.proof.contract import TORCH_HEADER, TORCH_SHEET
from cfxl.proof.recalc import Engine, Recalculated, recalc
from cfxl.sheets.refs import on_sheet


@dataclass
class SheetCheck:
    checked: int = 0
    max_rel_err: float = 0.0


@dataclass(frozen=True)
class Mismatch:
    sheet: str
    cell: str
    torch: float
    engine: float | str | None
    problem: str


@dataclass
class Report:
    """verify's answer: per sheet the cells checked and the largest relative error; failures."""

    path: Path
    rtol: float
    atol: float
    sheets: dict[str, SheetCheck] = field(default_factory=dict)
    failures: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def add_torch_values(workbook, values) -> None:
    """Record torch's values of formula cells in the hidden `_torch` sheet, for `verify`.

    values: {sheet: {cell: number}}; a key may also be a block, "B3:D5": a 3x3 array (row-major).
    """
    import numpy as np
    from openpyxl.utils.cell import get_column_letter, range_boundaries

    if TORCH_SHEET in workbook.sheetnames:
        ws = workbook[TORCH_SHEET]
    else:
        ws = workbook.create_sheet(TORCH_SHEET)
        ws.sheet_state = "hidden"
        ws.append(TORCH_HEADER[:3])
    for sheet, cells in values.items():
        for ref, value in cells.items():
            first_col, first_row, last_col, last_row = range_boundaries(ref)
            shape = (last_row - first_row + 1, last_col - first_col + 1)
            block = np.asarray(value, dtype=np.float64)
            if block.size != shape[0] * shape[1] or not np.isfinite(block).all():
                raise ValueError(f"{on_sheet(sheet, ref)}: need {shape[0]}x{shape[1]} finite "
                                 f"numbers, got {block.shape} {block.ravel()[:4]}...")
            for (i, j), v in np.ndenumerate(block.reshape(shape)):
                ws.append([sheet, f"{get_column_letter(first_col + j)}{first_row + i}", float(v)])


def torch_values(book: Recalculated) -> list[tuple[str, str, float, float]]:
    """The (sheet, cell, value, scale) rows of a recalculated workbook's `_torch` sheet
    (scale 0.0 where none is given)."""
    if TORCH_SHEET not in book.values:
        raise CfxlError(f"{book.path} has no {TORCH_SHEET} sheet: nothing to verify")
    cells = book.values[TORCH_SHEET]
    if tuple(cells.get(f"{c}1") for c in "ABC") != TORCH_HEADER[:3]:
        raise CfxlError(f"{book.path}: the {TORCH_SHEET} sheet needs the header "
                        f"{' | '.join(TORCH_HEADER[:3])} in A1:C1 (and optionally scale in D1)")
    rows = sorted({int(ref[1:]) for ref in cells if ref[0] in "ABC" and ref[1:].isdigit()} - {1})
    out = []
    for r in rows:
        sheet, cell, value = (cells.get(f"{c}{r}") for c in "ABC")
        if not (isinstance(sheet, str) and isinstance(cell, str) and isinstance(value, float)):
            raise CfxlError(f"{book.path}: {on_sheet(TORCH_SHEET, f'A{r}:C{r}')} should hold a sheet, "
                            f"a cell and a number; it holds {sheet!r}, {cell!r}, {value!r}")
        scale = cells.get(f"D{r}")
        out.append((sheet, cell.upper(), value, abs(scale) if isinstance(scale, float) else 0.0))
    return out


def verify(book, *, rtol: float = 1e-12, atol: float = 1e-15,
           engine: Engine | None = None) -> Report:
    """Compare LibreOffice's value of each cell listed in `_torch` with torch's (see the top)."""
    if rtol <= 0 or atol < 0:
        raise CfxlError(f"need rtol > 0 and atol >= 0, got rtol={rtol:g}, atol={atol:g}")
    if not isinstance(book, Recalculated):
        book = recalc(book, engine=engine)
    report = Report(book.path, rtol, atol)
    for sheet, cell, expected, scale in torch_values(book):
        check = report.sheets.setdefault(sheet, SheetCheck())
        check.checked += 1
        got = book.values.get(sheet, {}).get(cell)
        if sheet not in book.values:
            problem = "no such sheet"
        elif cell not in book.formulas[sheet]:
            problem = "not a formula" if got is not None else "empty, not a formula"
        elif not isinstance(got, float):
            problem = f"gives {got!r}, not a number"
        else:
            rel_err = abs(got - expected) / max(abs(expected), scale, atol / rtol)
            check.max_rel_err = max(check.max_rel_err, rel_err)
            if rel_err <= rtol:
                continue
            problem = f"relative error {rel_err:.3g} > {rtol:g}"
        report.failures.append(Mismatch(sheet, cell, expected, got, problem))
    return report
