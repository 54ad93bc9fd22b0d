"""The `cfxl` command line: a thin shell over the library (each command a few library calls)."""

import functools
from pathlib import Path

import click

from cfxl import report
from cfxl.errors import CfxlError
from cfxl.io import run_interruptible

PATH = click.Path(path_type=Path)


class Cli(click.Group):  # a user's mistake (CfxlError): one line on stderr, exit 1 (diff: 2)
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CfxlError as e:
            click.echo(f"cfxl: error: {e}", err=True)
            ctx.exit(2 if ctx.invoked_subcommand == "diff" else 1)


def options(*decorators):  # one decorator for a group of options, in the order --help shows
    return lambda f: functools.reduce(lambda f, d: d(f), reversed(decorators), f)


def _pair(ctx, param, value):
    try:
        a, b = (float(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter("give two numbers separated by a comma, e.g. 0.9,0.999") from None
    return (a, b)


def _ids(ctx, param, value):
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return [int(v) if v.lstrip("-").isdigit() else v for v in items] or None


def output_options(what: str, *, required: bool = False):
    return options(click.option("-o", "--output", type=PATH, required=required, help=what),
                   click.option("--force", is_flag=True, help="Overwrite the files it writes."))


data_options = options(click.argument("ratings", required=False, type=PATH), *(
    click.option(f"--{c}-col", help=f"{c.title()} column of a custom CSV (inferred if not given).")
    for c in ("user", "item", "rating")))
book_options = options(data_options, output_options("The workbook (.xlsx, .xlsm).", required=True))
macro_options = options(
    click.option("--xlsm", "macros", flag_value=True, default=None,
                 help="A macro workbook with buttons (xlwings); an .xlsm name is one too."),
    click.option("--interpreter", help="The Python the workbook's buttons start (xlwings.conf)."))
quiet_option = click.option("-q", "--quiet", "progress", flag_value=False, default=None,
                            help="No progress bar.")
settings_options = options(  # torch.optim's, for train, export and unroll
    click.option("--momentum", type=float, default=0.9, help="For --opt momentum."),
    click.option("--betas", default="0.9,0.999", callback=_pair, help="Adam's betas."),
    click.option("--eps", type=float, default=1e-8),
    click.option("--wd", "--weight-decay", "weight_decay", type=float, default=0.0,
                 help="L2 weight decay, added to the gradient as torch.optim does."))
training_options = options(  # each a cfxl.engine.train.Config field
    click.option("--model", type=click.Choice(["dot", "dotbias", "net"]), default="dotbias"),
    click.option("--opt", default="adam", help="sgd, momentum, adam, rmsprop or adagrad."),
    click.option("--lr", type=float, default=1e-2, help="Learning rate."),
    settings_options,
    click.option("--epochs", type=int, default=3),
    click.option("--factors", "n_factors", type=int, default=50),
    click.option("--bs", type=int, default=64, help="Batch size (the lesson's 64)."),
    click.option("--schedule", default="constant", help="constant, onecycle, sgdr (--cycle-len: "
                 "first cycle's epochs, --cycle-mult: growth) or stages like 3@0.1,3@0.01."),
    click.option("--cycle-len", type=int, default=1), click.option("--cycle-mult", type=int, default=2),
    click.option("--val-pct", type=float, default=0.2), click.option("--seed", type=int, default=42),
    click.option("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps."),
    click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32"),
    click.option("--sparse", is_flag=True, help="Sparse embedding gradients (sgd, adagrad, adam)."))


def _noted(data):
    if note := report.duplicates_note(data):
        click.echo(note, err=True)
    return data


def _read(ratings, user_col, item_col, rating_col):
    from cfxl.data.ratings import read_ratings
    return _noted(read_ratings(ratings, user_col=user_col, item_col=item_col, rating_col=rating_col))


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"],
                                        "max_content_width": 100, "show_default": True})
@click.version_option(package_name="cfxl")
def cli():
    """cfxl: collaborative filtering trained in torch, shown in spreadsheets with live formulas.

    Start with `cfxl demo`. RATINGS, where a command reads ratings: a MovieLens file (ratings.csv,
    u.data, ratings.dat), a zip or folder holding one, or a CSV with user, item and rating
    columns; without it, the synthetic MovieLens-shaped sample that ships with cfxl."""


@cli.command()
@data_options
@training_options
@output_options("Save the model here (.pt).")
@quiet_option
def train(ratings, user_col, item_col, rating_col, output, force, progress, **settings):
    """Train one model on RATINGS and print a table per epoch; -o saves the model.

    Example: cfxl train --opt momentum --lr 0.1 --schedule 3@0.1,3@0.01 -o m.pt"""
    from cfxl.engine.train import Config
    from cfxl.workbooks import read_and_fit
    read_and_fit(ratings, Config(**settings), user_col=user_col, item_col=item_col,
                 rating_col=rating_col, output=output, force=force, progress=progress,
                 on_epoch=report.epoch_printer(click.echo),
                 on_read=lambda data: click.echo(report.ratings_line(_noted(data))))
    if output is not None:
        click.echo(f"saved {output}")


@cli.command()
@click.option("--quick", is_flag=True, help="One epoch per stage: a quick look, not the lesson's.")
@click.option("--out-dir", type=PATH, default=Path("workbooks"), help="Where the workbooks go.")
@click.option("--force", is_flag=True, help="Overwrite workbooks there that cfxl did not write.")
@quiet_option
def demo(quick, out_dir, force, progress):
    """The lesson's three models trained on the embedded sample and compared; the workbooks.

    Example: cfxl demo --quick --out-dir /tmp/workbooks"""
    from cfxl import presets, workbooks
    outputs, data = workbooks.demo_outputs(out_dir, force=force), _read(None, None, None, None)
    click.echo(f"embedded sample {report.ratings_line(data)} (synthetic, MovieLens-shaped)")
    models = workbooks.run_lesson(data, quick=quick, progress=progress,
                                  on_start=report.lesson_printer(click.echo))
    click.echo("\n" + report.lesson_table(models))
    for book in workbooks.write_workbooks(models[presets.WORKBOOK_MODEL], data, outputs):
        click.echo(f"wrote {book}")


@cli.command()
@book_options
@training_options
@click.option("--csv-dir", type=PATH, help="Also the complete model tables, as CSV files here.")
@click.option("--slice-users", type=int, default=15, help="Most active users in the live sheets.")
@click.option("--slice-movies", type=int, default=15, help="Most rated movies in the live sheets.")
@click.option("--slice-factors", type=int, default=5, help="Factors of the slice's small models.")
@click.option("--untrained", is_flag=True, help="The slice models' initial parameters.")
@macro_options
@quiet_option
def export(ratings, user_col, item_col, rating_col, output, force, csv_dir, slice_users,
           slice_movies, slice_factors, untrained, macros, interpreter, progress, **settings):
    """Write the collab workbook: the lesson's live sheets, then the whole model's tables. The
    model is trained on RATINGS with the options below, or read from a `cfxl train -o` .pt file.

    Example: cfxl export ml-100k.zip --epochs 5 -o ml.xlsx --csv-dir tables"""
    from cfxl import workbooks
    from cfxl.engine.train import Config
    options = workbooks.SliceOptions(slice_users, slice_movies, slice_factors, untrained)
    out = workbooks.plan(output, force=force, macros=macros, model=True, csv_dir=csv_dir)
    trained, data = workbooks.load_or_train(
        ratings, Config(**settings), user_col=user_col, item_col=item_col, rating_col=rating_col,
        progress=progress, on_read=_noted, on_epoch=report.epoch_printer(click.echo), force=force)
    book = workbooks.export_collab(out, trained, data, slice_options=options, interpreter=interpreter)
    click.echo(f"wrote {book}")


@cli.command()
@book_options
@click.option("--rules", type=click.Choice(["torch", "lesson"]), default="torch",
              help="torch.optim's update rules, or the lesson spreadsheet's own.")
@click.option("--steps", type=int, default=30, help="Full-batch steps of the CF model (cf_* sheets).")
@click.option("--trace-users", callback=_ids, help="Follow only these users (ids a,b,...).")
@click.option("--trace-movies", callback=_ids, help="Follow only these movies (ids a,b,...).")
@macro_options
def graddesc(ratings, user_col, item_col, rating_col, output, force, rules, steps, trace_users,
             trace_movies, macros, interpreter):
    """Write the optimizer workbook: SGD to Adam as formulas, on a line and on RATINGS.

    Example: cfxl graddesc --rules lesson --trace-users 1,2 -o graddesc.xlsx"""
    from cfxl import workbooks
    out = workbooks.plan(output, force=force, macros=macros)
    workbooks.check_counts(steps=steps)
    data = _read(ratings, user_col, item_col, rating_col)
    book = workbooks.export_graddesc(out, data, rules=rules, steps=steps, trace_users=trace_users,
                                     trace_movies=trace_movies, interpreter=interpreter)
    click.echo(f"wrote {book}")


@cli.command()
@book_options
@click.option("--steps", type=int, default=50, help="Full-batch steps, a band of formulas each.")
@click.option("--factors", "n_factors", type=int, default=3, help="Factors of the slice model.")
@click.option("--opt", type=click.Choice(["sgd", "momentum", "adam"]), default="adam")
@click.option("--lr", type=float, help="Learning rate (default: one that trains visibly).")
@settings_options
def unroll(ratings, user_col, item_col, rating_col, output, force, steps, n_factors, **settings):
    """Write a slice model's training unrolled into formulas, one band of rows per step.

    Example: cfxl unroll --steps 200 --opt momentum --lr 0.5 -o unrolled.xlsx"""
    from cfxl import workbooks
    from cfxl.records.types.unrolled import UnrolledHyper
    out, hyper = workbooks.plan(output, force=force, macros=False), UnrolledHyper(**settings)
    workbooks.check_unrolled(steps=steps, n_factors=n_factors, hyper=hyper)
    data = _read(ratings, user_col, item_col, rating_col)
    book = workbooks.export_unrolled(out, data, steps=steps, n_factors=n_factors, hyper=hyper)
    click.echo(f"wrote {book}")


@cli.command()
@click.argument("book", type=PATH)
@click.argument("action")
@click.argument("sheet", required=False)
def press(book, action, sheet):
    """Press a macro workbook's button on the closed file: reset, run, train or refresh. Without
    SHEET, reset and run act on every optimizer sheet.

    Example: cfxl press graddesc.xlsm run adam"""
    from cfxl.excel.actions import apply
    click.echo(f"{action}: wrote {apply(book, action, sheet)}")


@cli.group()
def data():
    """Read, inspect and download MovieLens data."""


@data.command()
@data_options
def info(ratings, user_col, item_col, rating_col):
    """Summarise a ratings file: counts, rating range, titles.

    Example: cfxl data info ml-100k/u.data"""
    click.echo(report.ratings_info(_read(ratings, user_col, item_col, rating_col)))


@data.command()
@click.argument("name")
@click.option("--cache-dir", type=PATH, help="Where downloads are kept ($CFXL_CACHE, ~/.cache/cfxl).")
@click.option("--force", is_flag=True, help="Download again even if cached.")
def download(name, cache_dir, force):
    """Download a MovieLens set (ml-latest-small, ml-100k, ml-1m, ml-25m), verify and unpack it.

    Example: cfxl data download ml-100k && cfxl train ~/.cache/cfxl/ml-100k"""
    from cfxl.data.download import download as fetch
    click.echo(str(fetch(name, cache_dir=cache_dir, force=force)))


@cli.command()
@click.argument("book", type=PATH)
@output_options("Also save the recomputed workbook (.xlsx, .xlsm, .ods).")
@click.option("--verify", "check", is_flag=True, help="Compare with torch's values (its _torch sheet).")
@click.option("--rtol", type=float, default=1e-12, help="Relative tolerance of --verify.")
@click.option("--atol", type=float, default=1e-15, help="Absolute tolerance of --verify, near zero.")
def recalc(book, output, force, check, rtol, atol):
    """Recompute BOOK's formulas in LibreOffice; report errors and (--verify) cells off torch.

    Example: cfxl recalc lesson.xlsx --verify -o recomputed.xlsx"""
    from cfxl.proof import recalc as lo, verify as proof
    done = lo.recalc(book, output=output, force=force)
    verified = proof.verify(done, rtol=rtol, atol=atol) if check else None
    text, problems = report.recalc_report(done, verified)
    click.echo(text + (f"\nsaved {output}" if output is not None else ""))
    if problems:
        raise CfxlError(f"{book}: {problems}")


@cli.command()
@click.argument("book", type=PATH)
@output_options("Write the snapshot here, not to standard output.")
@click.option("--digits", type=click.IntRange(1, 17), default=12, help="Significant digits of numbers.")
def snapshot(book, output, force, digits):
    """Print a workbook as canonical text: cells, formulas, structure, charts, VBA, buttons.

    Example: cfxl snapshot lesson.xlsx -o lesson.txt"""
    from cfxl.proof.snapshot import snapshot as take, write_snapshot
    if output is None:
        return click.echo(take(book, digits=digits), nl=False)
    click.echo(f"saved {write_snapshot(book, output, digits=digits, force=force)}")


@cli.command()
@click.argument("a", type=PATH)
@click.argument("b", type=PATH)
@click.option("--rtol", type=float, default=1e-9, help="Numbers this close (relative) are equal.")
@click.option("--atol", type=float, default=1e-12, help="Numbers this close (absolute) are equal.")
@click.option("--sheet", help="Compare this sheet only.")
@click.option("--values-only", "mode", flag_value="values", help="Only cells holding a value.")
@click.option("--formulas-only", "mode", flag_value="formulas", help="Only cells holding a formula.")
def diff(a, b, rtol, atol, sheet, mode):
    """Compare two workbooks (or snapshots); exit status 0 equal, 1 different, 2 trouble.

    Example: cfxl diff old.xlsx new.xlsx --sheet loss --rtol 1e-6"""
    from cfxl.proof.diff import diff as compare, format_diff
    found = compare(a, b, rtol=rtol, atol=atol, sheet=sheet, mode=mode or "all")
    click.echo(format_diff(found).rstrip("\n") if found
               else f"no differences (rtol {rtol:g}, atol {atol:g})")
    raise SystemExit(1 if found else 0)


main = functools.partial(run_interruptible, cli, prog_name="cfxl")  # SIGTERM unwinds as Ctrl-C
