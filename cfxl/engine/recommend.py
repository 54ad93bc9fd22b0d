"""Using a trained model: a user's best unrated movies, a movie's neighbours, and a new user folded in.

The dot-product models' predictions are recomputed in float64 from their parameters (`Factors`),
exactly as the recommend and me sheets compute them with formulas, so both rank alike to the last
bit; `EmbeddingNet` recommends through its own forward pass and cannot be folded in. Ties rank
the more rated movie first, then the one the model met first: the order of the `movies` sheet.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cfxl import presets
from cfxl.data.ratings import Ratings, read_ratings
from cfxl.engine.models import EmbeddingNet, param_names
from cfxl.engine.train import Trained
from cfxl.errors import CfxlError, DataError


@dataclass(frozen=True)
class Factors:
    """A dot-product model's parameters in float64: what the workbook's tables hold."""

    u_weight: np.ndarray      # (n_users, k)
    i_weight: np.ndarray      # (n_movies, k)
    u_bias: np.ndarray | None  # (n_users,); None for EmbeddingDot
    i_bias: np.ndarray | None  # (n_movies,)
    y_range: tuple[float, float] | None  # the sigmoid's range; None: no sigmoid (EmbeddingDot)

    @property
    def has_bias(self) -> bool:
        return self.i_bias is not None

    def scores(self, vector: np.ndarray, bias: float = 0.0) -> np.ndarray:
        """Every movie's prediction for a user (vector, bias), as the model computes it."""
        res = self.i_weight @ vector  # (n_movies,)
        if self.has_bias:
            res = res + bias + self.i_bias
        if self.y_range is None:
            return res
        lo, hi = self.y_range
        return lo + (hi - lo) / (1.0 + np.exp(-res))  # sigmoid_range, as the sheet writes it

    def cosine(self, m: int) -> np.ndarray:
        """Cosine similarity of movie m's factors with every movie's, (n_movies,)."""
        norms = np.sqrt(np.sum(self.i_weight ** 2, axis=1))  # (n_movies,)
        return (self.i_weight @ self.i_weight[m]) / (norms * norms[m])


def factors(trained: Trained) -> Factors:
    """The float64 parameters of a dot-product model; EmbeddingNet has no such closed form."""
    if isinstance(trained.model, EmbeddingNet):
        raise CfxlError("EmbeddingNet (--model net) predicts through its hidden layer: a new user "
                        "cannot be folded in by formulas; use a dot-product model (dot or dotbias)")
    p = {k: v.detach().cpu().double().numpy() for k, v in param_names(trained.model).items()}
    bias = "i_bias" in p
    return Factors(p["u_weight"], p["i_weight"], p["u_bias"][:, 0] if bias else None,
                   p["i_bias"][:, 0] if bias else None, trained.y_range if bias else None)


def movie_counts(trained: Trained, ratings: Ratings) -> np.ndarray:
    """Ratings per movie index of the model, (n_movies,) int64."""
    m_idx = trained.movies.index(ratings.movies.ids)[ratings.movie_idx]  # (n,)
    return np.bincount(m_idx, minlength=len(trained.movies)).astype(np.int64)


def rated_by(trained: Trained, ratings: Ratings, user_id) -> dict[int, float]:
    """{movie index: rating} of one user in the data (the last rating where a pair repeats)."""
    u = trained.users.index(user_id)
    mine = trained.users.index(ratings.users.ids)[ratings.user_idx] == u  # (n,)
    m_idx = trained.movies.index(ratings.movies.ids)[ratings.movie_idx[mine]]
    return dict(zip(m_idx.tolist(), ratings.rating[mine].astype(np.float64).tolist()))


def rank(scores: np.ndarray, counts: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """The indices of the n highest scores among the allowed: ties go to the more rated movie,
    then to the lower index (the movies sheet's order)."""
    idx = np.flatnonzero(allowed)
    order = np.lexsort((idx, -counts[idx], -scores[idx]))  # last key first
    return idx[order[:n]]


def title_of(trained: Trained, movie_id, column: str = "title") -> str:
    """A movie's title (or genres) as the model's data names it; 'movie <id>' (or '') if unknown."""
    movie = trained.movies.id_of(trained.movies.index(movie_id))  # '318' typed is the id 318
    titles = trained.titles
    if titles is not None and column in titles and movie in titles.index:
        value = titles.at[movie, column]
        return "" if pd.isna(value) else str(value)
    return f"movie {movie}" if column == "title" else ""


def _table(trained: Trained, idx: np.ndarray, counts: np.ndarray, values: np.ndarray, name: str
           ) -> pd.DataFrame:
    """rank, movieId, title, genres, <name>, n_ratings for the movie indices idx."""
    ids = [trained.movies.id_of(int(i)) for i in idx]
    return pd.DataFrame({
        "rank": np.arange(1, len(idx) + 1),
        "movieId": ids,
        "title": [title_of(trained, m) for m in ids],
        "genres": [title_of(trained, m, "genres") for m in ids],
        name: values[idx].astype(np.float64),
        "n_ratings": counts[idx]})


def _ratings_of(trained: Trained, ratings: Ratings | None) -> Ratings:
    if ratings is not None:
        return ratings
    if not Path(trained.source).exists():
        raise CfxlError(f"the ratings file the model was trained on, {trained.source}, is gone: "
                        "its users' ratings and the movies' counts come from it")
    return read_ratings(trained.source)


def _count(n: int) -> int:
    if n < 1:
        raise CfxlError(f"-n (how many movies) must be at least 1, not {n}")
    return n


@torch.no_grad()
def model_scores(trained: Trained, user_id) -> np.ndarray:
    """Every movie's prediction for a known user: float64 from the parameters for the dot
    models (the sheets' numbers), the net's own forward pass in eval mode otherwise."""
    u = trained.users.index(user_id)
    if not isinstance(trained.model, EmbeddingNet):
        f = factors(trained)
        return f.scores(f.u_weight[u], f.u_bias[u] if f.has_bias else 0.0)
    p = next(trained.model.parameters())
    trained.model.eval()
    m = torch.arange(len(trained.movies), device=p.device)  # (n_movies,)
    return trained.model(torch.full_like(m, u), m).double().cpu().numpy()


def recommend(trained: Trained, user_id, *, n: int = presets.TOP_N, include_rated: bool = False,
              ratings: Ratings | None = None) -> pd.DataFrame:
    """The user's n best movies by predicted rating, leaving out those the user rated unless
    include_rated: rank, movieId, title, genres, predicted, n_ratings. ratings: the data the
    model was trained on (None: read again from its file)."""
    ratings = _ratings_of(trained, ratings)
    counts = movie_counts(trained, ratings)
    scores = model_scores(trained, user_id)
    allowed = np.ones(len(scores), dtype=bool)
    if not include_rated:
        allowed[list(rated_by(trained, ratings, user_id))] = False
    return _table(trained, rank(scores, counts, allowed, _count(n)), counts, scores, "predicted")


def similar(trained: Trained, movie_id, *, n: int = presets.TOP_N,
            min_ratings: int = presets.SIMILAR_MIN_RATINGS, ratings: Ratings | None = None
            ) -> pd.DataFrame:
    """The n movies whose factors point most nearly the way movie_id's do (cosine similarity),
    among those rated at least min_ratings times: rank, movieId, title, genres, similarity,
    n_ratings."""
    m = trained.movies.index(movie_id)
    counts = movie_counts(trained, _ratings_of(trained, ratings))
    w = param_names(trained.model)["i_weight"].detach().cpu().double().numpy()  # (n_movies, k)
    cos = Factors(w[:1], w, None, None, None).cosine(m)  # (n_movies,)
    allowed = counts >= min_ratings
    allowed[m] = False
    return _table(trained, rank(cos, counts, allowed, _count(n)), counts, cos, "similarity")


def fold_in_factors(f: Factors, movies: np.ndarray, rated: np.ndarray, *,
                    lam: float = presets.FOLD_IN_LAMBDA, margin: float = presets.FOLD_IN_MARGIN
                    ) -> tuple[np.ndarray, float]:
    """(vector, bias) of a new user who gave the movies (indices) these ratings: ridge
    regression of the pre-sigmoid score on the movies' factors, in closed form,
    theta = (X'X + lam I)^-1 X'y with X = [factors, 1] and y = logit(rating scaled to (0, 1))
    - movie bias, the rating first kept margin inside the range. EmbeddingDot: X = factors,
    y = rating, no bias. No ratings give the zero vector and bias (the movie biases alone)."""
    x = f.i_weight[movies]  # (n_rated, k)
    y = np.asarray(rated, dtype=np.float64)  # (n_rated,)
    if f.has_bias:
        lo, hi = f.y_range
        q = np.clip(y, lo + margin, hi - margin)  # (n_rated,)
        y = np.log((q - lo) / (hi - q)) - f.i_bias[movies]  # logit((q - lo) / (hi - lo))
        x = np.hstack([x, np.ones((len(x), 1))])  # (n_rated, k + 1): the bias's column
    theta = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)  # (k [+ 1],)
    return (theta[:-1], float(theta[-1])) if f.has_bias else (theta, 0.0)


def fold_in(trained: Trained, rated: dict, *, lam: float = presets.FOLD_IN_LAMBDA,
            margin: float = presets.FOLD_IN_MARGIN) -> tuple[np.ndarray, float]:
    """(vector, bias) of a new user from {movieId: rating} (fold_in_factors)."""
    if lam <= 0:
        raise CfxlError(f"the fold-in's penalty lambda must be above 0, not {lam:g}")
    f = factors(trained)
    ids = list(rated)
    movies = trained.movies.index(np.array(ids, dtype=object)) if ids else np.zeros(0, np.int64)
    values = np.array([float(rated[m]) for m in ids], dtype=np.float64)
    lo, hi = trained.y_range
    bad = [(m, v) for m, v in zip(ids, values) if not lo <= v <= hi]
    if bad:
        raise CfxlError(f"movie {bad[0][0]}: rating {bad[0][1]:g} is outside the model's range, "
                        f"{lo:g} to {hi:g}")
    return fold_in_factors(f, movies, values, lam=lam, margin=margin)


def recommend_folded(trained: Trained, rated: dict, *, n: int = presets.TOP_N,
                     lam: float = presets.FOLD_IN_LAMBDA, ratings: Ratings | None = None
                     ) -> pd.DataFrame:
    """A new user's n best movies from their {movieId: rating}, those rated left out."""
    f = factors(trained)
    vector, bias = fold_in(trained, rated, lam=lam)
    counts = movie_counts(trained, _ratings_of(trained, ratings))
    scores = f.scores(vector, bias)
    allowed = np.ones(len(scores), dtype=bool)
    if rated:
        allowed[trained.movies.index(np.array(list(rated), dtype=object))] = False
    return _table(trained, rank(scores, counts, allowed, _count(n)), counts, scores, "predicted")


def read_my_ratings(path) -> dict:
    """{movieId: rating} from a CSV with the columns movieId and rating (a header row; other
    columns ignored): a new user's ratings for `cfxl recommend --ratings`."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise CfxlError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    if not rows or not {"movieId", "rating"} <= set(rows[0]):
        raise DataError(path, "needs a header with the columns movieId and rating", line=1)
    out = {}
    for line, row in enumerate(rows, start=2):
        try:
            movie = int(row["movieId"]) if row["movieId"].strip().lstrip("-").isdigit() \
                else row["movieId"].strip()
            out[movie] = float(row["rating"])
        except (TypeError, ValueError, AttributeError):
            raise DataError(path, f"the rating {row['rating']!r} is not a number", line=line,
                            column="rating") from None
    return out
