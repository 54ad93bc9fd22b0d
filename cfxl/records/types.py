"""Every record the sheets are written from: plain numpy, pandas and Python values, no torch.

The records modules fill these from torch (float64 replays, the trained model); the sheets
modules read them. Constants the sheets need (names, orders) live here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd



# ---------------------------------------------------------------- the slice every small model sees

@dataclass(frozen=True, eq=False)
class Slice:
    """The lesson's "subset for Excel": the most active users against the most rated movies,
    with the full data's rating range (the sigmoid range the real models use)."""

    user_ids: np.ndarray        # (n_users,) raw ids, ascending: the crosstab's rows
    movie_ids: np.ndarray       # (n_movies,) raw ids, ascending: its columns
    titles: tuple[str, ...]     # (n_movies,) each movie's title
    ratings: np.ndarray         # (n_users, n_movies) float64, NaN where not rated
    y_range: tuple[float, float]

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


# ---------------------------------------------------------------- the lesson's sheets (records.lesson)

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


# ---------------------------------------------------------------- the optimizer workbook's line (records.graddesc)

TRUE_B, TRUE_A = 30.0, 2.0  # the lesson's "a=2, b=30"
LINE_PARAMS = ("b", "a")  # the line's parameters, in the sheets' order
LINE_OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adam_ann")  # a sheet each
LINE_SHEETS = {"sgd": "basic SGD", "momentum": "momentum", "adagrad": "adagrad", "rmsprop": "rmsprop",
          "adam": "adam", "adam_ann": "adam_ann"}
LINE_RULES = ("torch", "lesson")  # torch.optim's, or the lesson spreadsheet's own
ANNEAL_RATIO, ANNEAL_DIVISOR = 2.0, 4.0  # lesson adam_ann: lr / 4 when the gradients grow 2x


@dataclass(frozen=True)
class LineData:
    """x, and the true a and b that make y; y = b + x*a, as the data sheet computes it."""

    x: np.ndarray  # (n,) float64 integers
    b: float = TRUE_B
    a: float = TRUE_A
    seed: int | None = None  # None: the lesson's pasted rows

    @property
    def y(self) -> np.ndarray:
        return self.b + self.x * self.a  # (n,)


@dataclass(frozen=True)
class LineHyper:
    """One optimizer sheet's settings; fields an optimizer does not use are ignored."""

    lr: float
    epochs: int = 5
    momentum: float = 0.0          # SGD's momentum; the lesson's momentum beta
    alpha: float = 0.99            # RMSprop's decay of square_avg; the lesson's rmsprop beta
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's (torch's defaults)
    eps: float = 1e-8              # RMSprop and Adam; Adagrad uses torch's 1e-10
    weight_decay: float = 0.0      # L2, added to the gradient as torch.optim does
    gamma: float = 1.0             # adam_ann: StepLR's factor, applied after each epoch
    start: tuple[float, float] = (1.0, 1.0)  # (b, a) before the first step, the lesson's guesses


@dataclass
class LineRecords:
    """One optimizer's run, a row per step (epochs stacked); every array is float64."""

    opt: str                      # one of LINE_OPTIMIZERS
    rules: str                    # "torch" (torch.optim ran it) or "lesson" (numpy, the lesson's)
    hyper: LineHyper
    epoch: np.ndarray             # (steps,) 1-based
    step: np.ndarray              # (steps,) 1-based; torch's state "step" where it keeps one
    x: np.ndarray                 # (steps,)
    y: np.ndarray
    b: np.ndarray                 # before the step
    a: np.ndarray
    pred: np.ndarray              # b + a*x
    err2: np.ndarray              # (pred - y)^2, the loss of the step's one row
    grad: np.ndarray              # (steps, 2) autograd's de/db, de/da
    grad_used: np.ndarray         # (steps, 2) as the optimizer uses it: + weight_decay * value
    state: dict[str, np.ndarray]  # after the step, torch's names (lesson: mom, ms, histgrad)
    derived: dict[str, np.ndarray]  # (steps,) per-step numbers inside the update (bias corrections)
    lr: np.ndarray                # (steps,) lr used
    new_b: np.ndarray
    new_a: np.ndarray
    state_start: dict[str, np.ndarray] = field(default_factory=dict)  # (2,) before the first step
    epoch_extra: dict[str, np.ndarray] = field(default_factory=dict)  # (epochs,) lesson adam_ann

    @property
    def n_steps(self) -> int:
        return len(self.x)

    @property
    def epoch_loss(self) -> np.ndarray:
        """(epochs,) sqrt of the mean err2 over each epoch's rows: the sheet's loss column."""
        return np.array([math.sqrt(math.fsum(self.err2[self.epoch == e]) / (self.epoch == e).sum())
                         for e in range(1, int(self.epoch.max()) + 1)])


@dataclass
class GraddescRecords:
    """What the graddesc workbook shows: the data, the rules, and one run per optimizer sheet."""

    data: LineData
    rules: str
    runs: dict[str, LineRecords]  # by optimizer key, in LINE_OPTIMIZERS order


# ---------------------------------------------------------------- the CF model's steps and gradients (records.cf_steps)

SLICE_OPTIMIZERS = ("sgd", "momentum", "adam")  # the slice sheets' optimizers, cfxl.engine's names
SLICE_PARAMS = ("u_weight", "i_weight", "u_bias", "i_bias")  # the order of elements in a step


@dataclass(frozen=True, eq=False)
class OptSteps:
    """One optimizer's run, each parameter element a column, in CFStepRecords.names' order."""

    opt: str                  # one of SLICE_OPTIMIZERS
    optimizer: str            # torch's class: "SGD" or "Adam"
    hyper: dict               # torch's param-group settings: lr, momentum, betas, eps, weight_decay
    lr: np.ndarray            # (steps,) the lr used at each step
    loss: np.ndarray          # (steps,) the batch's MSE before the step
    value: np.ndarray         # (steps, n_elements) before the step
    grad: np.ndarray          # (steps, n_elements) autograd's gradient of the batch MSE
    grad_used: np.ndarray     # (steps, n_elements) grad + weight_decay * value
    value_after: np.ndarray   # (steps, n_elements)
    state: dict[str, np.ndarray]  # torch's names, after the step: (steps, n_elements);


@dataclass(frozen=True, eq=False)
class Gradients:
    """The slice model at its initial parameters, and autograd's gradient of its full-batch MSE
    through every stage: d loss/d prediction, d prediction/dx (x = dot + biases), d loss/dx, and
    the parameters' gradients. Grids are (n_users, n_movies); unrated cells hold NaN in `pred`
    and `dpred_dx`, 0 in `dloss_dpred` and `dloss_dx` (they are not in the loss)."""

    slice: Slice
    u_weight: np.ndarray      # (n_users, n_factors)
    i_weight: np.ndarray      # (n_movies, n_factors)
    u_bias: np.ndarray        # (n_users,)
    i_bias: np.ndarray        # (n_movies,)
    pred: np.ndarray
    dloss_dpred: np.ndarray
    dpred_dx: np.ndarray
    dloss_dx: np.ndarray
    d_u_weight: np.ndarray    # (n_users, n_factors)
    d_i_weight: np.ndarray    # (n_movies, n_factors)
    d_u_bias: np.ndarray      # (n_users,)
    d_i_bias: np.ndarray      # (n_movies,)
    loss: float               # the MSE


@dataclass(frozen=True, eq=False)
class CFStepRecords:
    """Every optimizer's recorded steps over the same elements, and the gradients sheet's data."""

    names: tuple[str, ...]    # (n_elements,) "u_weight[3,1]", "i_bias[7,0]": torch's indices
    ids: np.ndarray           # (n_elements,) raw id of the user or movie each element belongs to
    runs: dict[str, OptSteps]  # by opt, in the order asked for
    gradients: Gradients
    traced: bool              # True: the whole data's model, chosen rows; False: the slice model
    n_ratings: int            # ratings trained on
    n_factors: int
    steps: int
    bs: int | None            # None: full batch
    seed: int
    y_range: tuple[float, float]


# ---------------------------------------------------------------- training unrolled (records.unrolled)

UNROLLED_STATES = ("momentum_buffer", "exp_avg", "exp_avg_sq")  # torch's names, all on the sheet


@dataclass(frozen=True)
class UnrolledHyper:
    """The train sheet's yellow settings, with torch.optim's names; lr None takes the preset
    (cfxl.presets.UNROLLED_LRS), an lr with which that optimizer lowers the slice's loss visibly."""

    opt: str = "adam"                # "sgd", "momentum" (SGD with momentum) or "adam"
    lr: float | None = None
    momentum: float = 0.9            # used by "momentum" only; plain "sgd" has none
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's, torch's defaults
    eps: float = 1e-8
    weight_decay: float = 0.0        # L2, added to the gradient as torch.optim does


@dataclass(frozen=True, eq=False)
class Params:
    """Something shaped like the model's parameters, steps first."""

    u_weight: np.ndarray  # (steps, n_users, n_factors)
    i_weight: np.ndarray  # (steps, n_movies, n_factors)
    u_bias: np.ndarray    # (steps, n_users)
    i_bias: np.ndarray    # (steps, n_movies)

    def __getitem__(self, name: str) -> np.ndarray:
        return getattr(self, name)


@dataclass(frozen=True, eq=False)
class UnrolledRecords:
    """K steps of full-batch training of the slice model. Grids are (steps, n_users, n_movies)
    with NaN at unrated cells (0 in dloss_dx: they are not in the loss)."""

    slice: Slice
    n_factors: int
    seed: int
    hyper: UnrolledHyper       # lr filled in
    value: Params             # (steps + 1, ...): before each step, then after the last
    grad: Params              # (steps, ...) autograd's gradient of the MSE
    grad_used: Params         # (steps, ...) what the optimizer uses: grad + weight_decay * value
    state: dict[str, Params]  # torch's state after each step, by its names (those it keeps)
    step: np.ndarray          # (steps,) 1..K, Adam's state `step`
    bias_correction1: np.ndarray  # (steps,) torch's 1 - beta1 ** step (computed for every opt)
    bias_correction2: np.ndarray
    loss: np.ndarray          # (steps,) the MSE before each step
    pred: np.ndarray
    err: np.ndarray           # rating - prediction
    dloss_dx: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.loss)


# ---------------------------------------------------------------- the whole model (records.model_tables)

@dataclass(frozen=True)
class ModelTables:
    """A trained model and its validation predictions as plain records, one table per sheet."""

    users: pd.DataFrame        # userId, index, n_ratings, [bias], f0..f{k-1}; one row per user index
    movies: pd.DataFrame       # movieId, index, title, genres, n_ratings, [bias], f0..; per movie index
    predictions: pd.DataFrame  # userId, movieId, title, actual, predicted, error (= predicted - actual)
    history: pd.DataFrame      # epoch, train_loss, val_loss, val_rmse, lr
    config: dict               # setting -> str | int | float: the run, its data and its software
    bias_rank: BiasRank | None  # best and worst movies by bias; None for a model without biases
    pca: PCA                   # principal components of the most rated movies' factors

    @property
    def factor_columns(self) -> list[str]:
        return [c for c in self.movies.columns if c[:1] == "f" and c[1:].isdigit()]

    @property
    def has_bias(self) -> bool:
        return "bias" in self.movies.columns


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
