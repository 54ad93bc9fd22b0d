"""The slice model's whole training run, every step's every number, for the live `train` sheet.

`unrolled_records` starts the `bias` sheet's EmbeddingDotBias (the lesson's crosstab slice, the
full data's rating range, float64) from torch's initial parameters and trains it full-batch with
torch.optim (SGD, SGD with momentum or Adam, single-tensor code: cfxl.records.cf_steps.make_optimizer) for
K steps, recording per step what the sheet computes as formulas: the parameters, the prediction
at every rated cell, the errors, the MSE, d loss/dx (x = user . movie + biases), the gradient the
optimizer uses, its state and the updated parameters. The forward pass is written out stage by
stage so x keeps its gradient, and checked to be the model's own output. Parameters and state
come from cfxl.engine.trace.Recorder. Records are plain numpy; nothing here knows about workbooks.
Called again with other `Hyper` settings, it is the fresh torch run an edited sheet must match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cfxl.records.cf_steps import LRS, OPTS, PARAMS, make_optimizer
from cfxl.data.ratings import Ratings
from cfxl.errors import CfxlError
from cfxl.records.lesson import lesson_slice, seeded
from cfxl.engine.models import EmbeddingDotBias, sigmoid_range
from cfxl.engine.trace import Recorder

STEPS = 50      # K: enough for every optimizer's loss curve to bend, small enough to recompute fast
N_FACTORS = 3   # F: each factor adds 6 (n_users + n_movies) formulas per step to the sheet
STATES = ("momentum_buffer", "exp_avg", "exp_avg_sq")  # torch's names, all shown on the sheet


@dataclass(frozen=True)
class Hyper:
    """The sheet's yellow settings, with torch.optim's names; lr None takes LRS[opt], an lr with
    which that optimizer lowers the slice's loss visibly within K steps."""

    opt: str = "adam"                # "sgd", "momentum" (SGD with momentum) or "adam"
    lr: float | None = None
    momentum: float = 0.9            # used by "momentum" only; plain "sgd" has none
    beta1: float = 0.9               # Adam's, torch's defaults
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0        # L2, added to the gradient as torch.optim does

    def __post_init__(self):
        if self.opt not in OPTS:
            raise CfxlError(f"unknown optimizer {self.opt!r}; choose from {', '.join(OPTS)}")
        if self.lr is None:
            object.__setattr__(self, "lr", LRS[self.opt])
        if not self.lr > 0:
            raise CfxlError(f"lr must be positive, not {self.lr}")


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

    user_ids: np.ndarray      # (n_users,) raw ids, the crosstab's rows
    movie_ids: np.ndarray     # (n_movies,)
    titles: tuple[str, ...]   # (n_movies,)
    ratings: np.ndarray       # (n_users, n_movies) NaN where not rated
    y_range: tuple[float, float]
    n_factors: int
    seed: int
    hyper: Hyper
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

    @property
    def n(self) -> int:
        """Ratings in the loss."""
        return int(np.count_nonzero(~np.isnan(self.ratings)))


def unrolled_records(ratings: Ratings, *, steps: int = STEPS, n_users: int = 15,
                     n_movies: int = 15, n_factors: int = N_FACTORS, hyper: Hyper = Hyper(),
                     seed: int = 42) -> UnrolledRecords:
    """Train the slice model with torch.optim for `steps` full-batch steps and record them."""
    if steps < 1 or n_factors < 1:
        raise CfxlError(f"need steps >= 1 and n_factors >= 1, not {steps} and {n_factors}")
    table, grid, rows, cols = lesson_slice(ratings, n_users, n_movies)
    y_range = ratings.rating_range
    users, movies = torch.from_numpy(rows), torch.from_numpy(cols)
    y = torch.from_numpy(grid[rows, cols])  # (n,) float64
    h = hyper

    with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
        model = seeded(lambda: EmbeddingDotBias(*grid.shape, n_factors, y_range=y_range), seed)
    optimizer = make_optimizer(h.opt, model.parameters(), h.lr, h.weight_decay,
                               momentum=h.momentum, betas=(h.beta1, h.beta2), eps=h.eps)
    recorder = Recorder()
    pred, dloss_dx = [], []
    model.train()
    for _ in range(steps):
        x, out = _forward(model, users, movies)  # (n,) each
        loss = F.mse_loss(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        recorder.before_step(model, optimizer, loss)
        optimizer.step()
        recorder.after_step(model, optimizer)
        pred.append(_np(out))
        dloss_dx.append(_np(x.grad))
    trace = recorder.result()

    def stacked(get) -> Params:
        """get(ParamTrace) -> (steps, rows, width) for each parameter; biases lose the width."""
        return Params(**{n: get(trace.params[n])[..., 0] if n.endswith("bias")
                         else get(trace.params[n]) for n in PARAMS})

    before, after = stacked(lambda t: t.value), stacked(lambda t: t.value_after)
    value = Params(**{n: np.concatenate([before[n], after[n][-1:]]) for n in PARAMS})
    state = {name: stacked(lambda t, name=name: t.state[name]) for name in STATES
             if name in trace.params["u_weight"].state}
    k = np.arange(1, steps + 1, dtype=np.float64)
    grids = {}
    for name, flat, blank in (("pred", pred, np.nan), ("dloss_dx", dloss_dx, 0.0)):
        out = np.full((steps, *grid.shape), blank)
        out[:, rows, cols] = np.stack(flat)
        grids[name] = out
    return UnrolledRecords(
        user_ids=table.index.to_numpy(), movie_ids=table.columns.to_numpy(),
        titles=tuple(ratings.title(m) for m in table.columns), ratings=grid, y_range=y_range,
        n_factors=n_factors, seed=seed, hyper=h, value=value, grad=stacked(lambda t: t.grad),
        grad_used=stacked(lambda t: t.grad_used), state=state, step=k,
        # torch's Python-float expressions (Adam's step is a float there)
        bias_correction1=np.array([1 - h.beta1 ** t for t in k]),
        bias_correction2=np.array([1 - h.beta2 ** t for t in k]),
        loss=trace.loss, pred=grids["pred"], err=grid - grids["pred"],
        dloss_dx=grids["dloss_dx"])


def _forward(model: EmbeddingDotBias, users: torch.Tensor, movies: torch.Tensor):
    """(x, prediction): the model's forward pass in stages, x keeping its gradient."""
    dot = (model.u_weight(users) * model.i_weight(movies)).sum(1)  # (n,)
    x = dot + model.u_bias(users).squeeze(1) + model.i_bias(movies).squeeze(1)  # (n,)
    x.retain_grad()
    out = sigmoid_range(x, *model.y_range)  # (n,)
    with torch.no_grad():
        if not torch.equal(out, model(users, movies)):
            raise AssertionError("the written-out forward pass is not EmbeddingDotBias's")
    return x, out


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().copy()
