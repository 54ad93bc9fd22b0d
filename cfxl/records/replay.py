"""The one float64 replay behind every sheet: the slice, a seeded model, torch.optim steps.

Every small model cfxl writes into a workbook is made here the same way: `take_slice` picks the
lesson's crosstab, `seeded` builds the model in float64 right after seeding torch (so a model's
start does not depend on which was built before it), and `replay` takes one torch.optim step
per batch on the mean squared error, handing each step to a `Recorder` and keeping what the
forward pass exposes (a prediction, an intermediate whose gradient the sheet shows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cfxl import presets
from cfxl.data.ratings import Ratings, crosstab
from cfxl.engine.models import EmbeddingDotBias, sigmoid_range
from cfxl.engine.optim import torch_optimizer
from cfxl.engine.trace import Recorder
from cfxl.errors import CfxlError
from cfxl.records.types.slice import Slice


def take_slice(ratings: Ratings, n_users: int, n_movies: int, *,
               valid_pct: float = presets.SLICE_VALID_PCT, seed: int = presets.SEED) -> Slice:
    """The crosstab of the n_users most active users by the n_movies most rated movies, with
    round(valid_pct * n) of its rated cells, drawn with `seed`, held out for validation (never
    all of a user's or a movie's: a model cannot learn a row it never sees)."""
    if n_users < 1 or n_movies < 1:
        raise CfxlError(f"a slice needs at least one user and one movie, not {n_users} x {n_movies}")
    table = crosstab(ratings, n_users, n_movies)
    grid = table.to_numpy(np.float64)  # (n_users, n_movies)
    if np.isnan(grid).all():
        raise CfxlError("the slice holds no ratings: nothing to train on")
    return Slice(user_ids=table.index.to_numpy(), movie_ids=table.columns.to_numpy(),
                 titles=tuple(ratings.title(m) for m in table.columns), ratings=grid,
                 y_range=ratings.rating_range, valid=_held_out(grid, valid_pct, seed))


def _held_out(grid: np.ndarray, valid_pct: float, seed: int) -> np.ndarray:
    """(n_users, n_movies) bool: rated cells in a seeded order, each taken unless it would leave
    its user or its movie with fewer than two training ratings, until the share is reached."""
    if not 0 <= valid_pct < 1:
        raise CfxlError(f"the slice's validation share must be in [0, 1), not {valid_pct}")
    rated = ~np.isnan(grid)
    rows, cols = np.nonzero(rated)
    want = round(valid_pct * len(rows))
    left_u, left_m = rated.sum(1), rated.sum(0)  # (n_users,), (n_movies,) training ratings left
    valid = np.zeros_like(rated)
    for k in np.random.default_rng(seed).permutation(len(rows)):
        if valid.sum() == want:
            break
        u, m = rows[k], cols[k]
        if left_u[u] > 2 and left_m[m] > 2:
            valid[u, m] = True
            left_u[u] -= 1
            left_m[m] -= 1
    return valid


def slice_tensors(s: Slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(users, movies, ratings) of the slice's rated cells, (n,) each, ratings in float64."""
    return (torch.from_numpy(s.rows), torch.from_numpy(s.cols),
            torch.from_numpy(s.long_ratings))


def seeded(make: Callable[[], nn.Module], seed: int) -> nn.Module:
    """make() right after torch.manual_seed(seed), in float64."""
    torch.manual_seed(seed)
    return make().to(torch.float64)


def single_tensor(opt: str, model: nn.Module, **settings) -> torch.optim.Optimizer:
    """torch.optim's single-tensor implementation: the order of operations the formulas copy."""
    return torch_optimizer(opt, model.parameters(), single_tensor=True, **settings)


def full_batch(users, movies, y, steps: int):
    """The same batch, every rating, `steps` times."""
    return (((users, movies), y) for _ in range(steps))


def replay(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable, *,
           forward: Callable | None = None, recorder: Recorder | None = None) -> list:
    """One step per (inputs, target) batch on the MSE, in training mode (the net's dropout on).

    forward(model, *inputs) -> (prediction, extra) replaces model(*inputs) where a sheet needs
    more of the forward pass. Returns each step's (prediction, extra), to be read after the
    steps: an intermediate keeps the gradient backward gave it.
    """
    model.train()
    kept = []
    for inputs, y in batches:
        pred, extra = (model(*inputs), None) if forward is None else forward(model, *inputs)
        loss = F.mse_loss(pred, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recorder is not None:
            recorder.before_step(model, optimizer, loss)
        optimizer.step()
        if recorder is not None:
            recorder.after_step(model, optimizer)
        kept.append((pred, extra))
    return kept


def bias_forward(model: EmbeddingDotBias, users: torch.Tensor, movies: torch.Tensor):
    """(prediction, x): EmbeddingDotBias's forward pass written out in stages, so that x = user .
    movie + user bias + movie bias and the prediction keep their gradients for the sheets that
    show them; checked to be the model's own output, bit for bit."""
    dot = (model.u_weight(users) * model.i_weight(movies)).sum(1)  # (n,)
    x = dot + model.u_bias(users).squeeze(1) + model.i_bias(movies).squeeze(1)  # (n,)
    x.retain_grad()
    pred = sigmoid_range(x, *model.y_range)  # (n,)
    pred.retain_grad()
    with torch.no_grad():
        if not torch.equal(pred, model(users, movies)):
            raise AssertionError("the written-out forward pass is not EmbeddingDotBias's")
    return pred, x


def numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as a numpy array of its own (no link back to torch)."""
    return t.detach().cpu().numpy().copy()
