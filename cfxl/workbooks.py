"""The workbooks as library calls: export (collab), graddesc, unroll, and the demo that writes all three.

This is where the two sides meet: torch produces plain numpy records (cfxl.records.lesson for the
lesson's slice models, cfxl.records.model_tables for the whole model) and the workbook layer (cfxl.sheets)
writes them; neither side imports the other. Every command checks what it will write (plan) and
what it was told before any data is read or model trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfxl import presets
from cfxl.data.ratings import Ratings, file_sha256, read_ratings
from cfxl.engine import checkpoint
from cfxl.engine.launch import fit_spawned
from cfxl.engine.models import EmbeddingNet
from cfxl.engine.optim import check_settings
from cfxl.engine.train import Config, Trained, fit, resolve_device
from cfxl.errors import CfxlError, option
from cfxl.io import atomic_write, ensure_folder, ensure_writable, scratch_folder, together
from cfxl.records.lesson import lesson_records
from cfxl.records.model_tables import model_tables, write_csv
from cfxl.records.recommend import movie_order, recommend_records
from cfxl.records.types.tables import ModelTables
from cfxl.records.types.unrolled import UnrolledHyper
from cfxl.sheets.book import MAX_ROWS, write_book, written_by_cfxl
from cfxl.sheets.lesson import write_lesson_sheets
from cfxl.sheets.model_sheets import CSV_TABLES, write_model_sheets
from cfxl.sheets.ranking import FIRST as RATED_FIRST, shown_rows
from cfxl.sheets.recommend import write_recommend_sheets

BOOK_SUFFIXES = (".xlsx", ".xlsm")
DEMO_BOOKS = ("collab_filter.xlsx", "graddesc.xlsx", "unrolled.xlsx")


def check_counts(**counts: int) -> None:
    """Counts a user types (steps, factors, slice sizes): each at least 1."""
    for name, n in counts.items():
        if n < 1:
            raise CfxlError(f"{option(name)} must be at least 1, not {n}")


@dataclass(frozen=True)
class SliceOptions:
    """The lesson's "subset for Excel": how many users, movies and factors the live sheets use."""

    n_users: int = presets.SLICE_USERS
    n_movies: int = presets.SLICE_MOVIES
    n_factors: int = presets.LESSON_FACTORS
    untrained: bool = False   # train nothing: the start alone (no _trained views, nn at its start)
    seed: int | None = None   # None: the trained model's seed

    def __post_init__(self):
        check_counts(slice_users=self.n_users, slice_movies=self.n_movies,
                     slice_factors=self.n_factors)


@dataclass(frozen=True)
class Outputs:
    """Every file a workbook command writes, each checked by plan() before any work."""

    book: Path
    force: bool = False
    macros: bool = False            # a macro workbook: <book>.py beside it runs its buttons
    model_file: Path | None = None  # the collab macro workbook's model, <book>.pt beside it
    csv_dir: Path | None = None     # the complete model tables as CSV files


def plan(book, *, force: bool = False, macros: bool | None = None, model: bool = False,
         csv_dir=None) -> Outputs:
    """Check every file a command will write: the workbook (.xlsx, .xlsm); beside a macro
    workbook (macros, by default for an .xlsm name) <book>.py and, with model, <book>.pt; the
    tables in csv_dir. A CfxlError names the first that cannot be written, unless force."""
    from cfxl.excel.macros import check_module_name, companion

    book = Path(book)
    macros = book.suffix.lower() == ".xlsm" if macros is None else macros
    if macros and book.suffix.lower() != ".xlsm":
        raise CfxlError(f"{book}: a macro workbook needs the suffix .xlsm")
    ensure_writable(book, force=force, suffixes=BOOK_SUFFIXES)
    model_file = book.with_suffix(".pt") if macros and model else None
    if macros:
        check_module_name(book)
        for other in filter(None, (companion(book), model_file)):
            ensure_writable(other, force=force)
    if csv_dir is not None and ensure_folder(csv_dir).is_dir():
        for name in CSV_TABLES:
            ensure_writable(Path(csv_dir) / f"{name}.csv", force=force)
    return Outputs(book, force, macros, model_file, csv_dir and Path(csv_dir))


def write_workbook(path, build, *, force: bool = False) -> Path:
    """build(book) fills a Book, written atomically at path (.xlsx or .xlsm); XlsxWriter's temp
    files go to a private folder, removed on every exit (cfxl.io.scratch_folder)."""
    ensure_writable(path, force=force, suffixes=BOOK_SUFFIXES)
    with scratch_folder() as scratch:
        return atomic_write(path, lambda tmp: write_book(tmp, build, tmpdir=scratch), force=force,
                            scratch=scratch)


def read_and_fit(source, config: Config, *, user_col=None, item_col=None, rating_col=None,
                 output=None, force: bool = False, progress=None, on_read=None, on_epoch=None,
                 nproc: int = 1) -> tuple[Trained, Ratings]:
    """Read a ratings file (None: the embedded sample) and train config's model on it, saved to
    output (.pt) when given; the device and output are checked before anything is read.
    on_read(ratings) is called before training starts. nproc > 1: on that many local worker
    processes (DDP; cfxl.engine.launch)."""
    resolve_device(config.device)
    if output is not None:
        ensure_writable(output, force=force, suffixes=(".pt",))
    ratings = read_ratings(source, user_col=user_col, item_col=item_col, rating_col=rating_col)
    if on_read is not None:
        on_read(ratings)
    trained = fit(config, ratings, progress=progress, on_epoch=on_epoch) if nproc == 1 else \
        fit_spawned(config, ratings, nproc, progress=progress, on_epoch=on_epoch)
    if output is not None:
        checkpoint.save(trained, output, force=force)
    return trained, ratings


def load_or_train(source, config: Config, *, user_col=None, item_col=None, rating_col=None,
                  progress=None, on_read=None, on_epoch=None, force: bool = False
                  ) -> tuple[Trained, Ratings]:
    """A model and its ratings: a .pt model file (`cfxl train -o`) is loaded and the ratings it
    was trained on read again, refused if that file changed since (its SHA-256) unless force;
    anything else is read and trained on (read_and_fit)."""
    columns = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col}
    if source is None or Path(source).suffix.lower() != ".pt":
        return read_and_fit(source, config, **columns, progress=progress, on_read=on_read,
                            on_epoch=on_epoch)
    return load_model(source, **columns, on_read=on_read, force=force)


def load_model(source, *, ratings=None, user_col=None, item_col=None, rating_col=None,
               on_read=None, force: bool = False) -> tuple[Trained, Ratings]:
    """A .pt model file (`cfxl train -o`) and the ratings it was trained on, read again from
    where it was trained (or from `ratings`, a copy of that file): refused if the file's
    SHA-256 is not the one the model keeps, unless force."""
    columns = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col}
    trained = checkpoint.load(source)
    data = trained.source if ratings is None else str(ratings)
    if not Path(data).exists():
        raise CfxlError(f"{source}: the ratings file it was trained on, {data}, is gone; pass "
                        "its copy, or train again with `cfxl export RATINGS`")
    if trained.sha256 and not force and (now := file_sha256(data)) != trained.sha256:
        raise CfxlError(
            f"{source}: the ratings file it was trained on, {data}, has changed since "
            f"(SHA-256 {trained.sha256[:12]}... then, {now[:12]}... now); the validation split "
            "is recomputed by position, so its predictions could include ratings the model "
            "trained on. Train again (`cfxl export RATINGS`), or pass --force to use the "
            "changed file as it is")
    ratings = read_ratings(data, **columns)
    if on_read is not None:
        on_read(ratings)
    return trained, ratings


def export_collab(out: Outputs, trained: Trained, ratings: Ratings, *,
                  slice_options=SliceOptions(), interpreter: str | None = None,
                  max_rows: int | None = None) -> Path:
    """Write the collab workbook: the lesson's live sheets, then the whole model's tables.

    out (plan(book, model=True, ...)): for a macro workbook (cfxl.excel.macros), a ratings
    sheet and Train / Refresh buttons; the model is saved beside it as <book>.pt and the config
    sheet names it; <book>.py beside it runs the buttons. interpreter: the Python xlwings starts
    for them (xlwings.conf). max_rows: the long sheets' cap (None: as many as a sheet holds)."""
    if out.macros and out.model_file is None:
        raise ValueError("a collab macro workbook saves its model beside it: plan(..., model=True)")
    s = slice_options
    lesson = lesson_records(ratings, n_users=s.n_users, n_movies=s.n_movies,
                            n_factors=s.n_factors, untrained=s.untrained,
                            seed=trained.config.seed if s.seed is None else s.seed)
    tables = model_tables(trained, ratings)
    uses = use_records(trained, ratings, max_rows)
    if out.macros:
        tables.config["model_file"] = out.model_file.name

    def build(book):
        write_lesson_sheets(book, lesson)
        write_model_sheets(book, tables, csv_dir=out.csv_dir,
                           **({} if max_rows is None else {"max_rows": max_rows}))
        if uses is not None:  # after the tables its formulas read
            write_recommend_sheets(book, uses)
        if out.macros:
            from cfxl.excel.macros import add_collab_macros
            add_collab_macros(book, ratings.frame(), tables.config, interpreter=interpreter)

    with together():  # the workbook, its CSV tables, model and module: all of them or none
        if out.csv_dir is not None:
            write_csvs(tables, out.csv_dir, force=out.force)
        path = write_workbook(out.book, build, force=out.force)
        if out.macros:
            from cfxl.excel.macros import write_companion
            checkpoint.save(trained, out.model_file, force=out.force)
            write_companion(path, force=out.force)
    return path


def use_records(trained: Trained, ratings: Ratings, max_rows: int | None):
    """The recommend, similar and me sheets' records over the movies and users the capped sheets
    show; None for EmbeddingNet, whose predictions are no dot product a formula can write."""
    if isinstance(trained.model, EmbeddingNet):
        return None
    n_movies = shown_rows(len(trained.movies), max_rows)
    return recommend_records(trained, ratings, n_movies=n_movies,
                             n_users=rated_users(trained, ratings, n_movies,
                                                 shown_rows(len(trained.users), max_rows)))


def rated_users(trained: Trained, ratings: Ratings, n_movies: int, n_users: int) -> int:
    """How many of the first n_users users the recommend sheets offer: all of them, unless their
    ratings of the n_movies shown movies overflow the `rated` sheet (ml-25m's 162k users rated
    25M times); then the most whose ratings fit."""
    to_model = trained.movies.index(ratings.movies.ids)  # (ratings' movies,) model indices
    counts = np.zeros(len(trained.movies), np.int64)
    counts[to_model] = np.bincount(ratings.movie_idx, minlength=ratings.n_movies)
    shown = np.zeros(len(trained.movies), bool)
    shown[movie_order(counts)[:n_movies]] = True
    per_user = np.zeros(len(trained.users), np.int64)  # ratings of shown movies, by model index
    per_user[trained.users.index(ratings.users.ids)] = np.bincount(
        ratings.user_idx[shown[to_model][ratings.movie_idx]], minlength=ratings.n_users)
    room = MAX_ROWS - RATED_FIRST
    return int(min(n_users, np.searchsorted(np.cumsum(per_user[:n_users]), room, side="right")))


def write_csvs(tables: ModelTables, folder: Path, *, force: bool = False) -> None:
    """users.csv, movies.csv, predictions.csv and epochs.csv, complete, each written atomically
    (the sheets are capped at Excel's row limit), safe to open in Excel (write_csv)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CfxlError(f"{folder}: cannot create the CSV folder ({e.strerror or e})") from None
    for name in CSV_TABLES:
        table = getattr(tables, name)
        atomic_write(folder / f"{name}.csv", lambda tmp: write_csv(table, tmp),
                     force=force)


def export_graddesc(out: Outputs, ratings: Ratings, *, rules: str = "torch",
                    steps: int = presets.CF_STEPS, trace_users=None, trace_movies=None,
                    interpreter: str | None = None) -> Path:
    """Write the optimizer workbook: the lesson's line y = a*x + b under each optimizer (torch's
    rules, or the lesson's own), then the CF slice model's steps and one step's gradients.

    For a macro workbook (out.macros): Reset and Run buttons in A1:B2 of each optimizer sheet
    (cfxl.excel.macros), with <book>.py beside the workbook."""
    from cfxl.records import graddesc
    from cfxl.records.cf_steps import cf_step_records
    from cfxl.sheets.cf_steps import write_cf_sheets
    from cfxl.sheets.graddesc import write_graddesc_sheets

    check_counts(steps=steps)
    line = graddesc.run(rules)
    cf = cf_step_records(ratings, steps=steps, trace_users=trace_users, trace_movies=trace_movies)

    def build(book):
        write_graddesc_sheets(book, line, buttons=out.macros, cf=True)
        write_cf_sheets(book, cf)
        if out.macros:
            from cfxl.excel.macros import add_graddesc_macros
            add_graddesc_macros(book, line, interpreter=interpreter)

    with together():
        path = write_workbook(out.book, build, force=out.force)
        if out.macros:
            from cfxl.excel.macros import write_companion
            write_companion(path, force=out.force)
    return path


def check_unrolled(*, steps: int, n_factors: int, hyper: UnrolledHyper) -> None:
    """The train sheet's settings, in the ranges its records and torch.optim accept."""
    check_counts(steps=steps, factors=n_factors)
    check_settings(lr=hyper.lr, momentum=hyper.momentum, betas=hyper.betas, eps=hyper.eps,
                   weight_decay=hyper.weight_decay)


def export_unrolled(out: Outputs, ratings: Ratings, *, steps: int = presets.UNROLLED_STEPS,
                       n_factors: int = presets.UNROLLED_FACTORS,
                       hyper: UnrolledHyper = UnrolledHyper()) -> Path:
    """Write the `train` workbook: the slice model's full-batch training unrolled in formulas."""
    from cfxl.records.unrolled import unrolled_records
    from cfxl.sheets.unrolled import write_unrolled_sheet

    check_unrolled(steps=steps, n_factors=n_factors, hyper=hyper)
    records = unrolled_records(ratings, steps=steps, n_factors=n_factors, hyper=hyper)
    return write_workbook(out.book, lambda book: write_unrolled_sheet(book, records), force=out.force)


def lesson_config(name: str, *, quick: bool = False) -> Config:
    """The lesson's settings for one run; quick keeps one epoch per stage."""
    settings = presets.LESSON_RUNS[name]
    config = Config(**settings)
    if not quick:
        return config
    stages = ",".join(f"1@{lr}" for _, lr in config.stages) if config.stages else config.schedule
    return Config(**{**settings, "epochs": 1, "schedule": stages})


def run_lesson(data: Ratings, *, quick: bool = False, progress=None, on_start=None
               ) -> dict[str, Trained]:
    """Train the lesson's three models on `data`, in the lesson's order. on_start(name, config)
    is called before each run and returns its on_epoch (or None)."""
    models = {}
    for name in presets.LESSON_RUNS:
        config = lesson_config(name, quick=quick)
        on_epoch = None if on_start is None else on_start(name, config)
        models[name] = fit(config, data, progress=progress, on_epoch=on_epoch)
    return models


def demo_outputs(out_dir, *, force: bool = False) -> tuple[Outputs, Outputs, Outputs]:
    """The demo's workbooks in out_dir (made if missing, in an existing folder): collab, graddesc
    and unrolled. A workbook of those names there is rewritten only if cfxl wrote it (it carries
    cfxl's mark, cfxl.sheets.book.written_by_cfxl), or with force."""
    out_dir = ensure_folder(out_dir)
    outputs = []
    for name in DEMO_BOOKS:
        path = out_dir / name
        own = path.is_file() and written_by_cfxl(path)
        if path.exists() and not (own or force or path.is_dir()):
            raise CfxlError(f"{path} exists and cfxl did not write it; move it away, or pass "
                            "--force to overwrite it")
        outputs.append(plan(path, force=force or own) if out_dir.is_dir() else Outputs(path))
    return tuple(outputs)


def write_workbooks(trained: Trained, data: Ratings, outputs) -> list[Path]:
    """The demo's example workbooks (demo_outputs), from the lesson's bias model and its data:
    all three or none, their big sheets capped (presets.DEMO_*)."""
    collab, graddesc, unrolled = outputs
    collab.book.parent.mkdir(exist_ok=True)
    with together():
        return [export_collab(collab, trained, data, max_rows=presets.DEMO_MAX_ROWS),
                export_graddesc(graddesc, data, steps=presets.DEMO_CF_STEPS),
                export_unrolled(unrolled, data, steps=presets.DEMO_UNROLLED_STEPS)]
