"""The workbooks as library calls: export (collab), graddesc, unroll, and the demo that writes all three.

This is where the two sides meet: torch produces plain numpy records (cfxl.records.lesson for the
lesson's slice models, cfxl.records.model_tables for the whole model) and the workbook layer (cfxl.sheets)
writes them; neither side imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cfxl import presets
from cfxl.data.ratings import Ratings
from cfxl.records.lesson import lesson_records
from cfxl.records.model_tables import model_tables
from cfxl.engine.train import Config, Trained, fit
from cfxl.sheets.book import write_atomic
from cfxl.sheets.lesson import write_lesson_sheets
from cfxl.sheets.model_sheets import write_model_sheets


@dataclass(frozen=True)
class SliceOptions:
    """The lesson's "subset for Excel": how many users, movies and factors the live sheets use."""

    n_users: int = 15        # the lesson's crosstab is 15 x 15
    n_movies: int = 15
    n_factors: int = 5       # the lesson's sheets show 5 factors
    untrained: bool = False  # write the initial parameters instead of trained ones
    seed: int = 42


def _macros(output, macros: bool | None, *, force: bool, model: bool = False) -> bool:
    """Whether to write a macro workbook (by default: an .xlsm output), its targets checked."""
    macros = Path(output).suffix.lower() == ".xlsm" if macros is None else macros
    if macros:
        from cfxl.excel.macros import check_targets
        check_targets(output, force=force, model=model)
    return macros


def export_collab(output, trained: Trained, ratings: Ratings, *, slice_options=SliceOptions(),
                  csv_dir=None, force: bool = False, macros: bool | None = None,
                  interpreter: str | None = None) -> Path:
    """Write the collab workbook: the lesson's live sheets, then the whole model's tables.

    macros (by default for an .xlsm output): a macro workbook (cfxl.excel.macros) with a ratings
    sheet and Train / Refresh buttons; the model is saved beside it as <book>.pt and the
    config sheet names it; <book>.py beside it runs the buttons. interpreter: the Python
    xlwings starts for them (xlwings.conf)."""
    s = slice_options
    macros = _macros(output, macros, force=force, model=True)
    lesson = lesson_records(ratings, n_users=s.n_users, n_movies=s.n_movies,
                            n_factors=s.n_factors, untrained=s.untrained, seed=s.seed)
    tables = model_tables(trained, ratings)
    model_file = Path(output).with_suffix(".pt")
    if macros:
        tables.config["model_file"] = model_file.name
    if csv_dir is not None:
        Path(csv_dir).mkdir(parents=True, exist_ok=True)

    def build(book):
        write_lesson_sheets(book, lesson)
        write_model_sheets(book, tables, csv_dir=csv_dir)
        if macros:
            from cfxl.excel.macros import add_collab_macros
            add_collab_macros(book, ratings.frame(), tables.config, interpreter=interpreter)

    path = write_atomic(output, build, force=force)
    if macros:
        from cfxl.engine import checkpoint
        from cfxl.excel.macros import finish
        checkpoint.save(trained, model_file, overwrite=True)  # check_targets asked about force
        finish(path, force=force)
    return path


def export_graddesc(output, ratings: Ratings, *, rules: str = "torch", steps: int = 30,
                    trace_users=None, trace_movies=None, force: bool = False,
                    macros: bool | None = None, interpreter: str | None = None) -> Path:
    """Write the optimizer workbook: the lesson's line y = a*x + b under each optimizer (torch's
    rules, or the lesson's own), then the CF slice model's steps and one step's gradients.

    macros (by default for an .xlsm output): Reset and Run buttons in A1:B2 of each optimizer
    sheet (cfxl.excel.macros), with <book>.py beside the workbook."""
    macros = _macros(output, macros, force=force)
    from cfxl.records import graddesc
    from cfxl.records.cf_steps import cf_step_records
    from cfxl.sheets.graddesc import write_graddesc_sheets
    from cfxl.sheets.cf_steps import write_cf_sheets

    line = graddesc.run(rules)
    cf = cf_step_records(ratings, steps=steps, trace_users=trace_users, trace_movies=trace_movies)

    def build(book):
        write_graddesc_sheets(book, line, buttons=macros)
        write_cf_sheets(book, cf)
        if macros:
            from cfxl.excel.macros import add_graddesc_macros
            add_graddesc_macros(book, line, interpreter=interpreter)

    path = write_atomic(output, build, force=force)
    if macros:
        from cfxl.excel.macros import finish
        finish(path, force=force)
    return path


def export_train_sheet(output, ratings: Ratings, *, steps: int = 50, n_factors: int = 3,
                       hyper=None, force: bool = False) -> Path:
    """Write the `train` workbook: the slice model's full-batch training unrolled in formulas."""
    from cfxl.records.types import UnrolledHyper
    from cfxl.records.unrolled import unrolled_records
    from cfxl.sheets.unrolled import write_train_sheet

    records = unrolled_records(ratings, steps=steps, n_factors=n_factors,
                               hyper=hyper or UnrolledHyper())
    return write_atomic(output, lambda book: write_train_sheet(book, records), force=force)


def lesson_config(name: str, *, quick: bool = False) -> Config:
    """The lesson's settings for one run; quick keeps one epoch per stage."""
    settings = presets.LESSON_RUNS[name]
    config = Config(**settings)
    if not quick:
        return config
    stages = ",".join(f"1@{lr}" for _, lr in config.stages) if config.stages else config.schedule
    return Config(**{**settings, "epochs": 1, "schedule": stages})


def run_lesson(data: Ratings, *, quick: bool = False, progress=None, on_start=None,
               on_epoch=None) -> dict[str, Trained]:
    """Train the lesson's three models on `data`, in the lesson's order."""
    models = {}
    for name in presets.LESSON_RUNS:
        config = lesson_config(name, quick=quick)
        if on_start is not None:
            on_start(name, config)
        models[name] = fit(config, data, progress=progress, on_epoch=on_epoch)
    return models


def write_workbooks(trained: Trained, data: Ratings, out_dir) -> list[Path]:
    """The example workbooks of the demo, rewritten in out_dir (they are cfxl's own files)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [export_collab(out_dir / "collab_filter.xlsx", trained, data, force=True),
            export_graddesc(out_dir / "graddesc.xlsx", data, force=True),
            export_train_sheet(out_dir / "train.xlsx", data, force=True)]
