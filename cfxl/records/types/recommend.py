"""Recommendations as records for the recommend, similar and me sheets (cfxl.records.recommend).

Every per-movie array is in the `movies` sheet's order (the most rated first) and covers the
movies that sheet shows; a position is 0-based in that order, as the sheets' rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True, eq=False)
class Ranked:
    """One ranking a sheet shows: its positions, best first, and the scores they rank by."""

    positions: np.ndarray  # (<= n,) int: movies-sheet positions, best first
    scores: np.ndarray     # (n_movies,) float64: each movie's score (NaN where it may not rank)


@dataclass(frozen=True, eq=False)
class UserPick:
    """The recommend sheet's chosen user and what its formulas give for them."""

    user_id: object
    row: int                # 0-based position on the users sheet
    vector: np.ndarray      # (k,) the user's factors
    bias: float             # 0.0 for a model without biases
    rating: np.ndarray      # (n_movies,) the user's own rating, NaN where not rated
    top: Ranked             # unrated movies by predicted rating
    own: Ranked             # the user's rated movies by their rating


@dataclass(frozen=True, eq=False)
class MoviePick:
    """The similar sheet's chosen movie and its neighbours."""

    movie_id: object
    row: int                # 0-based position on the movies sheet
    vector: np.ndarray      # (k,) its factors
    min_ratings: int
    norms: np.ndarray       # (n_movies,) length of each movie's factor vector
    top: Ranked             # cosine similarity, among movies rated at least min_ratings times


@dataclass(frozen=True, eq=False)
class FoldIn:
    """The me sheet: a new user fitted to ratings of the most rated movies, and their top movies."""

    n: int                  # the first n movies of the movies sheet are offered to rate
    rating: np.ndarray      # (n,) as written: NaN where blank
    factors: np.ndarray     # (n, k) the n movies' factors
    lam: float
    margin: float
    gram: np.ndarray        # (p, p) X'X + lam I, p = k + 1 with biases (else k)
    gram_size: np.ndarray   # (p, p) the sums of |terms| each entry adds up
    xty: np.ndarray         # (p,) X'y
    xty_size: np.ndarray    # (p,)
    theta: np.ndarray       # (p,) (vector, bias)
    target: np.ndarray      # (n,) y: 0 where blank
    top: Ranked


@dataclass(frozen=True, eq=False)
class RecommendRecords:
    """What the recommend, similar and me sheets show, for a dot-product model."""

    has_bias: bool
    y_range: tuple[float, float] | None  # the sigmoid's range; None without one
    n_factors: int
    n_users: int               # rows on the users sheet
    movie_ids: np.ndarray      # (n_movies,) raw ids in the movies sheet's order
    counts: np.ndarray         # (n_movies,) n_ratings
    rated: pd.DataFrame        # userId, movieId, rating: shown users' ratings of shown movies,
    #                            grouped by user (users sheet order), then in movies sheet order
    user: UserPick
    movie: MoviePick
    me: FoldIn
    top_n: int

    @property
    def n_movies(self) -> int:
        return len(self.movie_ids)
