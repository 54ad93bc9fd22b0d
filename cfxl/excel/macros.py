"""Macro workbooks (.xlsm): xlwings' standalone VBA project, form buttons bound to its macro, the
sheets that tell a button's Python what to do, and the Python module written beside the book.

The VBA project is never part of cfxl: it is read, when a workbook is written, from the installed
xlwings package (`quickstart_standalone.xlsm`, BSD-3-Clause, Copyright (C) 2014-present Zoomer
Analytics LLC; its notice travels inside the project's `xlwings` module and on the workbook's
xlwings.conf sheet). Its one macro, `SampleCall`, runs `import <book name>; <book name>.main()`,
so every button calls it and the module beside the book asks cfxl which button was clicked.
No VBA of cfxl's own is compiled here: a VBA project cannot be built correctly on Linux.
"""

from __future__ import annotations

import importlib.util
import io
import json
import keyword
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from cfxl.errors import CfxlError
from cfxl.io import atomic_write
from cfxl.sheets import refs
from cfxl.sheets.book import MAX_ROWS, Book
from cfxl.sheets.table import id_as_text, write_id

MACRO = "SampleCall"           # the standalone project's macro: import <book>; <book>.main()
META_SHEET = "_cfxl"           # hidden: which action each button runs, each sheet's settings
WORKBOOK = "(workbook)"        # its row for what concerns the whole workbook
CONF_SHEET = "xlwings.conf"    # xlwings reads its settings from a sheet of this exact name
UDF_MODULE = "cfxl.excel.udfs"
MODEL_NAME = "cfxl_model"      # workbook name of the config cell that holds the model file
RATINGS_SHEET = "ratings"
RATINGS_FIRST = 3              # ratings sheet: note row, buttons beside it, header in row 3
INSTALL = "pip install 'cfxl[excel]' (xlwings)"


@dataclass(frozen=True)
class Button:
    """A form button over a cell, running `action` through xlwings' SampleCall."""

    row: int
    col: int
    caption: str
    action: str                # reset | run | train | refresh (cfxl.excel.actions.ACTIONS)
    width: int = 64            # pixels
    height: int = 38           # two rows


OPTIMIZER_BUTTONS = (Button(0, 0, "Reset", "reset", width=47),  # A1:B2, as the lesson's
                     Button(0, 1, "Run", "run", width=47))
MODEL_BUTTONS = {RATINGS_SHEET: (Button(0, 0, "Train", "train", width=70),
                                 Button(0, 1, "Refresh", "refresh", width=70)),
                 "config": (Button(1, 3, "Train", "train"), Button(1, 4, "Refresh", "refresh"))}


def xlwings_folder() -> Path:
    """The installed xlwings package's folder, found without importing it."""
    spec = importlib.util.find_spec("xlwings")
    if spec is None or not spec.submodule_search_locations:
        raise CfxlError(f"a macro workbook needs xlwings' VBA project: {INSTALL}")
    return Path(list(spec.submodule_search_locations)[0])


def vba_project() -> bytes:
    """xlwings' standalone vbaProject.bin, as the installed wheel ships it."""
    source = xlwings_folder() / "quickstart_standalone.xlsm"
    try:
        with zipfile.ZipFile(source) as zf:
            return zf.read("xl/vbaProject.bin")
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise CfxlError(f"{source}: no VBA project in this xlwings install ({e}); "
                        f"reinstall it: {INSTALL}") from None


def licence_notice() -> list[str]:
    """The BSD notice of xlwings' VBA module, from the module source the wheel ships."""
    lines = (xlwings_folder() / "xlwings.bas").read_text(encoding="utf-8", errors="replace")
    text = [line[1:] for line in lines.splitlines() if line.startswith("'")]
    start = next(i for i, line in enumerate(text) if "BSD" in line)
    end = next(i for i, line in enumerate(text) if "SUCH DAMAGE" in line)
    return text[start:end + 1]


def companion(path) -> Path:
    """The Python module beside a macro workbook: SampleCall imports it by the book's name."""
    return Path(path).with_suffix(".py")


def check_module_name(path) -> None:
    """A macro workbook's name is its module's (SampleCall imports <book>.py), so it must be an
    importable name and must not hide an installed module; commands check it before training."""
    path = Path(path)
    stem = path.stem
    if not stem.isidentifier() or keyword.iskeyword(stem):
        raise CfxlError(f"{path.name}: its buttons import {stem}.py, so the name must be a Python "
                        "module name (letters, digits and _, not starting with a digit)")
    if importlib.util.find_spec(stem) is not None and not companion(path).exists():
        raise CfxlError(f"{path.name}: {stem}.py beside it would hide the installed module "
                        f"{stem!r}; choose another name")


def add_macros(book: Book, buttons: dict[str, tuple[Button, ...]], meta: dict[str, dict], *,
               interpreter: str | None = None) -> None:
    """The VBA project, the buttons, the hidden sheet that maps them to actions, and xlwings.conf.

    meta: per sheet, what its actions need (WORKBOOK: the whole workbook); interpreter: the
    Python that RunPython starts (else xlwings' default: the add-in's setting, or python on the
    PATH)."""
    book.wb.add_vba_project(io.BytesIO(vba_project()), is_stream=True)
    for sheet, row in buttons.items():
        ws = book.wb.get_worksheet_by_name(sheet)
        if ws is None:
            raise ValueError(f"no sheet {sheet!r} for the buttons {row}")
        for b in row:
            ws.insert_button(b.row, b.col, {"macro": MACRO, "caption": b.caption,
                                            "width": b.width, "height": b.height,
                                            "description": f"cfxl: {b.action}"})
    entries = {sheet: dict(meta.get(sheet, {}))
               | {"buttons": {refs.cell(b.row, b.col): b.action for b in row}}
               for sheet, row in buttons.items()}
    entries |= {k: v for k, v in meta.items() if k not in entries}
    write_meta_sheet(book, entries)
    write_conf_sheet(book, interpreter)


def write_meta_sheet(book: Book, entries: dict[str, dict]) -> None:
    ws = book.wb.add_worksheet(META_SHEET)
    ws.hide()
    ws.write_string(0, 0, "sheet")
    ws.write_string(0, 1, "what cfxl's buttons need (JSON)")
    for i, (sheet, entry) in enumerate(entries.items(), start=1):
        ws.write_string(i, 0, sheet)
        ws.write_string(i, 1, json.dumps(entry, sort_keys=True))


def write_conf_sheet(book: Book, interpreter: str | None) -> None:
    """xlwings' settings sheet: keys down column A from A1, values in B (xlwings reads A1 down to
    the first blank); notes and xlwings' licence notice in D."""
    ws = book.wb.add_worksheet(CONF_SHEET)
    settings = [("UDF Modules", UDF_MODULE)]
    if interpreter:
        settings += [("Interpreter_Win", interpreter), ("Interpreter_Mac", interpreter)]
    for i, (key, value) in enumerate(settings):
        book.text(ws, i, 0, key, "label")
        book.text(ws, i, 1, value)
    notes = [
        "xlwings reads its settings here (keys in A from A1 down, values in B, no gaps).",
        "UDF Modules: the Python module whose functions 'Import Functions' registers.",
        "Interpreter_Win / Interpreter_Mac: the Python (with cfxl and xlwings) that the buttons "
        "start, e.g. C:\\...\\pythonw.exe or /usr/local/bin/python3; without them xlwings' own "
        "setting applies.",
        "",
        "This workbook's VBA project is xlwings' standalone module, read from the installed "
        "xlwings package when the workbook was written:",
    ] + [line.strip() for line in licence_notice()]
    for i, line in enumerate(notes):
        book.text(ws, i, 3, line, "note")
    ws.set_column(0, 0, 18)
    ws.set_column(1, 1, 40)


def write_companion(path, *, force: bool = False) -> Path:
    """<book>.py beside the workbook: what SampleCall imports and runs."""
    text = (f'"""The buttons of {Path(path).name}: xlwings\' SampleCall runs main(), and cfxl does '
            'the work.\n\nWritten by cfxl; delete it and the buttons stop working.\n"""\n\n'
            "from cfxl.excel.udfs import on_button\n\n\n"
            "def main():\n"
            "    on_button()\n")
    return atomic_write(companion(path), lambda tmp: tmp.write_text(text, encoding="utf-8"),
                        force=force)


def write_ratings_sheet(book: Book, frame) -> None:
    """The ratings the model learns from, one per row: the Train button reads them back."""
    n = len(frame)
    if n > MAX_ROWS - RATINGS_FIRST:
        raise CfxlError(f"the macro workbook keeps its ratings on a sheet, at most "
                        f"{MAX_ROWS - RATINGS_FIRST:,} rows: this data has {n:,} ratings")
    ws = book.sheet(RATINGS_SHEET, ["The ratings the model is trained on (userId, movieId, "
                                    "rating): add or change rows, then Train.",
                                    "Train also uses the settings on the config sheet; Refresh "
                                    "rewrites the model sheets from the model file."],
                    note_at=(0, 3))
    for j, name in enumerate(("userId", "movieId", "rating")):
        book.text(ws, RATINGS_FIRST - 1, j, name, "head")
    for j, name in enumerate(("userId", "movieId", "rating")):
        column = frame[name]
        if column.dtype.kind == "f" or (column.dtype.kind in "iu"
                                        and not column.map(id_as_text).any()):
            ws.write_column(RATINGS_FIRST, j, column.tolist())
        else:  # text ids stay text, even one that looks like a formula; 16-digit ids too
            for i, v in enumerate(column.tolist()):
                write_id(book, ws, RATINGS_FIRST + i, j, v, None)
    ws.set_column(0, 2, 10)
    ws.freeze_panes(RATINGS_FIRST, 0)


def hyper_json(h) -> dict:
    """A LineHyper as JSON-ready settings (see cfxl.excel.actions for the way back)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(h).items()}


def add_collab_macros(book: Book, ratings, config: dict, *, interpreter: str | None = None) -> None:
    """The collab workbook's macro parts: the ratings sheet, Train / Refresh on it and on config,
    and the name cfxl_model for the config cell that holds the model file (config's last row)."""
    from cfxl.sheets.model_sheets import FIRST
    if list(config)[-1:] != ["model_file"]:
        raise ValueError("the config's last setting must be model_file, the model beside the book")
    write_ratings_sheet(book, ratings)
    book.wb.define_name(MODEL_NAME, f"=config!$B${FIRST + len(config)}")
    add_macros(book, MODEL_BUTTONS, {WORKBOOK: {"kind": "collab"}}, interpreter=interpreter)


def add_graddesc_macros(book: Book, records, *, interpreter: str | None = None) -> None:
    """Reset / Run in A1:B2 of each optimizer sheet; each sheet's optimizer, rules and settings."""
    from cfxl.records.types.line import LINE_SHEETS
    buttons = {LINE_SHEETS[opt]: OPTIMIZER_BUTTONS for opt in records.runs}
    meta = {LINE_SHEETS[opt]: {"kind": "optimizer", "opt": opt, "rules": r.rules,
                          "hyper": hyper_json(r.hyper), "n_rows": len(records.data.x)}
            for opt, r in records.runs.items()}
    add_macros(book, buttons, meta, interpreter=interpreter)
