"""The `cfxl` command line: a thin shell over the library (each command a few library calls)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from cfxl.errors import CfxlError

def data_options(f):
    """RATINGS and the options that say how to read it, shared by every command that reads data."""
    f = click.option("--rating-col", help="Rating column of a custom CSV (inferred when not given).")(f)
    f = click.option("--item-col", help="Movie/item column of a custom CSV (inferred when not given).")(f)
    f = click.option("--user-col", help="User column of a custom CSV (inferred when not given).")(f)
    return click.argument("ratings", required=False, type=click.Path(path_type=Path))(f)


def _read(ratings, user_col, item_col, rating_col):
    from cfxl.data.ratings import read_ratings

    data = read_ratings(ratings, user_col=user_col, item_col=item_col, rating_col=rating_col)
    if data.dropped_duplicates:
        click.echo(f"note: {data.source}: dropped {data.dropped_duplicates:,} duplicate "
                   "(user, movie) ratings, keeping the last of each", err=True)
    return data


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


def _float_pair(ctx, param, value):
    if value is None:
        return None
    try:
        a, b = (float(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter("give two numbers separated by a comma, e.g. 0.9,0.999") from None
    return (a, b)


def _format_table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """Rows as an aligned text table; cols are (key, header, format)."""
    cells = [[h for _, h, _ in cols]] + [[format(r[k], f) for k, _, f in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


EPOCH_COLS = [("epoch", "epoch", "d"), ("train_loss", "train_loss", ".5f"),
              ("val_loss", "val_loss", ".5f"), ("val_rmse", "val_rmse", ".5f"),
              ("lr", "lr", ".3g"), ("seconds", "seconds", ".2f")]


def _print_epoch(row: dict, *, first: bool) -> None:
    lines = _format_table([row], EPOCH_COLS).splitlines()
    if first:
        click.echo(lines[0])
    click.echo(lines[1])


def _epoch_printer():
    state = {"first": True}

    def on_epoch(row):
        _print_epoch(row, first=state["first"])
        state["first"] = False
    return on_epoch


def handle_errors(f=None, *, status=1):
    """Turn user mistakes (CfxlError) into one line on stderr and exit `status` (1 unless told)."""
    if f is None:
        return functools.partial(handle_errors, status=status)

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except CfxlError as e:
            click.echo(f"cfxl: error: {e}", err=True)
            sys.exit(status)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cfxl")
def cli():
    """cfxl: collaborative filtering trained in torch, shown in spreadsheets.

    Trains the fast.ai lesson's models (EmbeddingDot, EmbeddingDotBias, EmbeddingNet) on
    MovieLens ratings, or on the synthetic MovieLens-shaped sample that ships with cfxl when
    no file is given.

    \b
    Start with:
      cfxl demo                       the lesson's experiments and the example workbooks
      cfxl export -o collab.xlsx      the collaborative-filtering workbook, live formulas
      cfxl graddesc -o graddesc.xlsx  the optimizer workbook (SGD ... Adam, step by step)
      cfxl unroll -o train.xlsx       training unrolled in formulas
      cfxl train ratings.csv -o m.pt  train one model on your data
      cfxl recalc --verify BOOK       recompute in LibreOffice and compare with torch
    """


def training_options(f):
    """The training settings shared by `train` and `export`; each maps onto a Config field."""
    for option in reversed(_TRAINING_OPTIONS):
        f = option(f)
    return f


def _config(settings: dict, betas):
    from cfxl.engine.train import Config

    return Config(**settings, **({"betas": betas} if betas else {}))


_TRAINING_OPTIONS = [
    click.option("--model", type=click.Choice(["dot", "dotbias", "net"]), default="dotbias",
        show_default=True, help="EmbeddingDot, EmbeddingDotBias or EmbeddingNet."),
    click.option("--opt", default="adam", show_default=True,
        help="sgd, momentum, adam, rmsprop or adagrad (torch.optim's classes)."),
    click.option("--lr", type=float, default=1e-2, show_default=True, help="Learning rate."),
    click.option("--wd", "--weight-decay", "weight_decay", type=float, default=0.0, show_default=True,
        help="L2 weight decay, added to the gradient as torch.optim does."),
    click.option("--epochs", type=int, default=3, show_default=True),
    click.option("--bs", type=int, default=64, show_default=True, help="Batch size (the lesson's 64)."),
    click.option("--factors", "n_factors", type=int, default=50, show_default=True),
    click.option("--momentum", type=float, default=0.9, show_default=True, help="For --opt momentum."),
    click.option("--betas", callback=_float_pair, help="Adam's betas, e.g. 0.9,0.999."),
    click.option("--eps", type=float, default=1e-8, show_default=True),
    click.option("--schedule", default="constant", show_default=True,
        help="constant, sgdr, onecycle, or stages like 3@0.1,3@0.01 (epochs@lr)."),
    click.option("--cycle-len", type=int, default=1, show_default=True, help="SGDR first cycle, epochs."),
    click.option("--cycle-mult", type=int, default=2, show_default=True, help="SGDR cycle growth."),
    click.option("--val-pct", type=float, default=0.2, show_default=True),
    click.option("--seed", type=int, default=42, show_default=True),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
        show_default=True),
    click.option("--sparse", is_flag=True,
        help="CPU fast path: sparse embedding gradients with sgd, adagrad or adam "
        "(SparseAdam); rows are updated and decayed only when a batch uses them."),
]


@cli.command()
@data_options
@training_options
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Save the model here (.pt).")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@handle_errors
def train(ratings, user_col, item_col, rating_col, output, force, quiet, betas, **settings):
    """Train one model and print a table per epoch; optionally save it.

    RATINGS is a MovieLens file (ratings.csv, u.data, ratings.dat), a zip or folder holding
    one, or any CSV with user, item and rating columns; without it, the embedded sample.

    \b
    Example:
      cfxl train --model dotbias --opt momentum --lr 0.1 --wd 2e-4 \\
          --schedule 3@0.1,3@0.01 -o bias.pt
    """
    from cfxl.engine import checkpoint
    from cfxl.engine.train import fit

    config = _config(settings, betas)
    if output is not None and output.exists() and not force:
        raise CfxlError(f"{output} exists; pass --force to overwrite it")
    data = _read(ratings, user_col, item_col, rating_col)
    click.echo(f"{data.source}: {len(data):,} ratings, {data.n_users:,} users, "
               f"{data.n_movies:,} movies")
    trained = fit(config, data, progress=False if quiet else None, on_epoch=_epoch_printer())
    if output is not None:
        checkpoint.save(trained, output, overwrite=force)
        click.echo(f"saved {output}")


@cli.command()
@click.option("--quick", is_flag=True, help="One epoch per stage: a fast look, not the lesson's numbers.")
@click.option("--out-dir", type=click.Path(path_type=Path), default=Path("workbooks"),
              show_default=True, help="Where the example workbooks go (cfxl's own files there "
                                      "are rewritten).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@handle_errors
def demo(quick, out_dir, quiet):
    """The main job: the lesson's experiments on the embedded sample, compared, and the
    example workbooks written from them.

    Trains EmbeddingDot (SGD + momentum, lr 0.1 then 0.01, wd 1e-5), EmbeddingDotBias (wd 2e-4,
    same schedule) and EmbeddingNet (Adam 1e-3, wd 1e-5) with batch size 64, as in the lesson,
    prints the validation MSE and RMSE of each, and writes OUT_DIR/collab_filter.xlsx from the
    EmbeddingDotBias.

    \b
    Example:
      cfxl demo
    """
    from cfxl.data.ratings import read_ratings
    from cfxl.presets import WORKBOOK_MODEL
    from cfxl.workbooks import run_lesson, write_workbooks

    data = read_ratings(None)
    click.echo(f"embedded sample {data.source}: {len(data):,} ratings, {data.n_users:,} users, "
               f"{data.n_movies:,} movies (synthetic, MovieLens-shaped)")

    printer = {}  # a fresh table (with its header) for each model

    def on_start(name, config):
        click.echo(f"\n{name}: {config.opt}, schedule {config.schedule}, weight decay {config.weight_decay:g}")
        printer["epoch"] = _epoch_printer()

    models = run_lesson(data, quick=quick, progress=False if quiet else None, on_start=on_start,
                        on_epoch=lambda row: printer["epoch"](row))
    results = [{"model": name, "val_mse": m.history[-1]["val_loss"],
                "val_rmse": m.history[-1]["val_rmse"],
                "seconds": sum(h["seconds"] for h in m.history)} for name, m in models.items()]
    click.echo("\nValidation after training (lesson on ml-latest-small: "
               "EmbeddingDot 1.130, EmbeddingDotBias 0.801, EmbeddingNet 0.781 MSE)")
    click.echo(_format_table(results, [("model", "model", "s"), ("val_mse", "val MSE", ".4f"),
                                       ("val_rmse", "val RMSE", ".4f"),
                                       ("seconds", "seconds", ".1f")]))
    for book in write_workbooks(models[WORKBOOK_MODEL], data, out_dir):
        click.echo(f"wrote {book}")


@cli.command()
@data_options
@training_options
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The workbook to write (.xlsx, or .xlsm for a macro workbook).")
@click.option("--force", is_flag=True, help="Overwrite the workbook if it exists.")
@click.option("--csv-dir", type=click.Path(path_type=Path),
              help="Also write the complete users, movies and predictions tables as CSV here "
                   "(sheets are capped at Excel's row limit).")
@click.option("--slice-users", type=int, default=15, show_default=True,
              help="Most active users in the lesson's live sheets.")
@click.option("--slice-movies", type=int, default=15, show_default=True,
              help="Most rated movies in the lesson's live sheets.")
@click.option("--slice-factors", type=int, default=5, show_default=True,
              help="Factors of the small models trained on that slice.")
@click.option("--untrained", is_flag=True, help="Write the slice models' initial parameters.")
@click.option("--xlsm", is_flag=True, help="A macro workbook with Train / Refresh buttons "
              "(xlwings; also chosen by an .xlsm output name).")
@click.option("--interpreter", help="The Python the workbook's buttons start (xlwings.conf).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@handle_errors
def export(ratings, user_col, item_col, rating_col, output, force, csv_dir, slice_users,
           slice_movies, slice_factors, untrained, xlsm, interpreter, quiet, betas, **settings):
    """Write the collaborative-filtering workbook: the lesson's sheets with live formulas
    (dotprod, bias, movielens_emb, movielens_1hot, nn, tensors) and the whole model (users,
    movies, predictions, history, bias_rank, pca, config).

    RATINGS is a ratings file (a model is trained on it with the options below) or a model
    saved by `cfxl train -o` (.pt), whose ratings file is read again; without it, the
    embedded sample.

    \b
    Example:
      cfxl export -o collab_filter.xlsx
      cfxl export ml-latest-small.zip --epochs 5 -o ml.xlsx --csv-dir ml-tables
    """
    from cfxl.engine import checkpoint
    from cfxl.workbooks import SliceOptions, export_collab
    from cfxl.engine.train import fit
    from cfxl.sheets.book import check_target

    check_target(output, force=force)
    macros = xlsm or output.suffix.lower() == ".xlsm"
    if macros:
        from cfxl.excel.macros import check_targets
        check_targets(output, force=force, model=True)
    if ratings is not None and ratings.suffix == ".pt":
        trained = checkpoint.load(ratings)
        if not Path(trained.source).exists():
            raise CfxlError(f"{ratings}: the ratings file it was trained on, {trained.source}, "
                            "is gone; train again with `cfxl export RATINGS`")
        data = _read(Path(trained.source), user_col, item_col, rating_col)
    else:
        data = _read(ratings, user_col, item_col, rating_col)
        trained = fit(_config(settings, betas), data, progress=False if quiet else None,
                      on_epoch=_epoch_printer())
    options = SliceOptions(n_users=slice_users, n_movies=slice_movies, n_factors=slice_factors,
                           untrained=untrained, seed=trained.config.seed)
    export_collab(output, trained, data, slice_options=options, csv_dir=csv_dir, force=force,
                  macros=macros, interpreter=interpreter)
    click.echo(f"wrote {output}")


def _id_list(ctx, param, value):
    if not value:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return [int(v) if v.lstrip("-").isdigit() else v for v in items]


@cli.command()
@data_options
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The workbook to write (.xlsx, or .xlsm for a macro workbook).")
@click.option("--force", is_flag=True, help="Overwrite the workbook if it exists.")
@click.option("--rules", type=click.Choice(["torch", "lesson"]), default="torch", show_default=True,
              help="torch.optim's update rules, or the lesson spreadsheet's own variants.")
@click.option("--steps", type=int, default=30, show_default=True,
              help="Full-batch steps of the CF model on the cf_* sheets.")
@click.option("--trace-users", callback=_id_list,
              help="Follow only these users (raw ids, comma-separated) of a whole-data model.")
@click.option("--trace-movies", callback=_id_list,
              help="Follow only these movies (raw ids, comma-separated) of a whole-data model.")
@click.option("--xlsm", is_flag=True, help="A macro workbook with Reset / Run buttons on each "
              "optimizer sheet (xlwings; also chosen by an .xlsm output name).")
@click.option("--interpreter", help="The Python the workbook's buttons start (xlwings.conf).")
@handle_errors
def graddesc(ratings, user_col, item_col, rating_col, output, force, rules, steps, trace_users,
             trace_movies, xlsm, interpreter):
    """Write the optimizer workbook: one optimizer step per row, as formulas that follow
    torch.optim (SGD, momentum, Adagrad, RMSprop, Adam, Adam with an lr schedule) for the
    lesson's line y = a*x + b, then the CF model's full-batch steps (cf_sgd, cf_momentum,
    cf_adam) and one step's gradients through the chain rule.

    Change an lr or a beta in the workbook and the whole trajectory follows. RATINGS gives the
    CF slice (the embedded sample without it).

    \b
    Example:
      cfxl graddesc -o graddesc.xlsx
      cfxl graddesc --rules lesson -o graddesc_lesson.xlsx
      cfxl graddesc --trace-users 1,2 --trace-movies 318,356 -o traced.xlsx
    """
    from cfxl.workbooks import export_graddesc
    from cfxl.sheets.book import check_target

    check_target(output, force=force)
    macros = xlsm or output.suffix.lower() == ".xlsm"
    if macros:
        from cfxl.excel.macros import check_targets
        check_targets(output, force=force, model=False)
    data = _read(ratings, user_col, item_col, rating_col)
    export_graddesc(output, data, rules=rules, steps=steps, trace_users=trace_users,
                    trace_movies=trace_movies, force=force, macros=macros,
                    interpreter=interpreter)
    click.echo(f"wrote {output}")


@cli.command()
@data_options
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The workbook to write (.xlsx, or .xlsm for a macro workbook).")
@click.option("--force", is_flag=True, help="Overwrite the workbook if it exists.")
@click.option("--steps", type=int, default=50, show_default=True,
              help="Full-batch steps unrolled into bands of formulas (K).")
@click.option("--factors", "n_factors", type=int, default=3, show_default=True,
              help="Factors of the slice model (F).")
@click.option("--opt", type=click.Choice(["sgd", "momentum", "adam"]), default="adam",
              show_default=True, help="The optimizer the sheet starts with (a cell switches it).")
@click.option("--lr", type=float, help="Learning rate (default: one that trains visibly).")
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--betas", callback=_float_pair, help="Adam's betas, e.g. 0.9,0.999.")
@click.option("--eps", type=float, default=1e-8, show_default=True)
@click.option("--wd", type=float, default=0.0, show_default=True, help="L2 weight decay.")
@handle_errors
def unroll(ratings, user_col, item_col, rating_col, output, force, steps, n_factors, opt, lr,
           momentum, betas, eps, wd):
    """Write the slice model's training unrolled into formulas: one band of rows per step
    (parameters, predictions, errors, loss, chain-rule gradients, optimizer state, update), so
    editing the lr or the optimizer cell re-trains the model inside the spreadsheet.

    Each step of the 15 x 15 slice with 3 factors is about 1,400 formulas; K = 50 is 70,000.

    \b
    Example:
      cfxl unroll -o train.xlsx
      cfxl unroll --steps 200 --opt momentum --lr 0.5 -o train200.xlsx
    """
    from cfxl.workbooks import export_train_sheet
    from cfxl.records.types import UnrolledHyper
    from cfxl.sheets.book import check_target

    check_target(output, force=force)
    beta1, beta2 = betas or (0.9, 0.999)
    hyper = UnrolledHyper(opt=opt, lr=lr, momentum=momentum, betas=(beta1, beta2), eps=eps,
                  weight_decay=wd)
    data = _read(ratings, user_col, item_col, rating_col)
    export_train_sheet(output, data, steps=steps, n_factors=n_factors, hyper=hyper, force=force)
    click.echo(f"wrote {output}")


@cli.group()
def data():
    """Read, inspect and download MovieLens data."""


@data.command()
@data_options
@handle_errors
def info(ratings, user_col, item_col, rating_col):
    """Summarise a ratings file: counts, rating range, titles.

    \b
    Example:
      cfxl data info ml-100k/u.data
    """
    d = _read(ratings, user_col, item_col, rating_col)
    lo, hi = d.rating_range
    click.echo(f"file:     {d.source}\nratings:  {len(d):,}\nusers:    {d.n_users:,}\n"
               f"movies:   {d.n_movies:,}\nrange:    {lo:g} to {hi:g}\n"
               f"titles:   {'yes' if d.titles is not None else 'no'}")


@data.command()
@click.argument("name")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Where to keep downloads (default $CFXL_CACHE or ~/.cache/cfxl).")
@click.option("--force", is_flag=True, help="Download again even if cached.")
@handle_errors
def download(name, cache_dir, force):
    """Download a MovieLens set (ml-latest-small, ml-100k, ml-1m, ml-25m), verify and unpack it.

    \b
    Example:
      cfxl data download ml-100k && cfxl train ~/.cache/cfxl/ml-100k
    """
    from cfxl.data.download import download as fetch

    folder = fetch(name, cache_dir=cache_dir, force=force)
    click.echo(str(folder))


@cli.command()
@click.argument("book", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Also save the recomputed workbook here (.xlsx, .xlsm or .ods).")
@click.option("--verify", "check", is_flag=True,
              help="Compare with the values torch computed (the workbook's hidden _torch sheet).")
@click.option("--rtol", type=float, default=1e-12, show_default=True,
              help="Relative tolerance of --verify.")
@click.option("--atol", type=float, default=1e-15, show_default=True,
              help="Absolute tolerance of --verify, for values near zero.")
@handle_errors
def recalc(book, output, check, rtol, atol):
    """Recompute every formula of BOOK in LibreOffice and report formula errors.

    No cached value is trusted. With --verify, each cell listed in the workbook's _torch sheet
    is compared with torch's value. Exit status 1 on any formula error or mismatch.

    \b
    Example:
      cfxl recalc lesson.xlsx --verify -o recomputed.xlsx
    """
    from cfxl.proof import recalc as lo
    from cfxl.proof import verify as proof

    done = lo.recalc(book, output=output)
    formulas = sum(map(len, done.formulas.values()))
    click.echo(f"{book}: {_count(formulas, 'formula')} in {_count(len(done.values), 'sheet')} "
               f"recomputed by LibreOffice in {done.seconds:.2f} s")
    for sheet, cell, text in done.errors:
        click.echo(f"{lo.where(sheet, cell)}: {text}")
    problems = []
    if done.errors:
        problems.append(_count(len(done.errors), "formula error"))
    if check:
        report = proof.verify(done, rtol=rtol, atol=atol)
        click.echo(f"against torch (rtol {rtol:g}, atol {atol:g}):")
        rows = [{"sheet": s, "checked": c.checked, "max_rel_err": c.max_rel_err}
                for s, c in report.sheets.items()]
        click.echo(_format_table(rows, [("sheet", "sheet", "s"), ("checked", "cells", ",d"),
                                        ("max_rel_err", "max rel err", ".2g")]))
        for m in report.failures:
            click.echo(f"{lo.where(m.sheet, m.cell)}: LibreOffice {m.engine!r}, torch {m.torch!r}: "
                       f"{m.problem}")
        if report.failures:
            problems.append(f"{_count(len(report.failures), 'cell')} off torch's values")
    if output is not None:
        click.echo(f"saved {output}")
    if problems:
        raise CfxlError(f"{book}: {', '.join(problems)}")

@cli.command()
@click.argument("book", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write the snapshot to this file instead of standard output.")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@click.option("--digits", type=click.IntRange(1, 17), default=12, show_default=True,
              help="Significant digits of numbers.")
@handle_errors
def snapshot(book, output, force, digits):
    """Print a workbook as canonical text: cells, formulas, structure, charts, VBA and buttons.

    The same content always gives the same text (save times and app properties are left out),
    so snapshots can be reviewed and compared in git.

    \b
    Example:
      cfxl snapshot lesson.xlsx -o lesson.txt
    """
    from cfxl.proof.snapshot import snapshot as take

    if output is not None and output.exists() and not force:
        raise CfxlError(f"{output} exists; pass --force to overwrite it")
    text = take(book, digits=digits)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"saved {output}")


@cli.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--rtol", type=float, default=1e-9, show_default=True,
              help="Numbers this close (relative) are equal.")
@click.option("--atol", type=float, default=1e-12, show_default=True,
              help="Numbers this close (absolute) are equal, for values near zero.")
@click.option("--sheet", help="Compare this sheet only.")
@click.option("--values-only", "mode", flag_value="values",
              help="Compare only cells holding a value (not a formula) on either side.")
@click.option("--formulas-only", "mode", flag_value="formulas",
              help="Compare only cells holding a formula on either side.")
@handle_errors(status=2)
def diff(a, b, rtol, atol, sheet, mode):
    """Compare two workbooks, or a workbook and a snapshot file, and print what differs.

    Numbers compare within the tolerances, formulas and text exactly. Exit status 0 when
    equal, 1 when different, 2 when a file cannot be read.

    \b
    Example:
      cfxl diff old.xlsx new.xlsx --sheet loss --rtol 1e-6
      cfxl diff lesson.xlsx tests/snapshots/lesson.txt
    """
    from cfxl.proof.diff import diff as compare, format_diff

    found = compare(a, b, rtol=rtol, atol=atol, sheet=sheet, mode=mode or "all")
    if not found:
        click.echo(f"no differences (rtol {rtol:g}, atol {atol:g})")
        return
    click.echo(format_diff(found), nl=False)
    sys.exit(1)


def main():
    cli(prog_name="cfxl")
