"""A workbook as canonical, reviewable text (cells, structure, charts, VBA), and back."""

from __future__ import annotations

import datetime
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula

from cfxl.proof import package, parts
from cfxl.errors import CfxlError
from cfxl.io import atomic_write, ensure_writable
from cfxl.proof.snapshot_features import name_line, quote, sheet_lines

VERSION = "cfxl snapshot v1"
HEADER = re.compile(r"# cfxl snapshot v1, numbers to (\d+) significant digits")
CELL_LINE = re.compile(r"[A-Z]{1,3}[0-9]+ ")
FORMULA_KINDS = ("f", "a")  # a formula, an array formula: the rest are values
DATE_WORDS = ("datetime", "date", "time", "duration")


@dataclass
class Sheet:
    """One worksheet: header facts, structure lines (merged, names, charts...) and cells."""

    name: str
    state: str = "visible"  # visible, hidden or veryHidden
    dims: str = "empty"  # the range the non-empty cells span
    features: list[str] = field(default_factory=list)
    # ref -> (kind, payload[, array ref]); kinds: n number, s string, b bool, e error, d date,
    # f formula, a array formula. Row-major order.
    cells: dict[str, tuple] = field(default_factory=dict)


@dataclass
class Snapshot:
    """A workbook's content, from the workbook itself or from its snapshot text."""

    workbook: list[str]  # workbook-wide lines: defined names, VBA
    sheets: list[Sheet]
    digits: int | None = None  # significant digits numbers are known to; None: full precision
    source: str = ""

    def to_text(self, digits: int = 12) -> str:
        """The canonical text, numbers to `digits` significant digits."""
        out = [f"# {VERSION}, numbers to {digits} significant digits", "workbook"]
        out += [f"  {line}" for line in self.workbook]
        for sheet in self.sheets:
            out.append(f"sheet {quote(sheet.name)} {sheet.dims} {sheet.state}")
            out += [f"  {line}" for line in sheet.features]
            out += [f"  {ref} {token(v, digits)}" for ref, v in sheet.cells.items()]
        return "\n".join(out) + "\n"


def snapshot(path: str | Path, *, digits: int = 12) -> str:
    """A workbook (xlsx or xlsm) as canonical text; the same content always gives the same text."""
    return load(path).to_text(digits)


def write_snapshot(path, output, *, digits: int = 12, force: bool = False) -> Path:
    """The snapshot of the workbook at path written to output, checked before any reading."""
    ensure_writable(output, force=force)
    text = snapshot(path, digits=digits)
    return atomic_write(output, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force)


def load(path: str | Path) -> Snapshot:
    """Read a workbook or a snapshot file (told apart by content, not by name)."""
    path = Path(path)
    head = package.file_head(path)  # a folder, a missing or an encrypted file: said as such
    if head.startswith(b"PK"):
        return read_workbook(path, source=str(path))
    if head.startswith(b"# cfxl snapshot"):
        try:
            return parse(path.read_text(encoding="utf-8"), source=str(path))
        except UnicodeDecodeError as e:
            raise CfxlError(f"{path}: byte {e.start:,} is not UTF-8 text") from None
    raise CfxlError(f"{path}: not a workbook (.xlsx, .xlsm) or a cfxl snapshot")


def read_workbook(path: Path, *, source: str = "workbook") -> Snapshot:
    """A workbook's content from its file, its parts checked (cfxl.proof.package) before openpyxl
    reads any of them."""
    try:
        with zipfile.ZipFile(path) as zf:
            package.check_parts(zf, path, source)
            with open(path, "rb") as f:  # a file, not a name: openpyxl judges a name's suffix
                wb = openpyxl.load_workbook(f)
            sheet_parts = parts.sheet_parts(zf)
            extras = [parts.sheet_extras(zf, sheet_parts.get(ws.title)) for ws in wb.worksheets]
            vba = parts.vba_lines(zf)
    except CfxlError:
        raise
    except Exception as e:  # openpyxl fails in many ways on a broken or foreign zip
        raise CfxlError(f"{source}: cannot read it as a workbook ({type(e).__name__}: {e})"
                        ) from None
    workbook = [name_line(d) for _, d in sorted(wb.defined_names.items())] + vba
    sheets = []
    for ws, (buttons, images) in zip(wb.worksheets, extras):
        sheet = Sheet(ws.title, ws.sheet_state, features=sheet_lines(ws, buttons, images))
        sheet.dims = _read_cells(ws, sheet.cells)
        sheets.append(sheet)
    return Snapshot(workbook, sheets, None, source)


def _read_cells(ws, cells: dict) -> str:
    """Fill cells (ref -> value) from a worksheet; returns the range they span."""
    rows, cols = [], []
    for (row, col), cell in sorted(ws._cells.items()):  # only the cells the file holds
        if cell.value is None:
            continue
        cells[f"{get_column_letter(col)}{row}"] = cell_value(cell.value, cell.data_type)
        rows.append(row)
        cols.append(col)
    if not rows:
        return "empty"
    return f"{get_column_letter(min(cols))}{rows[0]}:{get_column_letter(max(cols))}{rows[-1]}"


def cell_value(value, data_type: str) -> tuple:
    """(kind, payload) of an openpyxl cell value and data type."""
    if isinstance(value, ArrayFormula):
        return ("a", value.text or "=", value.ref)
    if isinstance(value, DataTableFormula):
        return ("a", f"=TABLE({value.r1 or ''},{value.r2 or ''})", value.ref)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", float(value))
    if isinstance(value, datetime.timedelta):
        return ("d", f"duration {value.total_seconds():g}s")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        word = {datetime.datetime: "datetime", datetime.date: "date"}.get(type(value), "time")
        return ("d", f"{word} {value.isoformat()}")
    kind = {"f": "f", "e": "e"}.get(data_type, "s")
    return (kind, str(value))


def token(value: tuple, digits: int = 12) -> str:
    """The text of a cell value: its type is told by its first character."""
    kind, payload = value[0], value[1]
    if kind == "n":
        if payload.is_integer() and abs(payload) < 1e15:
            return str(int(payload))
        return f"{payload:.{digits}g}"
    if kind == "s":
        return quote(payload)
    if kind == "b":
        return "TRUE" if payload else "FALSE"
    if kind == "f":
        return payload if payload.isprintable() else "f" + quote(payload)
    if kind == "a":
        return "{" + token(("f", payload)) + "} " + value[2]
    return payload  # an error (#N/A...) or a date (datetime 2024-01-02T00:00:00...)


def parse_token(text: str) -> tuple:
    """The cell value a token stands for (the inverse of token)."""
    first = text[0]
    if first == "=":
        return ("f", text)
    if first == '"':
        return ("s", json.loads(text))
    if text.startswith('f"'):
        return ("f", json.loads(text[1:]))
    if first == "{":
        formula, ref = text.rsplit(" ", 1)
        return ("a", parse_token(formula[1:-1])[1], ref)
    if text in ("TRUE", "FALSE"):
        return ("b", text == "TRUE")
    if first == "#":
        return ("e", text)
    if text.split(" ", 1)[0] in DATE_WORDS:
        return ("d", text)
    return ("n", float(text))


def parse(text: str, *, source: str = "snapshot") -> Snapshot:
    """A Snapshot from its text."""
    # not splitlines(): strings may hold U+2028 and other line breaks
    lines = text.replace("\r\n", "\n").split("\n")
    header = HEADER.fullmatch(lines[0].strip())
    if not header:
        raise CfxlError(f"{source}: line 1: not a {VERSION} header")
    snap = Snapshot([], [], int(header.group(1)), source)
    sheet = None
    for number, line in enumerate(lines[1:], 2):
        try:
            if not line.strip() or line == "workbook":
                continue
            if line.startswith("sheet "):
                name, end = json.JSONDecoder().raw_decode(line, 6)
                dims, state = line[end:].split()
                sheet = Sheet(name, state, dims)
                snap.sheets.append(sheet)
            elif not line.startswith("  "):
                raise ValueError("expected 'workbook', 'sheet \"NAME\" ...' or an indented line")
            elif sheet is not None and CELL_LINE.match(line, 2):
                ref, value = line[2:].split(" ", 1)
                sheet.cells[ref] = parse_token(value)
            else:
                (sheet.features if sheet is not None else snap.workbook).append(line[2:])
        except ValueError as e:
            where = f"{source}: line {number}"
            raise CfxlError(f"{where}: cannot read {line.strip()[:60]!r} ({e})") from None
    return snap

