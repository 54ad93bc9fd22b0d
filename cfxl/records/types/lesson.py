"""The lesson's sheets' records (filled by cfxl.records.lesson)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.records.types.slice import Slice


@dataclass(frozen=True, eq=False)
class GridRecords:
    """A factor model over the crosstab: `dotprod` (no biases) or `bias` (biases, sigmoid range)."""

    u_weight: np.ndarray        # (n_users, n_factors)
    i_weight: np.ndarray        # (n_movies, n_factors)
    u_bias: np.ndarray | None   # (n_users,) or None for EmbeddingDot
    i_bias: np.ndarray | None   # (n_movies,)
    y_range: tuple[float, float] | None  # the sigmoid's (lo, hi); None for EmbeddingDot
    pred: np.ndarray            # (n_users, n_movies) torch's prediction at every cell
    err: np.ndarray             # (n_users, n_movies) rating - prediction; NaN where not rated
    loss: float                 # RMSE over the rated cells


@dataclass(frozen=True, eq=False)
class LongRecords:
    """EmbeddingDot over the rated cells in long format: lookups, one-hot products, predictions."""

    user_emb: np.ndarray        # (n, n_factors) u_weight rows looked up by the embedding
    movie_emb: np.ndarray       # (n, n_factors)
    user_onehot: np.ndarray     # (n, n_users) one-hot rows, as F.one_hot gives them
    movie_onehot: np.ndarray    # (n, n_movies)
    user_act: np.ndarray        # (n, n_factors) one-hot @ u_weight: the embedding as a product
    movie_act: np.ndarray       # (n, n_factors) one-hot @ i_weight
    pred: np.ndarray            # (n,)
    sq_err: np.ndarray          # (n,) (rating - prediction)^2
    rmse: float


@dataclass(frozen=True, eq=False)
class NetRecords:
    """EmbeddingNet's parameters and its forward pass (dropout off) over the rated cells."""

    u_weight: np.ndarray        # (n_users, n_factors)
    i_weight: np.ndarray        # (n_movies, n_factors)
    lin1_weight: np.ndarray     # (nh, 2 * n_factors) as torch stores it: one row per hidden unit
    lin1_bias: np.ndarray       # (nh,)
    lin2_weight: np.ndarray     # (nh,) the single output unit's weights
    lin2_bias: float
    y_range: tuple[float, float]  # the widened (min - 0.5, max + 0.5) the net's sigmoid spans
    x: np.ndarray               # (n, 2 * n_factors) concatenated user and movie embeddings
    hidden: np.ndarray          # (n, nh) relu(lin1(x))
    z: np.ndarray               # (n,) lin2(hidden), before the sigmoid
    pred: np.ndarray            # (n,)
    sq_err: np.ndarray          # (n,)
    rmse: float


@dataclass(frozen=True, eq=False)
class TensorRecords:
    """The notebook's first example: DotProduct on two small matrices."""

    a: np.ndarray               # (2, 2)
    b: np.ndarray               # (2, 2)
    product: np.ndarray         # (2, 2) a * b
    dot: np.ndarray             # (2,) DotProduct()(a, b) = (a * b).sum(1) = [6, 70]


@dataclass(frozen=True, eq=False)
class LessonRecords:
    """Everything the lesson's live sheets show; numpy arrays and plain values only."""

    slice: Slice                # the crosstab the models were trained on
    n_factors: int
    nh: int
    untrained: bool
    seed: int
    steps: int                  # Adam steps taken (0 when untrained)
    lr: float
    dot: GridRecords            # EmbeddingDot: `dotprod`
    bias: GridRecords           # EmbeddingDotBias: `bias`
    long: LongRecords           # EmbeddingDot again: `movielens_emb`, `movielens_1hot`
    net: NetRecords             # EmbeddingNet: `nn`
    tensors: TensorRecords
