"""The slice every small model sees: the lesson's crosstab, as numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Slice:
    """The lesson's "subset for Excel": the most active users against the most rated movies,
    with the full data's rating range (the sigmoid range the real models use)."""

    user_ids: np.ndarray        # (n_users,) raw ids, ascending: the crosstab's rows
    movie_ids: np.ndarray       # (n_movies,) raw ids, ascending: its columns
    titles: tuple[str, ...]     # (n_movies,) each movie's title
    ratings: np.ndarray         # (n_users, n_movies) float64, NaN where not rated
    y_range: tuple[float, float]
    valid: np.ndarray           # (n_users, n_movies) bool: a rated cell held out for validation

    @property
    def train(self) -> np.ndarray:
        """(n_users, n_movies) bool: a rated cell the slice's models are trained on."""
        return ~np.isnan(self.ratings) & ~self.valid

    @property
    def long_valid(self) -> np.ndarray:
        """(n,) bool: which of the rated cells, in long order, are held out."""
        return self.valid[~np.isnan(self.ratings)]

    @property
    def n_valid(self) -> int:
        return int(np.count_nonzero(self.valid))

    @property
    def shape(self) -> tuple[int, int]:
        return self.ratings.shape

    @property
    def rows(self) -> np.ndarray:
        """(n,) user position of each rated cell, row-major (by user, then by movie)."""
        return np.nonzero(~np.isnan(self.ratings))[0]

    @property
    def cols(self) -> np.ndarray:
        """(n,) movie position of each rated cell, in the same order."""
        return np.nonzero(~np.isnan(self.ratings))[1]

    @property
    def long_ratings(self) -> np.ndarray:
        """(n,) the ratings in long format, in that order."""
        return self.ratings[~np.isnan(self.ratings)]

    @property
    def n(self) -> int:
        """Ratings in the slice (in every loss over it)."""
        return int(np.count_nonzero(~np.isnan(self.ratings)))
