"""The lesson's spreadsheet models, trained by torch in float64 on the Excel slice, as numpy records.

`lesson_records` takes the lesson's "subset for Excel" (the crosstab of the most active users by
the most rated movies), trains the three models on just those ratings and records their
parameters together with torch's own forward pass for every cell the live sheets compute: the
values the workbook's `_torch` sheet carries and LibreOffice must reproduce. Nothing here is
re-derived in numpy; the workbook layer (cfxl.sheets.lesson) sees only these plain records.
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
    """Train (or just initialise) the lesson's models on the crosstab slice and record them.

    Not cfxl.engine.train.fit: fit builds its model with the range of the ratings it trains on,
    and the slice's models must use the full data's range, as the real ones do.
    """
    if n_factors < 1:
        raise CfxlError(f"the slice's models need at least one factor, not {n_factors}")
    s = take_slice(ratings, n_users, n_movies)
    users, movies, y = slice_tensors(s)
    nu, nm = s.shape
    steps = 0 if untrained else presets.LESSON_STEPS

    def trained(make) -> nn.Module:
        model = seeded(make, seed)
        adam = torch.optim.Adam(model.parameters(), lr=presets.LESSON_LR)
        replay(model, adam, full_batch(users, movies, y, steps))
        return model.eval()

    with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
        dot = trained(lambda: EmbeddingDot(nu, nm, n_factors))
        bias = trained(lambda: EmbeddingDotBias(nu, nm, n_factors, y_range=s.y_range))
        net = trained(lambda: EmbeddingNet(nu, nm, n_factors, nh=nh, y_range=s.y_range))

    with torch.no_grad():
        return LessonRecords(
            slice=s, n_factors=n_factors, nh=nh, untrained=untrained, seed=seed, steps=steps,
            lr=presets.LESSON_LR, dot=_grid(dot, s, None), bias=_grid(bias, s, bias.y_range),
            long=_long(dot, users, movies, y, nu, nm), net=_net(net, users, movies, y),
            tensors=_tensors())


def _grid(model: nn.Module, s: Slice, y_range) -> GridRecords:
    """The model at every crosstab cell, the errors at the rated ones, and the RMSE over those."""
    nu, nm = s.shape
    u, m = torch.meshgrid(torch.arange(nu), torch.arange(nm), indexing="ij")
    pred = model(u.reshape(-1), m.reshape(-1)).reshape(nu, nm)  # (n_users, n_movies)
    err = torch.tensor(s.ratings) - pred  # NaN where not rated
    rated = ~torch.isnan(err)
    has_bias = hasattr(model, "u_bias")
    return GridRecords(
        u_weight=numpy(model.u_weight.weight), i_weight=numpy(model.i_weight.weight),
        u_bias=numpy(model.u_bias.weight[:, 0]) if has_bias else None,
        i_bias=numpy(model.i_bias.weight[:, 0]) if has_bias else None,
        y_range=y_range, pred=numpy(pred), err=numpy(err),
        loss=float(err[rated].square().mean().sqrt()))


def _long(model: EmbeddingDot, users, movies, y, nu: int, nm: int) -> LongRecords:
    user_onehot = F.one_hot(users, nu).to(torch.float64)  # (n, n_users)
    movie_onehot = F.one_hot(movies, nm).to(torch.float64)  # (n, n_movies)
    pred = model(users, movies)  # (n,)
    sq_err = (y - pred).square()
    return LongRecords(
        user_emb=numpy(model.u_weight(users)), movie_emb=numpy(model.i_weight(movies)),
        user_onehot=numpy(user_onehot), movie_onehot=numpy(movie_onehot),
        user_act=numpy(user_onehot @ model.u_weight.weight),
        movie_act=numpy(movie_onehot @ model.i_weight.weight),
        pred=numpy(pred), sq_err=numpy(sq_err), rmse=float(sq_err.mean().sqrt()))


def _net(model: EmbeddingNet, users, movies, y) -> NetRecords:
    x = torch.cat([model.u_weight(users), model.i_weight(movies)], dim=1)  # (n, 2 * n_factors)
    hidden = torch.relu(model.lin1(x))  # (n, nh)
    z = model.lin2(hidden).squeeze(1)  # (n,)
    pred = model(users, movies)  # (n,) eval mode: dropout off
    sq_err = (y - pred).square()
    return NetRecords(
        u_weight=numpy(model.u_weight.weight), i_weight=numpy(model.i_weight.weight),
        lin1_weight=numpy(model.lin1.weight), lin1_bias=numpy(model.lin1.bias),
        lin2_weight=numpy(model.lin2.weight[0]), lin2_bias=float(model.lin2.bias[0]),
        y_range=model.y_range, x=numpy(x), hidden=numpy(hidden), z=numpy(z), pred=numpy(pred),
        sq_err=numpy(sq_err), rmse=float(sq_err.mean().sqrt()))


def _tensors() -> TensorRecords:
    a = torch.tensor(TENSOR_A, dtype=torch.float64)
    b = torch.tensor(TENSOR_B, dtype=torch.float64)
    return TensorRecords(a=numpy(a), b=numpy(b), product=numpy(a * b), dot=numpy(DotProduct()(a, b)))
