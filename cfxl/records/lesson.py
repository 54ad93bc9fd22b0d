"""The lesson's spreadsheet models, from torch's seeded start and trained by torch in float64 on
the Excel slice, as numpy records.

`lesson_records` takes the lesson's "subset for Excel" (the crosstab of the most active users by
the most rated movies, a fifth of its ratings held out for validation) and records each model
with torch's own forward pass for every cell the live sheets compute: the values the workbook's
`_torch` sheet carries and LibreOffice must reproduce. The crosstab sheets get the start (the
reader trains them with Solver), torch's training on the other ratings sits beside them.
Nothing here is re-derived in numpy; the workbook layer (cfxl.sheets.lesson) sees only these
plain records.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cfxl import presets
from cfxl.data.ratings import Ratings
from cfxl.engine.models import DotProduct, EmbeddingDot, EmbeddingDotBias, EmbeddingNet
from cfxl.errors import CfxlError
from cfxl.records.replay import full_batch, numpy, replay, seeded, slice_tensors, take_slice
from cfxl.records.types.lesson import (
    Fit,
    GridRecords,
    LessonRecords,
    LongRecords,
    NetRecords,
    TensorRecords,
)
from cfxl.records.types.slice import Slice

TENSOR_A = ((1.0, 2.0), (3.0, 4.0))     # the notebook's "Collab filtering from scratch" example
TENSOR_B = ((2.0, 2.0), (10.0, 10.0))


def lesson_records(ratings: Ratings, *, n_users: int = presets.SLICE_USERS,
                   n_movies: int = presets.SLICE_MOVIES, n_factors: int = presets.LESSON_FACTORS,
                   nh: int = 10, untrained: bool = False, seed: int = presets.SEED) -> LessonRecords:
    """Record the lesson's models on the crosstab slice at torch's seeded start and (unless
    untrained) trained on its training ratings (presets.LESSON_FITS).

    Not cfxl.engine.train.fit: fit builds its model with the range of the ratings it trains on,
    and the slice's models must use the full data's range, as the real ones do.
    """
    if n_factors < 1:
        raise CfxlError(f"the slice's models need at least one factor, not {n_factors}")
    s = take_slice(ratings, n_users, n_movies)
    data = slice_tensors(s)
    train = torch.from_numpy(s.long_valid).logical_not()  # (n,) the ratings Adam sees
    nu, nm = s.shape
    fits = {name: Fit(**settings) for name, settings in presets.LESSON_FITS.items()}
    p1, p2 = presets.LESSON_NET_DROPOUT
    makers = {"dot": lambda: EmbeddingDot(nu, nm, n_factors),
              "bias": lambda: EmbeddingDotBias(nu, nm, n_factors, y_range=s.y_range),
              "net": lambda: EmbeddingNet(nu, nm, n_factors, nh=nh, p1=p1, p2=p2,
                                          y_range=s.y_range)}

    with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
        start = {name: seeded(make, seed) for name, make in makers.items()}
        records = {name: _record(name, model.eval(), s, data, fits[name])
                   for name, model in start.items()}
        if not untrained:
            for name, model in start.items():
                _train(model, data, train, fits[name])
            trained = {name: _record(name, model.eval(), s, data, fits[name])
                       for name, model in start.items()}

    return LessonRecords(
        slice=s, n_factors=n_factors, nh=nh, untrained=untrained, seed=seed,
        dot=records["dot"][0], bias=records["bias"][0],
        dot_trained=None if untrained else trained["dot"][0],
        bias_trained=None if untrained else trained["bias"][0],
        long=records["dot"][1], net=(records if untrained else trained)["net"][1],
        tensors=_tensors())


def _train(model: nn.Module, data, train: torch.Tensor, fit: Fit) -> None:
    """fit.steps full-batch Adam steps on the training ratings. torch's weight_decay adds
    weight_decay * p to each gradient, the gradient of weight_decay / 2 * sum(p^2): twice the
    sheet's wd minimises MSE + wd * sum(p^2), the objective the sheets write."""
    users, movies, y = (t[train] for t in data)
    adam = torch.optim.Adam(model.parameters(), lr=fit.lr, weight_decay=2 * fit.weight_decay)
    replay(model, adam, full_batch(users, movies, y, fit.steps))


def _record(name: str, model: nn.Module, s: Slice, data, fit: Fit):
    """(grid records or None, long records or None) of one model as it is now."""
    with torch.no_grad():
        if name == "net":
            return None, _net(model, s, data, fit)
        grid = _grid(model, s, fit)
        return grid, _long(model, s, data) if name == "dot" else None


def _rmse(err: torch.Tensor, keep) -> float:
    """RMSE of the errors where keep; NaN where nothing is kept (no rating held out)."""
    kept = err[torch.as_tensor(keep)]
    return float(kept.square().mean().sqrt()) if kept.numel() else float("nan")


def _penalty(model: nn.Module, err: torch.Tensor, train, fit: Fit) -> tuple[float, float]:
    """(sum of squared parameters, train MSE + weight_decay * that sum)."""
    sumsq = sum(p.square().sum() for p in model.parameters())
    mse = err[torch.as_tensor(train)].square().mean()
    return float(sumsq), float(mse + fit.weight_decay * sumsq)


def _grid(model: nn.Module, s: Slice, fit: Fit) -> GridRecords:
    """The model at every crosstab cell, the errors at the rated ones, the RMSEs and objective."""
    nu, nm = s.shape
    u, m = torch.meshgrid(torch.arange(nu), torch.arange(nm), indexing="ij")
    pred = model(u.reshape(-1), m.reshape(-1)).reshape(nu, nm)  # (n_users, n_movies)
    err = pred - torch.tensor(s.ratings)  # NaN where not rated
    has_bias = hasattr(model, "u_bias")
    sumsq, objective = _penalty(model, err, s.train, fit)
    return GridRecords(
        u_weight=numpy(model.u_weight.weight), i_weight=numpy(model.i_weight.weight),
        u_bias=numpy(model.u_bias.weight[:, 0]) if has_bias else None,
        i_bias=numpy(model.i_bias.weight[:, 0]) if has_bias else None,
        y_range=model.y_range if has_bias else None, fit=fit, pred=numpy(pred), err=numpy(err),
        train_rmse=_rmse(err, s.train), valid_rmse=_rmse(err, s.valid), sumsq=sumsq,
        objective=objective)


def _long(model: EmbeddingDot, s: Slice, data) -> LongRecords:
    users, movies, y = data
    nu, nm = s.shape
    user_onehot = F.one_hot(users, nu).to(torch.float64)  # (n, n_users)
    movie_onehot = F.one_hot(movies, nm).to(torch.float64)  # (n, n_movies)
    pred = model(users, movies)  # (n,)
    err = pred - y
    return LongRecords(
        user_emb=numpy(model.u_weight(users)), movie_emb=numpy(model.i_weight(movies)),
        user_onehot=numpy(user_onehot), movie_onehot=numpy(movie_onehot),
        user_act=numpy(user_onehot @ model.u_weight.weight),
        movie_act=numpy(movie_onehot @ model.i_weight.weight),
        pred=numpy(pred), err=numpy(err), sq_err=numpy(err.square()),
        train_rmse=_rmse(err, ~s.long_valid), valid_rmse=_rmse(err, s.long_valid))


def _net(model: EmbeddingNet, s: Slice, data, fit: Fit) -> NetRecords:
    users, movies, y = data
    x = torch.cat([model.u_weight(users), model.i_weight(movies)], dim=1)  # (n, 2 * n_factors)
    hidden = torch.relu(model.lin1(x))  # (n, nh)
    z = model.lin2(hidden).squeeze(1)  # (n,)
    pred = model(users, movies)  # (n,) eval mode: dropout off
    err = pred - y
    sumsq, objective = _penalty(model, err, ~s.long_valid, fit)
    return NetRecords(
        u_weight=numpy(model.u_weight.weight), i_weight=numpy(model.i_weight.weight),
        lin1_weight=numpy(model.lin1.weight), lin1_bias=numpy(model.lin1.bias),
        lin2_weight=numpy(model.lin2.weight[0]), lin2_bias=float(model.lin2.bias[0]),
        y_range=model.y_range, fit=fit, x=numpy(x), hidden=numpy(hidden), z=numpy(z),
        pred=numpy(pred), err=numpy(err), sq_err=numpy(err.square()),
        train_rmse=_rmse(err, ~s.long_valid), valid_rmse=_rmse(err, s.long_valid),
        sumsq=sumsq, objective=objective)


def _tensors() -> TensorRecords:
    a = torch.tensor(TENSOR_A, dtype=torch.float64)
    b = torch.tensor(TENSOR_B, dtype=torch.float64)
    return TensorRecords(a=numpy(a), b=numpy(b), product=numpy(a * b), dot=numpy(DotProduct()(a, b)))
