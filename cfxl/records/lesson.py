"""The lesson's spreadsheet models, trained by torch in float64 on the Excel slice, as numpy records.

`lesson_records` takes the lesson's "subset for Excel" (the crosstab of the most active users by
the most rated movies), trains the three models on just those ratings and records their
parameters together with torch's own forward pass for every cell the live sheets compute: the
values the workbook's `_torch` sheet carries and LibreOffice must reproduce. Nothing here is
re-derived in numpy; the workbook layer (cfxl.sheets.lesson) sees only these plain records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cfxl.data.ratings import Ratings, crosstab
from cfxl.engine.models import DotProduct, EmbeddingDot, EmbeddingDotBias, EmbeddingNet

STEPS = 300  # full-batch Adam steps: the slice's 210 ratings converge in well under a second
LR = 0.1     # Adam's lr; 0.02 needs twice the steps to reach the same loss on the slice
TENSOR_A = ((1.0, 2.0), (3.0, 4.0))     # the notebook's "Collab filtering from scratch" example
TENSOR_B = ((2.0, 2.0), (10.0, 10.0))


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

    user_ids: np.ndarray        # (n_users,) raw ids, ascending, as the crosstab's rows
    movie_ids: np.ndarray       # (n_movies,) raw ids, ascending, as its columns
    titles: tuple[str, ...]     # (n_movies,) title of each movie
    ratings: np.ndarray         # (n_users, n_movies) NaN where the user did not rate the movie
    rows: np.ndarray            # (n,) the rated cells in long format, row-major: user position
    cols: np.ndarray            # (n,) movie position
    y_range: tuple[float, float]  # the full data's rating range, as the real models use it
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

    @property
    def long_ratings(self) -> np.ndarray:
        """(n,) the ratings in long format."""
        return self.ratings[self.rows, self.cols]


def lesson_records(ratings: Ratings, *, n_users: int = 15, n_movies: int = 15, n_factors: int = 5,
                   nh: int = 10, untrained: bool = False, seed: int = 42) -> LessonRecords:
    """Train (or just initialise) the lesson's models on the crosstab slice and record them."""
    table, grid, rows, cols = lesson_slice(ratings, n_users, n_movies)
    y_range = ratings.rating_range
    users, movies = torch.from_numpy(rows), torch.from_numpy(cols)
    y = torch.from_numpy(grid[rows, cols])  # (n,) float64
    nu, nm = grid.shape
    steps = 0 if untrained else STEPS

    def trained(make) -> nn.Module:
        model = seeded(make, seed)
        _train(model, users, movies, y, steps)
        return model.eval()

    with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
        dot = trained(lambda: EmbeddingDot(nu, nm, n_factors))
        bias = trained(lambda: EmbeddingDotBias(nu, nm, n_factors, y_range=y_range))
        net = trained(lambda: EmbeddingNet(nu, nm, n_factors, nh=nh, y_range=y_range))

    with torch.no_grad():
        return LessonRecords(
            user_ids=table.index.to_numpy(), movie_ids=table.columns.to_numpy(),
            titles=tuple(ratings.title(m) for m in table.columns), ratings=grid,
            rows=rows, cols=cols, y_range=y_range, n_factors=n_factors, nh=nh,
            untrained=untrained, seed=seed, steps=steps, lr=LR,
            dot=_grid(dot, grid, None), bias=_grid(bias, grid, bias.y_range),
            long=_long(dot, users, movies, y, nu, nm), net=_net(net, users, movies, y),
            tensors=_tensors())


def lesson_slice(ratings: Ratings, n_users: int = 15, n_movies: int = 15):
    """The crosstab (DataFrame), its grid (n_users, n_movies; NaN blank) and the rated cells'
    positions `rows`, `cols` (n,), row-major: by user, then by movie."""
    table = crosstab(ratings, n_users, n_movies)
    grid = table.to_numpy(np.float64)
    rows, cols = np.nonzero(~np.isnan(grid))
    if not len(rows):
        raise ValueError("the slice holds no ratings: nothing to train on")
    return table, grid, rows, cols


def seeded(make, seed: int) -> nn.Module:
    """make() right after torch.manual_seed(seed), in float64: a model's start does not depend on
    which model was built before it."""
    torch.manual_seed(seed)
    return make().to(torch.float64)


def _train(model: nn.Module, users: torch.Tensor, movies: torch.Tensor, y: torch.Tensor,
           steps: int) -> None:
    """Full-batch Adam on the mean squared error; dropout (the net's) on, as in training.

    Not cfxl.engine.train.fit: fit builds its model with the range of the ratings it trains on, and the
    slice's models must use the full data's range, as the real ones do.
    """
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    for _ in range(steps):
        loss = F.mse_loss(model(users, movies), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _grid(model: nn.Module, grid: np.ndarray, y_range) -> GridRecords:
    """The model at every crosstab cell, the errors at the rated ones, and the RMSE over those."""
    nu, nm = grid.shape
    u, m = torch.meshgrid(torch.arange(nu), torch.arange(nm), indexing="ij")
    pred = model(u.reshape(-1), m.reshape(-1)).reshape(nu, nm)  # (n_users, n_movies)
    err = torch.tensor(grid) - pred  # NaN where not rated
    rated = ~torch.isnan(err)
    has_bias = hasattr(model, "u_bias")
    return GridRecords(
        u_weight=_np(model.u_weight.weight), i_weight=_np(model.i_weight.weight),
        u_bias=_np(model.u_bias.weight[:, 0]) if has_bias else None,
        i_bias=_np(model.i_bias.weight[:, 0]) if has_bias else None,
        y_range=y_range, pred=_np(pred), err=_np(err),
        loss=float(err[rated].square().mean().sqrt()))


def _long(model: EmbeddingDot, users, movies, y, nu: int, nm: int) -> LongRecords:
    user_onehot = F.one_hot(users, nu).to(torch.float64)  # (n, n_users)
    movie_onehot = F.one_hot(movies, nm).to(torch.float64)  # (n, n_movies)
    pred = model(users, movies)  # (n,)
    sq_err = (y - pred).square()
    return LongRecords(
        user_emb=_np(model.u_weight(users)), movie_emb=_np(model.i_weight(movies)),
        user_onehot=_np(user_onehot), movie_onehot=_np(movie_onehot),
        user_act=_np(user_onehot @ model.u_weight.weight),
        movie_act=_np(movie_onehot @ model.i_weight.weight),
        pred=_np(pred), sq_err=_np(sq_err), rmse=float(sq_err.mean().sqrt()))


def _net(model: EmbeddingNet, users, movies, y) -> NetRecords:
    x = torch.cat([model.u_weight(users), model.i_weight(movies)], dim=1)  # (n, 2 * n_factors)
    hidden = torch.relu(model.lin1(x))  # (n, nh)
    z = model.lin2(hidden).squeeze(1)  # (n,)
    pred = model(users, movies)  # (n,) eval mode: dropout off
    sq_err = (y - pred).square()
    return NetRecords(
        u_weight=_np(model.u_weight.weight), i_weight=_np(model.i_weight.weight),
        lin1_weight=_np(model.lin1.weight), lin1_bias=_np(model.lin1.bias),
        lin2_weight=_np(model.lin2.weight[0]), lin2_bias=float(model.lin2.bias[0]),
        y_range=model.y_range, x=_np(x), hidden=_np(hidden), z=_np(z), pred=_np(pred),
        sq_err=_np(sq_err), rmse=float(sq_err.mean().sqrt()))


def _tensors() -> TensorRecords:
    a = torch.tensor(TENSOR_A, dtype=torch.float64)
    b = torch.tensor(TENSOR_B, dtype=torch.float64)
    return TensorRecords(a=_np(a), b=_np(b), product=_np(a * b), dot=_np(DotProduct()(a, b)))
