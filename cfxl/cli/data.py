"""The data commands: info and download."""

import click

from cfxl import report
from cfxl.cli.base import PATH, cli, data_options, read


@cli.group()
def data():
    """Read, inspect and download MovieLens data."""


@data.command()
@data_options
def info(ratings, user_col, item_col, rating_col):
    """Summarise a ratings file: counts, rating range, titles.

    Example: cfxl data info ml-100k/u.data"""
    click.echo(report.ratings_info(read(ratings, user_col, item_col, rating_col)))


@data.command()
@click.argument("name")
@click.option("--cache-dir", type=PATH, help="Where downloads are kept ($CFXL_CACHE, ~/.cache/cfxl).")
@click.option("--force", is_flag=True, help="Download again even if cached.")
def download(name, cache_dir, force):
    """Download a MovieLens set (ml-latest-small, ml-100k, ml-1m, ml-25m), verify and unpack it.

    Example: cfxl data download ml-100k && cfxl train ~/.cache/cfxl/ml-100k"""
    from cfxl.data.download import download as fetch
    click.echo(str(fetch(name, cache_dir=cache_dir, force=force)))
