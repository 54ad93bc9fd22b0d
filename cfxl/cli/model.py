"""Commands that train and use one model: train."""

import click

from cfxl import report
from cfxl.cli.base import cli, data_options, noted, output_options, quiet_option, training_options


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
                 on_read=lambda data: click.echo(report.ratings_line(noted(data))))
    if output is not None:
        click.echo(f"saved {output}")
