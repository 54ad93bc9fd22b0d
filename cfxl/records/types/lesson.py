"""The lesson's sheets' records (filled by cfxl.records.lesson)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.records.types.slice import Slice


@dataclass(frozen=True)
class Fit:
    """How torch trains one slice model: full-batch Adam steps on the training ratings,
    minimising MSE + weight_decay * (sum of squared parameters)."""

    steps: int
    lr: float
    weight_decay: float         # the sheets' wd cell: the penalty's factor in the objective


@dataclass(frozen=True, eq=False)
class GridRecords:
    """A factor model over the crosstab: `dotprod` (no biases) or `bias` (biases, sigmoid range),
    at torch's seeded start or trained."""

    u_weight: np.ndarray        # (n_users, n_factors)
    i_weight: np.ndarray        # (n_movies, n_factors)
    u_bias: np.ndarray | None   # (n_users,) or None for EmbeddingDot
    i_bias: np.ndarray | None   # (n_movies,)
    y_range: tuple[float, float] | None  # the sigmoid's (lo, hi); None for EmbeddingDot
    fit: Fit
    pred: np.ndarray            # (n_users, n_movies) torch's prediction at every cell
    err: np.ndarray             # (n_users, n_movies) prediction - rating (positive: rated too
                                # high); NaN where not rated
    train_rmse: float           # over the rated cells the model is trained on
    valid_rmse: float           # over the held-out cells; NaN when none is held out
    sumsq: float                # sum of squared parameters, what the weight decay multiplies
    objective: float            # train MSE + weight_decay * sumsq: what Adam (and Solver) minimise


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
    err: np.ndarray             # (n,) prediction - rating
    sq_err: np.ndarray          # (n,) err^2
    train_rmse: float
    valid_rmse: float           # NaN when none is held out


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
    fit: Fit
    x: np.ndarray               # (n, 2 * n_factors) concatenated user and movie embeddings
    hidden: np.ndarray          # (n, nh) relu(lin1(x))
    z: np.ndarray               # (n,) lin2(hidden), before the sigmoid
    pred: np.ndarray            # (n,)
    err: np.ndarray             # (n,) prediction - rating
    sq_err: np.ndarray          # (n,)
    train_rmse: float
    valid_rmse: float
    sumsq: float                # sum of squared parameters, every weight and bias
    objective: float            # train MSE + weight_decay * sumsq


@dataclass(frozen=True, eq=False)
class TensorRecords:
    """The notebook's first example: DotProduct on two small matrices."""

    a: np.ndarray               # (2, 2)
    b: np.ndarray               # (2, 2)
    product: np.ndarray         # (2, 2) a * b
    dot: np.ndarray             # (2,) DotProduct()(a, b) = (a * b).sum(1) = [6, 70]


@dataclass(frozen=True, eq=False)
class LessonRecords:
    """Everything the lesson's live sheets show; numpy arrays and plain values only.

    The crosstab sheets hold torch's seeded start, for the reader (or Solver) to train; torch's
    trained models sit beside them, None when untrained (nothing trained)."""

    slice: Slice                # the crosstab, its held-out cells marked
    n_factors: int
    nh: int
    untrained: bool
    seed: int
    dot: GridRecords            # EmbeddingDot at its start: `dotprod`
    bias: GridRecords           # EmbeddingDotBias at its start: `bias`
    dot_trained: GridRecords | None   # `dotprod_trained`
    bias_trained: GridRecords | None  # `bias_trained`
    long: LongRecords           # `dot` again, in long format: `movielens_emb`, `movielens_1hot`
    net: NetRecords             # EmbeddingNet, trained (at its start when untrained): `nn`
    tensors: TensorRecords
