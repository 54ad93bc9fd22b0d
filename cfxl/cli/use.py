"""Commands that use a trained model: recommend (a known user, or a new one from a ratings file)
and similar."""

import json

import click

from cfxl import presets, report
from cfxl.cli.base import PATH, cli
from cfxl.errors import CfxlError

TOP_COLS = [("rank", "rank", "d"), ("movieId", "movieId", ""), ("title", "title", "s"),
            ("n_ratings", "ratings", ",d")]


def _show(table, score: str, heading: str, as_json: bool) -> None:
    """The table as aligned text under a heading, or (as_json) a JSON list of rows."""
    if as_json:
        rows = [{k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
                for row in table.to_dict(orient="records")]
        return click.echo(json.dumps(rows, indent=1))
    cols = TOP_COLS[:3] + [(score, score, ".4f")] + TOP_COLS[3:]
    click.echo(heading)
    click.echo(report.format_table(table.to_dict(orient="records"), cols))


@cli.command()
@click.argument("model", type=PATH)
@click.option("--user", help="A user id of the data the model was trained on.")
@click.option("--ratings", "mine", type=PATH,
              help="A CSV of a new user's ratings (columns movieId, rating): folded in.")
@click.option("-n", type=int, default=presets.TOP_N, help="How many movies.")
@click.option("--include-rated", is_flag=True, help="Keep the movies the user rated.")
@click.option("--lambda", "lam", type=float, default=presets.FOLD_IN_LAMBDA,
              help="The fold-in's ridge penalty (--ratings).")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of rows, for scripts.")
def recommend(model, user, mine, n, include_rated, lam, as_json):
    """The movies a model predicts a user will rate highest, leaving out those they rated.

    Example: cfxl recommend bias.pt --user 15 -n 5 (or --ratings my.csv: movieId,rating rows)"""
    from cfxl.engine import checkpoint, recommend as use
    if (user is None) == (mine is None):
        raise CfxlError("give --user ID (a user of the model's data) or --ratings FILE (a new "
                        "user's ratings), one of the two")
    if mine is not None and include_rated:
        raise CfxlError("--include-rated is for --user; a new user's own ratings are left out")
    rated = use.read_my_ratings(mine) if mine is not None else None
    trained = checkpoint.load(model)
    if rated is None:
        table = use.recommend(trained, user, n=n, include_rated=include_rated)
        heading = f"user {user}: the {report.count(len(table), 'movie')} predicted highest" + \
                  ("" if include_rated else " of those they have not rated")
    else:
        table = use.recommend_folded(trained, rated, n=n, lam=lam)
        heading = (f"{mine}: a new user fitted to {report.count(len(rated), 'rating')} (lambda "
                   f"{lam:g}): the {report.count(len(table), 'movie')} predicted highest of the rest")
    _show(table, "predicted", heading, as_json)


@cli.command()
@click.argument("model", type=PATH)
@click.option("--movie", required=True, help="A movie id of the data the model was trained on.")
@click.option("-n", type=int, default=presets.TOP_N, help="How many movies.")
@click.option("--min-ratings", type=int, default=presets.SIMILAR_MIN_RATINGS,
              help="Leave out movies rated fewer times: their factors say little.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of rows, for scripts.")
def similar(model, movie, n, min_ratings, as_json):
    """The movies whose factors point most nearly the way a movie's do (cosine similarity).

    Example: cfxl similar bias.pt --movie 318 -n 5 --min-ratings 50"""
    from cfxl.engine import checkpoint, recommend as use
    trained = checkpoint.load(model)
    table = use.similar(trained, movie, n=n, min_ratings=min_ratings)
    _show(table, "similarity", f"movie {movie} ({use.title_of(trained, movie)}): the "
          f"{report.count(len(table), 'movie')} most similar, rated at least {min_ratings:,} times",
          as_json)
