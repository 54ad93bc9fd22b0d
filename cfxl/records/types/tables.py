"""The whole trained model as tables, and its analysis (cfxl.records.model_tables, .analysis)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ModelTables:
    """A trained model and its validation predictions as plain records, one table per sheet."""

    users: pd.DataFrame        # userId, index, n_ratings, [bias], f1..fk; one row per user index
    movies: pd.DataFrame       # movieId, index, title, genres, n_ratings, [bias], f1..; per movie index
    predictions: pd.DataFrame  # userId, movieId, title, actual, predicted, error (= predicted - actual)
    epochs: pd.DataFrame       # epoch, train_loss, val_loss, val_rmse, lr: one row per epoch
    config: dict               # setting -> str | int | float: the run, its data and its software
    bias_rank: BiasRank | None  # best and worst movies by bias; None for a model without biases
    pca: PCA                   # principal components of the most rated movies' factors
    rating_range: tuple[float, float]  # the lowest and the highest rating in the data
    model_label: str           # which model and run: 'EmbeddingDotBias, 50 factors, adam, lr 0.01, ...'
    unused: dict[str, str] = field(default_factory=dict)  # setting -> why this run does not use it
    notes: dict[str, str] = field(default_factory=dict)   # setting -> what it means, where that helps

    @property
    def factor_columns(self) -> list[str]:
        return [c for c in self.movies.columns if c[:1] == "f" and c[1:].isdigit()]

    @property
    def has_bias(self) -> bool:
        return "bias" in self.movies.columns

    def error_summary(self, n: int | None = None) -> tuple[float, float]:
        """(RMSE, MAE) of the first n predictions (None: all of them), in float64 with exactly
        rounded sums (math.fsum). Computed here, from torch's predictions, because the sheet
        decides how many rows it shows: these are what its formulas over those rows must give."""
        error = self.predictions["error"].to_numpy(dtype=np.float64)[:n]  # (n,)
        if not len(error):
            return math.nan, math.nan
        return (math.sqrt(math.fsum(np.square(error).tolist()) / len(error)),
                math.fsum(np.abs(error).tolist()) / len(error))


# ---------------------------------------------------------------- the analysis (records.analysis)

@dataclass(frozen=True)
class BiasRank:
    """The movies with the highest and the lowest learned bias, among those rated often enough."""

    best: pd.DataFrame   # rank, movieId, title, genres, n_ratings, bias: highest bias first
    worst: pd.DataFrame  # the same, lowest bias first
    min_ratings: int
    n: int               # movies asked for at each end
    n_ranked: int        # movies with at least min_ratings ratings


@dataclass(frozen=True)
class PCA:
    """Principal components of the factors of the most rated movies."""

    coords: pd.DataFrame      # movieId, title, genres, n_ratings, pc0..: most rated first
    loadings: np.ndarray      # (n_components, n_factors): unit directions in factor space
    explained: np.ndarray     # (n_components,) share of the factors' total variance
    top: list[pd.DataFrame]   # per component: the n_top movies with the highest coordinate
    bottom: list[pd.DataFrame]  # per component: the n_top with the lowest, lowest first
    labels: list[tuple[str, str]]  # per component: (what the + end has in common, the - end)

    @property
    def components(self) -> list[str]:
        return [c for c in self.coords.columns if c.startswith("pc")]
