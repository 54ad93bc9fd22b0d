"""What the macro workbooks' buttons do, on a workbook file or on one open in Excel.

- reset: an optimizer sheet back to the settings and start it was written with (the lesson's
  Reset), its data read from the data sheet.
- run: an optimizer sheet carried on from its last row for as many epochs again (the lesson's
  Run pastes the last row's values back to the top): its start values, state, step count and lr
  become those torch.optim (or the lesson's rules) would have after it, so the rows that follow
  are one longer run's next rows (cfxl.records.graddesc.resume).
- train: the model retrained from the ratings sheet with the settings on the config sheet, saved
  to the model file the config sheet names, and the model sheets rewritten.
- refresh: the model sheets rewritten from the model file.

Sheets are rewritten with cfxl's own writers (cfxl.excel.update.render) and their numbers copied in,
so a changed sheet is exactly the sheet cfxl would write for the new run, `_torch` proof included.
`cfxl press BOOK.xlsm ACTION [SHEET]` runs one on a closed workbook file.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from cfxl.engine import checkpoint
from cfxl.records import graddesc
from cfxl.records.types.line import COMPARE_SHEET, LineData, LineHyper, LineRecords
from cfxl.data.layouts import Source
from cfxl.data.movies import read_titles
from cfxl.data.ratings import Ratings, read_ratings
from cfxl.errors import CfxlError
from cfxl.engine.train import Config, fit
from cfxl.io import atomic_write, ensure_writable
from cfxl.proof.contract import TORCH_SHEET
from cfxl.excel import update
from cfxl.excel.update import FileBook
from cfxl.sheets import refs
from cfxl.sheets.graddesc import write_optimizer_sheet
from cfxl.sheets.graddesc_compare import END_HEAD, compare_cells
from cfxl.sheets.graddesc_layout import sheet_columns, sheet_layout
from cfxl.sheets.graddesc_intro import DATA_HEAD, DATA_TOP, DATA_X, DATA_Y
from cfxl.excel.macros import META_SHEET, RATINGS_FIRST, RATINGS_SHEET, WORKBOOK
from cfxl.sheets.model_sheets import FIRST as MODEL_FIRST

ACTIONS = ("reset", "run", "train", "refresh")
DATA_MARK = ".cfxl"  # in <book>_data: the Train button wrote the folder, and may rewrite it
OPTIMIZER_ACTIONS = ("reset", "run")
COMPARE_FIRST = END_HEAD + 1  # the compare sheet's first row of a sheet's name


def read_meta(book) -> dict[str, dict]:
    """{sheet: what its buttons need} from the hidden sheet the macro workbook carries."""
    if META_SHEET not in book.sheet_names():
        raise CfxlError(f"this workbook has no {META_SHEET} sheet: it was not written as a cfxl "
                        "macro workbook (cfxl export --xlsm, cfxl graddesc --xlsm)")
    return {row[0]: json.loads(row[1]) for row in book.rows(META_SHEET, 1, 2)}


def perform(book, sheet: str, action: str | None = None, *, cell: str | None = None) -> None:
    """Run an action (or the one of the button over `cell`) for `sheet` of an open book."""
    meta = read_meta(book)
    entry = meta.get(sheet, {})
    if action is None:
        action = entry.get("buttons", {}).get(cell)
        if action is None:
            raise CfxlError(f"no cfxl button at {sheet}!{cell}")
    check_action(action)
    if action in OPTIMIZER_ACTIONS:
        if entry.get("kind") != "optimizer":
            sheets = [s for s, e in meta.items() if e.get("kind") == "optimizer"]
            raise CfxlError(f"{action} works on an optimizer sheet "
                            f"({', '.join(sheets) or 'none here'}), not on {sheet!r}")
        (reset if action == "reset" else run)(book, sheet, entry)
    else:
        if meta.get(WORKBOOK, {}).get("kind") != "collab":
            raise CfxlError(f"{action} works on the collab workbook (cfxl export --xlsm)")
        (train if action == "train" else refresh)(book)


def check_action(action: str) -> None:
    if action not in ACTIONS:
        raise CfxlError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")


def apply(path, action: str, sheet: str | None = None) -> Path:
    """An action on a workbook file; without a sheet, Reset and Run act on every optimizer sheet.
    The file is rewritten in place: its own (a cfxl macro workbook, read_meta), and checked first."""
    check_action(action)
    book = FileBook(ensure_writable(path, force=True, suffixes=(".xlsx", ".xlsm")))
    if sheet is None and action in OPTIMIZER_ACTIONS:
        targets = [s for s, e in read_meta(book).items() if e.get("kind") == "optimizer"]
        if not targets:
            raise CfxlError(f"{book.path.name} has no optimizer sheets to {action}")
    else:
        targets = [sheet or WORKBOOK]
    for target in targets:
        perform(book, target, action)
    return book.save()


# ------------------------------------------------------------------ optimizer sheets


def _rules(entry: dict):
    return graddesc.train if entry["rules"] == "torch" else graddesc.lesson


def line_data(book, n_rows: int) -> LineData:
    """x, b and a as the data sheet holds them now (a reader may have edited them)."""
    b, a = (_number(book, "data", DATA_TOP + i, DATA_Y) for i in (0, 1))
    x = [_number(book, "data", DATA_HEAD + 1 + i, DATA_X) for i in range(n_rows)]
    return LineData(np.array(x, dtype=np.float64), b, a)


def _number(book, sheet: str, row: int, col: int) -> float:
    v = book.value(sheet, row, col)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CfxlError(f"{sheet}!{refs.cell(row, col)} must be a number, not {v!r}")
    return float(v)


def written_hyper(entry: dict) -> LineHyper:
    """The settings a sheet was written with (its meta entry), for Reset."""
    h = dict(entry["hyper"])
    h["betas"], h["start"] = tuple(h["betas"]), tuple(h["start"])
    return LineHyper(**h)


def sheet_settings(book, sheet: str, entry: dict, d: LineData):
    """(LineHyper, state) as the sheet's yellow cells and start row hold them now."""
    probe = _rules(entry)(entry["opt"], d, written_hyper(entry))  # its layout is the sheet's
    L = sheet_layout(probe)
    params, cols = sheet_columns(probe)
    v = {p.key: _number(book, sheet, *L.params[p.key]) for p in params}
    beta = "alpha" if entry["opt"] == "rmsprop" else "momentum"
    changes = {k: v[k] for k in ("lr", "weight_decay", "momentum", "alpha", "eps", "gamma", "beta3")
               if k in v} | ({beta: v["beta"]} if "beta" in v else {})
    if "beta1" in v:
        changes["betas"] = (v["beta1"], v["beta2"])
    hyper = replace(written_hyper(entry), **changes, start=(v["b0"], v["a0"]))
    state: dict = {}
    for c in cols:
        if c.start is None:
            continue
        value = _number(book, sheet, L.start_row, L.cols[c.key])
        if c.key == "step":
            state["step"] = value
        else:  # a pair: momentum_buffer_b, momentum_buffer_a
            state.setdefault(c.key[:-2], [0.0, 0.0])[c.key.endswith("_a")] = value
    if entry["opt"] == "eve":  # its epoch table's start: d, and the first epoch's two losses
        for key, row in (("d", 0), ("ft_1", 1), ("ft_2", 1)):
            state[key] = _number(book, sheet, L.table_row(row), L.table[key])
    return hyper, state


def reset(book, sheet: str, entry: dict) -> LineRecords:
    """The sheet as it was written: its settings, start values and state, on today's data."""
    d = line_data(book, entry["n_rows"])
    r = _rules(entry)(entry["opt"], d, written_hyper(entry))
    write_run(book, sheet, r)
    return r


def run(book, sheet: str, entry: dict) -> LineRecords:
    """The sheet carried on from its last row: the run it shows now, resumed for its epochs."""
    d = line_data(book, entry["n_rows"])
    hyper, state = sheet_settings(book, sheet, entry, d)
    now = _rules(entry)(entry["opt"], d, hyper, state=state)
    hyper, state = graddesc.resume(now)
    after = _rules(entry)(entry["opt"], d, hyper, state=state)
    write_run(book, sheet, after)
    return after


def write_run(book, sheet: str, r: LineRecords) -> None:
    """Copy the numbers of the sheet cfxl would write for r (settings, start row, truth, losses)
    into the workbook's sheet, and its expected values into the `_torch` sheet."""
    rendered = update.render(lambda b: write_optimizer_sheet(b, r))
    ws = rendered[sheet]
    book.write(sheet, {(c.row - 1, c.column - 1): c.value for row in ws.iter_rows() for c in row
                       if isinstance(c.value, (int, float)) and not isinstance(c.value, bool)})
    if TORCH_SHEET in rendered.sheetnames and TORCH_SHEET in book.sheet_names():
        truth = {row[1]: row[2:4]
                 for row in rendered[TORCH_SHEET].iter_rows(min_row=2, values_only=True)}
        reads = _compare_reads(book, sheet, r)
        cells = {}
        for i, row in enumerate(book.rows(TORCH_SHEET, 1, 4), start=1):
            if row[0] == sheet and row[1] in truth:
                cells[(i, 2)], cells[(i, 3)] = truth[row[1]]
            elif row[0] == COMPARE_SHEET and reads.get(row[1]) in truth:
                cells[(i, 2)], cells[(i, 3)] = truth[reads[row[1]]]
        book.write(TORCH_SHEET, cells)


def _compare_reads(book, sheet: str, r: LineRecords) -> dict[str, str]:
    """The compare sheet's cells that read sheet, each to the cell it reads (A1 references)."""
    if COMPARE_SHEET not in book.sheet_names():
        return {}
    names = [row[0] for row in book.rows(COMPARE_SHEET, COMPARE_FIRST, 1)]
    if sheet not in names:
        return {}
    return {refs.cell(*at): refs.cell(*source)
            for at, source in compare_cells(names.index(sheet), r).items()}


# ------------------------------------------------------------------ the collab workbook


def settings(book) -> dict:
    """The config sheet's settings, by name."""
    return {str(k): v for k, v in book.rows("config", MODEL_FIRST, 2)}


def config_from(values: dict) -> Config:
    """A training Config from the config sheet: each field typed as Config declares it."""
    out = {}
    for f in fields(Config):
        if f.name not in values or values[f.name] is None:
            continue
        v, default = values[f.name], f.default
        try:
            if isinstance(default, tuple):
                parts = v.split(",") if isinstance(v, str) else v
                out[f.name] = tuple(float(p) for p in parts)
            elif isinstance(default, bool):
                out[f.name] = v if isinstance(v, bool) else str(v).strip().lower() == "true"
            elif isinstance(default, (int, float)):
                out[f.name] = type(default)(float(v)) if isinstance(default, int) else float(v)
            else:
                out[f.name] = str(v)
        except (TypeError, ValueError):
            raise CfxlError(f"config!{f.name}: {v!r} is not a {type(default).__name__}") from None
    return Config(**out)


def model_file(book, values: dict | None = None) -> Path:
    values = settings(book) if values is None else values
    name = values.get("model_file")
    if not name:
        raise CfxlError("the config sheet names no model_file")
    path = Path(str(name))
    return path if path.is_absolute() else book.folder / path


# the Train button's ratings.csv: its own column names, read as a generic file, so text ids and
# any finite rating (data that came from a generic CSV) read back as the sheet holds them
BOOK_COLUMNS = {"user_col": "user", "item_col": "item", "rating_col": "rating"}


def ratings_from_book(book) -> Ratings:
    """The ratings sheet (and the movies sheet's titles) written as a folder beside the
    workbook, <book>_data/ratings.csv and movies.csv, and read back: what training reads. A
    folder of that name that holds them without cfxl's mark (DATA_MARK) is the user's: refused.

    The ratings are written under BOOK_COLUMNS and read as a generic file: a MovieLens header
    would refuse ids in text (a generic CSV's) and ratings outside MovieLens' stars. Titles
    come from movies.csv where the movie ids are whole numbers (MovieLens' titles file)."""
    rows = book.rows(RATINGS_SHEET, RATINGS_FIRST, 3)
    if not rows:
        raise CfxlError(f"the {RATINGS_SHEET} sheet holds no ratings "
                        f"(from row {RATINGS_FIRST + 1} down)")
    folder = book.folder / f"{book.stem}_data"
    tables = [folder / name for name in ("ratings.csv", "movies.csv")]
    if any(t.exists() for t in tables) and not (folder / DATA_MARK).is_file():
        raise CfxlError(f"{folder} holds ratings or movies that cfxl did not write; move them "
                        "away: the Train button writes the ratings sheet there")
    folder.mkdir(exist_ok=True)
    atomic_write(folder / DATA_MARK, lambda tmp: tmp.write_text("written by cfxl\n"), force=True)
    frame = pd.DataFrame([[_int(u), _int(m), r] for u, m, r in rows],
                         columns=[BOOK_COLUMNS[k] for k in ("user_col", "item_col", "rating_col")])
    movies = pd.DataFrame([[_int(r[0]), r[2], r[3]] for r in book.rows("movies", MODEL_FIRST, 4)],
                          columns=["movieId", "title", "genres"])
    titled = len(movies) > 0 and pd.api.types.is_integer_dtype(movies["movieId"])
    for name, table in (("ratings.csv", frame), ("movies.csv", movies)):
        atomic_write(folder / name, lambda tmp, t=table: t.to_csv(tmp, index=False), force=True)
    ratings = read_ratings(folder / "ratings.csv", **BOOK_COLUMNS)
    return replace(ratings, titles=read_titles(Source(folder / "movies.csv"))) if titled \
        else ratings


def _int(v):
    return int(v) if isinstance(v, float) and v.is_integer() else v


def train(book):
    """Retrain from the ratings sheet with the config sheet's settings; save; rewrite the sheets.
    The model file it names is overwritten only if it is one (cfxl's own)."""
    values = settings(book)
    target = ensure_writable(model_file(book, values), force=True, suffixes=(".pt",))
    if target.exists() and not checkpoint.written_by_cfxl(target):
        raise CfxlError(f"{target} exists and is not a cfxl model file; move it away, or name "
                        "another model_file on the config sheet")
    ratings = ratings_from_book(book)
    trained = fit(config_from(values), ratings, progress=False)
    checkpoint.save(trained, target, force=True)
    refresh(book, trained=trained, ratings=ratings)
    return trained


def refresh(book, *, trained=None, ratings=None) -> None:
    """Rewrite users, movies, predictions, epochs, bias_rank, pca and config from the model."""
    from cfxl.records.model_tables import model_tables
    from cfxl.sheets.model_sheets import write_model_sheets

    values = settings(book)
    target = model_file(book, values)
    trained = trained or checkpoint.load(target)
    if ratings is None:
        if not Path(trained.source).exists():
            raise CfxlError(f"{target}: the ratings it was trained on, {trained.source}, are gone; "
                            "press Train to retrain from the ratings sheet")
        ratings = read_ratings(trained.source)
    tables = model_tables(trained, ratings)
    tables.config["model_file"] = values["model_file"]
    rendered = update.render(lambda b: write_model_sheets(b, tables))
    for name in rendered.sheetnames:
        if name != TORCH_SHEET:
            book.replace_sheet(name, rendered[name])
    if TORCH_SHEET in rendered.sheetnames and TORCH_SHEET in book.sheet_names():
        # the new model's RMSE and MAE (the predictions sheet's verified cells) for verify
        truth = {tuple(r[:2]): r[2:4] for r in rendered[TORCH_SHEET].iter_rows(min_row=2, values_only=True)}
        book.write(TORCH_SHEET, {(i, 2 + j): v for i, row in enumerate(book.rows(TORCH_SHEET, 1, 4), start=1)
                                 if tuple(row[:2]) in truth for j, v in enumerate(truth[tuple(row[:2])])})

