"""What the learned movie parameters say: the bias ranking and a PCA of the factors (lesson 5's analysis).

numpy and pandas only: both work on the `movies` table of cfxl.records.model_tables (movieId, title, genres,
n_ratings, bias, f0..f{k-1}).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfxl.errors import CfxlError
from cfxl.records.types.tables import PCA, BiasRank

SHOWN = ["movieId", "title", "genres", "n_ratings"]  # the columns that say which movie a row is
NO_GENRES = "(no genres listed)"  # MovieLens' word for a movie without genres
YEAR = r"\((\d{4})\)\s*$"  # the release year that ends a MovieLens title


def factor_columns(table: pd.DataFrame) -> list[str]:
    """The factor columns f0, f1, ... of a users or movies table, in order."""
    return [c for c in table.columns if c[:1] == "f" and c[1:].isdigit()]


def bias_rank(movies: pd.DataFrame, *, min_ratings: int = 20, n: int = 15) -> BiasRank:
    """Best and worst n movies by bias among those with >= min_ratings ratings.

    The lesson ranks the biases of the 3,000 most rated movies of ml-latest-small; a rating
    count is the same idea and keeps its meaning on data of any size. A bias learned from a
    handful of ratings says little, which is why rarely rated movies are left out.
    """
    if "bias" not in movies.columns:
        raise CfxlError("this model has no movie biases to rank (only dotbias models have them)")
    ranked = movies.loc[movies["n_ratings"] >= min_ratings, SHOWN + ["bias"]]
    # ties broken by the most ratings, then the smaller id, so the ranking is deterministic
    order = ranked.sort_values(["bias", "n_ratings", "movieId"], ascending=[False, False, True],
                               kind="stable")
    best = order.head(n)
    worst = order.iloc[::-1].head(n) if len(order) else order
    return BiasRank(_ranked(best), _ranked(worst), min_ratings, n, len(ranked))


def _ranked(table: pd.DataFrame) -> pd.DataFrame:
    out = table.reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def pca(movies: pd.DataFrame, *, n_movies: int = 1000, n_components: int = 3, n_top: int = 10,
        n_genres: int = 3) -> PCA:
    """PCA of the factors of the n_movies most rated movies, by SVD of the centred factor matrix.

    The lesson fits sklearn's PCA to the transposed matrix (factors as samples); here movies are
    the samples, the textbook way, so a movie's coordinate is its centred factors projected on a
    component. A component's sign is arbitrary: each is turned so that its largest coordinate
    (in absolute value) is positive, which makes the result deterministic.
    """
    fcols = factor_columns(movies)
    chosen = movies.sort_values(["n_ratings", "movieId"], ascending=[False, True], kind="stable")
    chosen = chosen.head(n_movies)
    x = chosen[fcols].to_numpy(dtype=np.float64)  # (n, k)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)  # vt: (min(n, k), k)
    n_components = min(n_components, len(s))
    coords = x @ vt[:n_components].T  # (n, n_components)
    flip = np.sign(coords[np.abs(coords).argmax(axis=0), np.arange(n_components)])
    flip[flip == 0] = 1
    coords, loadings = coords * flip, vt[:n_components] * flip[:, None]
    total = float(np.square(s).sum())
    explained = np.square(s[:n_components]) / total if total > 0 else np.zeros(n_components)

    names = [f"pc{j}" for j in range(n_components)]
    table = chosen[SHOWN].reset_index(drop=True)
    table[names] = coords
    top = [table.sort_values(c, ascending=False, kind="stable").head(n_top)[["title", c]]
           .reset_index(drop=True) for c in names]
    bottom = [table.sort_values(c, ascending=True, kind="stable").head(n_top)[["title", c]]
              .reset_index(drop=True) for c in names]
    labels = [genre_ends(table["genres"], table[c], titles=table["title"], n=n_genres) for c in names]
    return PCA(table, loadings, explained, top, bottom, labels)


def genre_ends(genres: pd.Series, values: pd.Series, *, titles: pd.Series | None = None, n: int = 3,
               min_movies: int = 5) -> tuple[str, str]:
    """What the high and the low end of a component have in common, as 'A, B, C' each.

    Each genre's indicator (the movie has it or not) is correlated with the coordinates, and so
    is the age of the film when the titles end in a year, as MovieLens titles do; the n most
    positive correlations name the + end and the n most negative the - end. Genres held by fewer
    than min_movies of the movies are too rare to name anything.
    """
    features = genres.fillna("").astype(str).str.get_dummies(sep="|")
    features = features.drop(columns=[c for c in (NO_GENRES, "") if c in features.columns])
    held = features.sum()
    features = features.loc[:, (held >= min_movies) & (held < len(features))]  # all hold it: says nothing
    if titles is not None:
        year = pd.to_numeric(titles.astype(str).str.extract(YEAR, expand=False), errors="coerce")
        if year.notna().sum() >= min_movies and year.std() > 0:
            features["old films"] = (year.mean() - year).fillna(0).to_numpy()  # unknown year: average
    v = values.to_numpy(dtype=np.float64)
    if features.empty or v.std() == 0:
        return "", ""
    d = features.to_numpy(dtype=np.float64)  # (n_movies, n_features)
    d = d - d.mean(axis=0)
    v = v - v.mean()
    corr = pd.Series(d.T @ v / (np.linalg.norm(d, axis=0) * np.linalg.norm(v)), index=features.columns)
    corr = corr.sort_values(kind="stable")
    high = corr[corr > 0].iloc[::-1].head(n)
    low = corr[corr < 0].head(n).rename(index={"old films": "recent films"})
    return ", ".join(high.index), ", ".join(low.index)
