"""Commands that write workbooks: demo, export, graddesc, unroll, and press (a button)."""

from pathlib import Path

import click

from cfxl import report
from cfxl.cli.base import (
    PATH,
    book_options,
    cli,
    ids,
    macro_options,
    noted,
    quiet_option,
    read,
    settings_options,
    training_options,
)


@cli.command()
@click.option("--quick", is_flag=True, help="One epoch per stage: a quick look, not the lesson's.")
@click.option("--out-dir", type=PATH, default=Path("workbooks"), help="Where the workbooks go.")
@click.option("--force", is_flag=True, help="Overwrite workbooks there that cfxl did not write.")
@quiet_option
def demo(quick, out_dir, force, progress):
    """The lesson's three models trained on the embedded sample and compared; the workbooks.

    Example: cfxl demo --quick --out-dir /tmp/workbooks"""
    from cfxl import presets, workbooks
    outputs, data = workbooks.demo_outputs(out_dir, force=force), read(None, None, None, None)
    click.echo(report.ratings_line(data))
    models = workbooks.run_lesson(data, quick=quick, progress=progress,
                                  on_start=report.lesson_printer(click.echo))
    click.echo("\n" + report.lesson_table(models))
    click.echo(f"\nwriting {', '.join(str(o.book) for o in outputs)}: the slice models, the "
               "optimizer runs and the unrolled training are replayed by torch first ...")
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
    from cfxl.engine.train import config_for
    options = workbooks.SliceOptions(slice_users, slice_movies, slice_factors, untrained)
    out = workbooks.plan(output, force=force, macros=macros, model=True, csv_dir=csv_dir)
    trained, data = workbooks.load_or_train(
        ratings, config_for(**settings), user_col=user_col, item_col=item_col, rating_col=rating_col,
        progress=progress, on_read=lambda d: click.echo(report.ratings_line(noted(d))),
        on_epoch=report.epoch_printer(click.echo), force=force)
    click.echo(f"writing {output}: the lesson's slice models (trained by torch), the model's "
               "tables, the analysis ...")
    book = workbooks.export_collab(out, trained, data, slice_options=options, interpreter=interpreter)
    click.echo(f"wrote {book}")


@cli.command()
@book_options
@click.option("--rules", type=click.Choice(["torch", "lesson"]), default="torch",
              help="torch.optim's update rules, or the lesson spreadsheet's own.")
@click.option("--steps", type=int, default=30, help="Full-batch steps of the CF model (cf_* sheets).")
@click.option("--trace-users", callback=ids, help="Follow only these users (ids a,b,...).")
@click.option("--trace-movies", callback=ids, help="Follow only these movies (ids a,b,...).")
@macro_options
def graddesc(ratings, user_col, item_col, rating_col, output, force, rules, steps, trace_users,
             trace_movies, macros, interpreter):
    """Write the optimizer workbook: SGD to Adam as formulas, on a line and on RATINGS.

    Example: cfxl graddesc --rules lesson --trace-users 1,2 -o graddesc.xlsx"""
    from cfxl import workbooks
    out = workbooks.plan(output, force=force, macros=macros)
    workbooks.check_counts(steps=steps)
    data = read(ratings, user_col, item_col, rating_col)
    click.echo(f"{report.ratings_line(data)}\nwriting {output}: each optimizer's run on the line "
               f"and {steps} steps of the CF model, replayed by torch ...")
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
    data = read(ratings, user_col, item_col, rating_col)
    click.echo(f"{report.ratings_line(data)}\nwriting {output}: {steps} steps of the slice "
               "model, replayed by torch, then as formulas ...")
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
