"""What every command shares: the group, its error handling, and the option groups."""

import functools
from pathlib import Path

import click

from cfxl import presets, report
from cfxl.errors import CfxlError

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


def pair(ctx, param, value):
    try:
        a, b = (float(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter("give two numbers separated by a comma, e.g. 0.9,0.999") from None
    return (a, b)


def ids(ctx, param, value):
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
    click.option("--betas", default="0.9,0.999", callback=pair, help="Adam's betas."),
    click.option("--eps", type=float, default=1e-8),
    click.option("--wd", "--weight-decay", "weight_decay", type=float, default=0.0,
                 help="L2 weight decay, added to the gradient as torch.optim does."))
# train's and export's: None is "not given", so --preset's value (or cfxl's default) stands
D = presets.TRAIN_DEFAULTS
training_options = options(  # each a cfxl.engine.train.Config field
    click.option("--preset", type=click.Choice(["lesson"]), help="Start from the lesson's "
                 "settings for --model (bs 64, momentum 0.9, 3@0.1,3@0.01); options override."),
    click.option("--model", type=click.Choice(["dot", "dotbias", "net"]),
                 help=f"[default: {D['model']}]"),
    click.option("--opt", help=f"sgd, momentum, adam, rmsprop, adagrad or adamw. [default: {D['opt']}]"),
    click.option("--lr", type=float, help=f"Learning rate (onecycle: the highest). [default: {D['lr']:g}]"),
    click.option("--momentum", type=float, help="For --opt momentum. [default: 0.9]"),
    click.option("--betas", callback=lambda ctx, p, v: None if v is None else pair(ctx, p, v),
                 help="Adam's and AdamW's betas. [default: 0.9,0.999]"),
    click.option("--eps", type=float, help="[default: 1e-08]"),
    click.option("--wd", "--weight-decay", "weight_decay", type=float, help="Weight decay: L2 added "
                 f"to the gradient (adamw: decoupled). [default: {D['weight_decay']:g}]"),
    click.option("--epochs", type=int, help=f"[default: {D['epochs']}]"),
    click.option("--factors", "n_factors", type=int, help="[default: 50]"),
    click.option("--bs", type=int, help=f"Batch size (the lesson's 64). [default: {D['bs']}]"),
    click.option("--schedule", help="constant, onecycle, sgdr (--cycle-len: first cycle's epochs, "
                 f"--cycle-mult: growth) or stages like 3@0.1,3@0.01. [default: {D['schedule']}]"),
    click.option("--cycle-len", type=int), click.option("--cycle-mult", type=int),
    click.option("--keep-best/--keep-last", default=None, help="End with the epoch of lowest "
                 "validation loss, or the last. [default: keep-best]"),
    click.option("--patience", type=int, help="Stop after this many epochs without a lower "
                 "validation loss (0: never). [default: 0]"),
    click.option("--val-pct", type=float, help="[default: 0.2]"),
    click.option("--seed", type=int, help="[default: 42]"),
    click.option("--device", help="auto, cpu, cuda, cuda:N or mps. [default: auto]"),
    click.option("--dtype", type=click.Choice(["float32", "float64"]), help="[default: float32]"),
    click.option("--sparse", is_flag=True, default=None,
                 help="Sparse embedding gradients, lazy updates (sgd, momentum, adam, adamw, "
                 "adagrad): only the rows a batch uses move, and only they decay (--wd)."))


def noted(data):
    if note := report.duplicates_note(data):
        click.echo(note, err=True)
    return data


def read(ratings, user_col, item_col, rating_col):
    from cfxl.data.ratings import read_ratings
    return noted(read_ratings(ratings, user_col=user_col, item_col=item_col, rating_col=rating_col))


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"],
                                        "max_content_width": 100, "show_default": True})
@click.version_option(package_name="cfxl")
def cli():
    """cfxl: collaborative filtering trained in torch, shown in spreadsheets with live formulas.

    Start with `cfxl demo`. RATINGS, where a command reads ratings: a MovieLens file (ratings.csv,
    u.data, ratings.dat), a zip or folder holding one, or a CSV with user, item and rating
    columns; without it, the synthetic MovieLens-shaped sample that ships with cfxl."""
