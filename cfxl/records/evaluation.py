"""How good a trained model is on its validation ratings, beside the baselines Surprise users
know: the global mean, and user + movie biases alone (Surprise's BaselineOnly, fitted by ALS).

`evaluate` recomputes the model's split (its config's val_pct and seed, by position, as
`cfxl export` does), predicts the held-out ratings with torch, fits the baselines on the
training ratings in numpy, and returns plain records for the command line to print.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.data.ratings import Ratings, split
from cfxl.engine.train import Trained
from cfxl.errors import CfxlError
from cfxl.records.model_tables import predict_indices

QUANTILES = (0.1, 0.5, 0.9)
# Surprise's BaselineOnly defaults (ALS): 10 sweeps, shrinkage 15 for users and 10 for movies
ALS_EPOCHS, REG_USER, REG_MOVIE = 10, 15.0, 10.0


@dataclass(frozen=True)
class Scores:
    """One predictor's errors on the validation ratings."""

    name: str
    rmse: float
    mae: float


@dataclass(frozen=True)
class Evaluation:
    """The model and its baselines on the same validation ratings, and how the model's error
    spreads over users and movies (quantiles of each one's RMSE)."""

    n_train: int
    n_valid: int
    scores: list[Scores]                 # the model first, then the baselines
    user_rmse: dict[float, float]        # quantile -> RMSE of a user's validation ratings
    movie_rmse: dict[float, float]       # the same per movie
    n_users: int                         # users with at least one validation rating
    n_movies: int


def evaluate(trained: Trained, ratings: Ratings) -> Evaluation:
    """`trained` on the validation ratings of `ratings`, the data it was trained on."""
    if trained.config.val_pct == 0:
        raise CfxlError("the model was trained on every rating (--val-pct 0): there is no "
                        "validation set to evaluate it on")
    train, val = split(len(ratings), trained.config.val_pct, trained.config.seed)
    u_idx = trained.users.index(ratings.users.ids)[ratings.user_idx]  # (n,) model indices
    m_idx = trained.movies.index(ratings.movies.ids)[ratings.movie_idx]  # (n,)
    y = ratings.rating.astype(np.float64)  # (n,)
    lo, hi = ratings.rating_range
    mean = float(y[train].mean())
    bu, bi = als_biases(u_idx[train], m_idx[train], y[train] - mean,
                        len(trained.users), len(trained.movies))
    predicted = {
        "model": predict_indices(trained, u_idx[val], m_idx[val]),
        "global mean": np.full(len(val), mean),
        "user + movie biases": np.clip(mean + bu[u_idx[val]] + bi[m_idx[val]], lo, hi),
    }
    scores = [Scores(name, *_rmse_mae(p - y[val])) for name, p in predicted.items()]
    err2 = (predicted["model"] - y[val]) ** 2  # (n_valid,)
    return Evaluation(
        n_train=len(train), n_valid=len(val), scores=scores,
        user_rmse=_quantiles(err2, u_idx[val]), movie_rmse=_quantiles(err2, m_idx[val]),
        n_users=len(np.unique(u_idx[val])), n_movies=len(np.unique(m_idx[val])))


def als_biases(u: np.ndarray, m: np.ndarray, r: np.ndarray, n_users: int, n_movies: int, *,
               epochs: int = ALS_EPOCHS, reg_u: float = REG_USER, reg_i: float = REG_MOVIE
               ) -> tuple[np.ndarray, np.ndarray]:
    """Surprise's ALS baseline: alternately each user's bias, then each movie's, as the
    shrunk mean of what the other leaves of the centred ratings r (u, m: indices)."""
    n_u = np.bincount(u, minlength=n_users)  # (n_users,)
    n_i = np.bincount(m, minlength=n_movies)  # (n_movies,)
    bu, bi = np.zeros(n_users), np.zeros(n_movies)
    for _ in range(epochs):
        bu = np.bincount(u, weights=r - bi[m], minlength=n_users) / (reg_u + n_u)
        bi = np.bincount(m, weights=r - bu[u], minlength=n_movies) / (reg_i + n_i)
    return bu, bi


def _rmse_mae(error: np.ndarray) -> tuple[float, float]:
    return float(np.sqrt(np.mean(error ** 2))), float(np.mean(np.abs(error)))


def _quantiles(err2: np.ndarray, who: np.ndarray) -> dict[float, float]:
    """Quantiles over the users (or movies) in `who` of each one's RMSE."""
    total = np.bincount(who, weights=err2)
    count = np.bincount(who)
    seen = count > 0
    rmse = np.sqrt(total[seen] / count[seen])
    return {q: float(np.quantile(rmse, q)) for q in QUANTILES}
