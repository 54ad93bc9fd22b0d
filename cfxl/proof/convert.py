"""Recalculation with LibreOffice alone: a `soffice --convert-to` round trip, read back in Python.

Where no Python can import LibreOffice's uno bridge (Debian's python3-uno), cfxl.proof.recalc
uses this: soffice, with the private profile that recomputes every formula on load, converts the
workbook to .xlsx, and the cells of that file are read back, streamed: every formula cell, its
value, and its error where it has one. LibreOffice starts for each workbook (about 0.8 s) and
writes each value to 15 significant digits, where the warm UNO engine reads exact doubles. The
answer has the shape of the UNO worker's (cfxl/proof/_uno_worker.py).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from openpyxl.utils.cell import get_column_letter, range_boundaries

from cfxl.errors import CfxlError
from cfxl.proof.office import HEADLESS, kill, profile_option
from cfxl.proof.parts import sheet_parts

# --convert-to's target: the file's extension, then LibreOffice's filter for it
TARGETS = {".xlsx": "xlsx:Calc MS Excel 2007 XML", ".xlsm": "xlsm:Calc MS Excel 2007 VBA XML",
           ".ods": "ods:calc8"}
M = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
CELL, ROW, SHEET_DATA, FORMULA, VALUE, TEXT = (M + tag for tag in ("c", "row", "sheetData", "f",
                                                                 "v", "t"))


def recalc_by_conversion(soffice: str, profile: Path, path: Path, output: Path | None,
                         output_suffix: str, *, timeout: float) -> dict:
    """Recompute the workbook at path and read it back; with output, also save the recomputed
    workbook there in the format of output_suffix (.xlsx, .xlsm or .ods)."""
    folder = Path(tempfile.mkdtemp(prefix="convert-", dir=profile))
    try:
        readable = output_suffix if output is not None and output_suffix != ".ods" else ".xlsx"
        converted = _convert(soffice, profile, path, readable, folder, timeout)
        reply = read_back(converted)
        if output is not None:
            if readable != output_suffix:
                converted = _convert(soffice, profile, path, output_suffix, folder, timeout)
            shutil.copyfile(converted, output)
        return reply
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _convert(soffice: str, profile: Path, path: Path, suffix: str, folder: Path,
             timeout: float) -> Path:
    """The file soffice --convert-to writes into folder; a CfxlError if it writes none."""
    target = TARGETS[suffix]
    proc = subprocess.Popen(
        [soffice, *HEADLESS, profile_option(profile), "--convert-to", target, "--outdir",
         str(folder), str(path.resolve())],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace", start_new_session=True)
    try:
        said, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        raise CfxlError(f"LibreOffice took more than {timeout:g} s on {path}; stopped it") from None
    except BaseException:  # Ctrl-C: no soffice may outlive cfxl
        kill(proc)
        raise
    kill(proc)  # also after a clean exit: no stray soffice.bin
    converted = folder / (path.stem + "." + target.split(":")[0])
    if not converted.is_file():
        said = " ".join(line for line in said.splitlines() if "javaldx" not in line).strip()
        raise CfxlError(f"{path}: LibreOffice could not open it" + (f" ({said})" if said else ""))
    return converted


def read_back(path: Path) -> dict:
    """{"sheets": [[name, {cell: value}, [formula cells]]], "errors": [[sheet, cell, text]]} of
    an .xlsx LibreOffice wrote, as the UNO worker answers: numbers and booleans as floats, text
    as str, a formula's empty text as "", an error as its text (#DIV/0!)."""
    sheets, errors = [], []
    with zipfile.ZipFile(path) as zf:
        strings = _shared_strings(zf)
        for name, part in sheet_parts(zf).items():
            values, formulas, rows = {}, set(), None
            with zf.open(part) as f:
                for event, el in ET.iterparse(f, events=("start", "end")):
                    if event == "start":
                        rows = el if el.tag == SHEET_DATA else rows
                    elif el.tag == CELL:
                        _read_cell(el, strings, values, formulas)
                        if el.get("t") == "e" and el.get("r") in formulas:
                            errors.append([name, el.get("r"), values[el.get("r")]])
                    elif el.tag == ROW and rows is not None:
                        rows.clear()  # memory stays at one row
            sheets.append([name, values, [ref for ref in values if ref in formulas]])
    return {"sheets": sheets, "errors": errors}


def _read_cell(el, strings: list[str], values: dict, formulas: set) -> None:
    """One <c> element into values (when it holds one) and formulas (when it is one; an array
    formula's whole block, as LibreOffice counts it, from its top-left cell on)."""
    ref, kind, v = el.get("r"), el.get("t", "n"), el.findtext(VALUE)
    f = el.find(FORMULA)
    if f is not None:
        formulas.add(ref)
        if f.get("t") == "array" and f.get("ref"):
            c0, r0, c1, r1 = range_boundaries(f.get("ref"))
            formulas.update(f"{get_column_letter(c)}{r}" for r in range(r0, r1 + 1)
                            for c in range(c0, c1 + 1))
    if kind == "s":
        values[ref] = strings[int(v)]
    elif kind == "inlineStr":
        values[ref] = "".join(t.text or "" for t in el.iter(TEXT))
    elif kind in ("str", "e", "d"):
        values[ref] = v or ""
    elif kind == "b":
        values[ref] = float(v)
    elif v:
        values[ref] = float(v)
    elif ref in formulas:
        values[ref] = ""


def _shared_strings(zf: zipfile.ZipFile) -> list[str]:
    try:
        f = zf.open("xl/sharedStrings.xml")
    except KeyError:
        return []
    strings = []
    with f:
        for _, el in ET.iterparse(f):
            if el.tag == M + "si":
                strings.append("".join(t.text or "" for t in el.iter(TEXT)))
                el.clear()
    return strings
