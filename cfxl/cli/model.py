"""Commands that train and judge one model: train, lr-find, evaluate."""

import click

from cfxl import report
from cfxl.cli.base import (
    PATH,
    cli,
    data_options,
    noted,
    output_options,
    quiet_option,
    read,
    training_options,
)


@cli.command()
@data_options
@training_options
@output_options("Save the model here (.pt).")
@quiet_option
@click.option("--nproc", type=click.IntRange(min=1), default=1, help="Train on this many local "
              "processes (DDP; each GPU one); under torchrun, leave it out.")
def train(ratings, user_col, item_col, rating_col, output, force, progress, nproc, **settings):
    """Train one model on RATINGS and print a table per epoch; -o saves the model. Without
    options, a recipe that generalises (Adam, one cycle up to lr 0.01, bs 1024, wd 1e-4, 5
    epochs, the best epoch kept); --preset lesson trains as the lesson did. Under torchrun,
    every process trains its share and rank 0 alone prints and saves (docs/scale.md).

    Example: cfxl train --preset lesson --wd 1e-4 -o m.pt"""
    from cfxl.engine.launch import joined
    from cfxl.engine.train import config_for
    from cfxl.workbooks import read_and_fit
    config = config_for(**settings)
    with joined(config, nproc) as world:
        lead = world is None or world.rank == 0
        say = click.echo if lead else (lambda *_: None)
        if "@" in config.schedule and settings.get("epochs") is not None:
            say(f"note: --schedule {config.schedule} sets its own epochs "
                f"({config.n_epochs}); --epochs {settings['epochs']} is not used")
        trained, _ = read_and_fit(
            ratings, config, user_col=user_col, item_col=item_col, rating_col=rating_col,
            output=output if lead else None, force=force, progress=progress if lead else False,
            on_epoch=report.epoch_printer(say), nproc=nproc,
            on_read=(lambda data: say(report.ratings_line(noted(data)))) if lead else None)
    if kept := report.kept_line(trained):
        say(kept)
    say(f"saved {output}" if output is not None else "not saved (-o model.pt saves it)")


@cli.command("lr-find")
@data_options
@training_options
@click.option("--start", type=float, default=1e-7, help="The lr of the first step.")
@click.option("--end", type=float, default=10.0, help="The lr the last step approaches.")
@click.option("--steps", type=int, default=100, help="Mini-batches, one lr each.")
@output_options("Plot the smoothed loss against lr here (.png; needs matplotlib).")
@click.option("--xlsx", type=PATH, help="Also a workbook with the lr_find sheet and its chart.")
def lr_find(ratings, user_col, item_col, rating_col, start, end, steps, output, force, xlsx,
            **settings):
    """Find a learning rate as fastai's lr_find: train from a fresh model with the lr growing
    exponentially from --start towards --end, one mini-batch a step, and suggest an lr by
    fastai's valley rule (the training options set the model, optimizer and batch size).

    Example: cfxl lr-find --opt adamw -o lr.png --xlsx lr.xlsx"""
    from cfxl.engine.lr_find import lr_find as find
    from cfxl.engine.train import config_for
    from cfxl.io import ensure_writable
    from cfxl.records.lr_find import lr_find_records
    from cfxl.sheets.lr_find import write_lr_find_sheet
    from cfxl.workbooks import write_workbook

    config = config_for(**settings)
    if output is not None:
        report.check_plot()
        ensure_writable(output, force=force, suffixes=(".png",))
    if xlsx is not None:
        ensure_writable(xlsx, force=force, suffixes=(".xlsx",))
    data = read(ratings, user_col, item_col, rating_col)
    click.echo(report.ratings_line(data))
    rec = lr_find_records(find(config, data, start=start, end=end, steps=steps), config)
    click.echo(report.lr_find_text(rec))
    if output is not None:
        click.echo(f"wrote {report.plot_lr_find(rec, output, force=force)}")
    if xlsx is not None:
        click.echo(f"wrote {write_workbook(xlsx, lambda b: write_lr_find_sheet(b, rec), force=force)}")


@cli.command()
@click.argument("model", type=PATH)
@data_options
@click.option("--force", is_flag=True, help="Evaluate even if its ratings file changed since.")
def evaluate(model, ratings, user_col, item_col, rating_col, force):
    """A trained model's RMSE and MAE on its validation ratings (the split it was trained with),
    beside the baselines: the training mean, and user + movie biases alone (Surprise's
    BaselineOnly, fitted by ALS); then its error's spread over users and movies.

    RATINGS: where the ratings it was trained on are now, if moved (the same file: its SHA-256
    is checked); without it, where they were.

    Example: cfxl evaluate m.pt"""
    from cfxl.records.evaluation import evaluate as judge
    from cfxl.workbooks import load_model
    trained, data = load_model(model, ratings=ratings, user_col=user_col, item_col=item_col,
                               rating_col=rating_col, on_read=noted, force=force)
    click.echo(report.ratings_line(data))
    click.echo(report.evaluation_report(judge(trained, data)))
