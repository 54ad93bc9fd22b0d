"""The CF model's optimizer steps, recorded element by element, and one step's gradients.

`cf_step_records` starts the `bias` sheet's slice model (EmbeddingDotBias over the lesson's
crosstab, the full data's rating range, float64) from its initial parameters and trains it with
torch.optim (SGD, SGD with momentum, Adam) for a few steps, recording with cfxl.engine.trace.Recorder
every element of `u_weight`, `i_weight`, `u_bias` and `i_bias`: value, autograd's gradient,
torch's state, lr and the value after the step. With `trace_users` / `trace_movies` the model is
the whole data's instead and only those users' and movies' rows are recorded, so a trace stays
small whatever the data size. `gradients` is autograd's side of the `gradients` sheet: the chain
rule's every stage at the slice model's first step. Records are plain numpy (cfxl.sheets.cf_steps
writes them); nothing here knows about workbooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cfxl.data.ratings import Ratings
from cfxl.records.lesson import lesson_slice, seeded
from cfxl.engine.models import EmbeddingDotBias, sigmoid_range
from cfxl.engine.optim import torch_optimizer
from cfxl.engine.trace import Recorder

OPTS = ("sgd", "momentum", "adam")  # cfxl.engine.train's names for these torch.optim settings
# Full-batch lrs that lower the slice's MSE clearly in 30 steps (2.46 to about 0.23, 0.66 and
# 0.20). The mean over the ratings makes each gradient small, so SGD takes a large lr; momentum
# 0.9 multiplies the step by up to 10, and at 0.5 its overshoot and recovery show in the loss.
LRS = {"sgd": 5.0, "momentum": 0.5, "adam": 0.05}
MOMENTUM = 0.9
PARAMS = ("u_weight", "i_weight", "u_bias", "i_bias")  # the order of elements within a step


@dataclass(frozen=True, eq=False)
class OptSteps:
    """One optimizer's run, each parameter element a column, in CFStepRecords.names' order."""

    opt: str                  # one of OPTS
    optimizer: str            # torch's class: "SGD" or "Adam"
    hyper: dict               # torch's param-group settings: lr, momentum, betas, eps, weight_decay
    lr: np.ndarray            # (steps,) the lr used at each step
    loss: np.ndarray          # (steps,) the batch's MSE before the step
    value: np.ndarray         # (steps, n_elements) before the step
    grad: np.ndarray          # (steps, n_elements) autograd's gradient of the batch MSE
    grad_used: np.ndarray     # (steps, n_elements) grad + weight_decay * value
    value_after: np.ndarray   # (steps, n_elements)
    state: dict[str, np.ndarray]  # torch's names, after the step: (steps, n_elements);
                                  # "step" is (steps,)


@dataclass(frozen=True, eq=False)
class Gradients:
    """The slice model at its initial parameters, and autograd's gradient of its full-batch MSE
    through every stage: d loss/d prediction, d prediction/dx (x = dot + biases), d loss/dx, and
    the parameters' gradients. Grids are (n_users, n_movies); unrated cells hold NaN in `pred`
    and `dpred_dx`, 0 in `dloss_dpred` and `dloss_dx` (they are not in the loss)."""

    user_ids: np.ndarray      # (n_users,) raw ids, the crosstab's rows
    movie_ids: np.ndarray     # (n_movies,)
    titles: tuple[str, ...]   # (n_movies,)
    ratings: np.ndarray       # (n_users, n_movies) NaN where not rated
    y_range: tuple[float, float]
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

    @property
    def n(self) -> int:
        """Ratings in the loss."""
        return int(np.count_nonzero(~np.isnan(self.ratings)))


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


def cf_step_records(ratings: Ratings, *, steps: int = 30, n_users: int = 15, n_movies: int = 15,
                    n_factors: int = 5, opts=OPTS, lr: float | Mapping[str, float] | None = None,
                    wd: float = 0.0, bs: int | None = None, trace_users=None, trace_movies=None,
                    seed: int = 42) -> CFStepRecords:
    """Train and record the CF model with each of `opts`, every run from the same start.

    lr: one for all, a mapping by opt, or None for LRS. Without trace_users / trace_movies (raw
    ids) the model is the `bias` sheet's slice model; with them, EmbeddingDotBias over all of
    `ratings` with only those rows recorded. bs None trains full-batch; otherwise each epoch
    draws a seeded permutation and takes batches of bs.
    """
    unknown = [o for o in opts if o not in OPTS]
    if unknown or not opts:
        what = f"unknown optimizer {unknown[0]!r}" if unknown else "no optimizer asked for"
        raise ValueError(f"{what}; choose from {', '.join(OPTS)}")
    if steps < 1 or (bs is not None and bs < 1):
        raise ValueError(f"need steps >= 1 and bs >= 1 (or None), not {steps} and {bs}")
    lrs = {o: LRS[o] if lr is None else lr[o] if isinstance(lr, Mapping) else float(lr)
           for o in opts}
    y_range = ratings.rating_range
    table, grid, rows, cols = lesson_slice(ratings, n_users, n_movies)
    traced = trace_users is not None or trace_movies is not None

    if traced:
        users = torch.from_numpy(ratings.user_idx.astype(np.int64))
        movies = torch.from_numpy(ratings.movie_idx.astype(np.int64))
        y = torch.from_numpy(ratings.rating.astype(np.float64))
        shape = (ratings.n_users, ratings.n_movies)
        follow_users = _rows(ratings.users, trace_users)
        follow_movies = _rows(ratings.movies, trace_movies)
        user_ids, movie_ids = ratings.users.ids, ratings.movies.ids
    else:
        users, movies = torch.from_numpy(rows), torch.from_numpy(cols)
        y = torch.from_numpy(grid[rows, cols])
        shape = grid.shape
        follow_users, follow_movies = np.arange(shape[0]), np.arange(shape[1])
        user_ids, movie_ids = table.index.to_numpy(), table.columns.to_numpy()
    follow = {}
    for name in PARAMS:
        chosen = follow_users if name.startswith("u_") else follow_movies
        if len(chosen):
            follow[name] = chosen
    if not follow:
        raise ValueError("nothing to record: trace at least one user or movie")

    def model():
        return seeded(lambda: EmbeddingDotBias(*shape, n_factors, y_range=y_range), seed)

    runs = {}
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
        for opt in opts:
            recorder = Recorder(follow)
            _train(model(), opt, lrs[opt], wd, users, movies, y, steps, bs, seed, recorder)
            runs[opt] = _flatten(opt, recorder.result(), follow)
        start = seeded(lambda: EmbeddingDotBias(*grid.shape, n_factors, y_range=y_range), seed)
    names, ids = _elements(follow, n_factors, user_ids, movie_ids)
    titles = tuple(ratings.title(m) for m in table.columns)
    return CFStepRecords(
        names=names, ids=ids, runs=runs,
        gradients=_gradients(start, grid, rows, cols, table, titles),
        traced=traced, n_ratings=len(y), n_factors=n_factors, steps=steps, bs=bs, seed=seed,
        y_range=y_range)


def _rows(idmap, raw_ids) -> np.ndarray:
    """Embedding rows of the raw ids asked for, in the order asked, each once."""
    if raw_ids is None:
        return np.zeros(0, dtype=np.int64)
    rows = idmap.index(np.atleast_1d(np.asarray(raw_ids)))
    return np.array(list(dict.fromkeys(rows.tolist())), dtype=np.int64)


def make_optimizer(opt: str, params, lr: float, wd: float, *, momentum: float = MOMENTUM,
                   betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-8) -> torch.optim.Optimizer:
    """torch.optim's single-tensor implementation, whose order of operations the sheets follow.
    momentum is used by "momentum" only (plain "sgd" has none); betas and eps by "adam"."""
    return torch_optimizer(opt, params, lr=lr, momentum=momentum, betas=betas, eps=eps,
                           weight_decay=wd, single_tensor=True)


def _train(model, opt: str, lr: float, wd: float, users, movies, y, steps: int, bs: int | None,
           seed: int, recorder: Recorder) -> None:
    optimizer = make_optimizer(opt, model.parameters(), lr, wd)
    gen = torch.Generator().manual_seed(seed)  # batch order, the same for every optimizer
    n = len(y)
    batch, perm, pos = bs or n, None, n
    model.train()
    for _ in range(steps):
        if bs is None:
            u, m, target = users, movies, y
        else:
            if pos >= n:  # a new epoch
                perm, pos = torch.randperm(n, generator=gen), 0
            idx = perm[pos:pos + batch]  # (batch,)
            pos += batch
            u, m, target = users[idx], movies[idx], y[idx]
        loss = F.mse_loss(model(u, m), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        recorder.before_step(model, optimizer, loss)
        optimizer.step()
        recorder.after_step(model, optimizer)


def _flatten(opt: str, trace, follow: dict) -> OptSteps:
    """A Trace's parameters as (steps, n_elements) columns, in PARAMS then row-major order."""
    parts = [trace.params[name] for name in follow]
    steps = trace.n_steps

    def cat(arrays) -> np.ndarray:
        return np.concatenate([a.reshape(steps, -1) for a in arrays], axis=1)

    state = {k: cat(p.state[k] for p in parts) for k in parts[0].state if k != "step"}
    if "step" in parts[0].state:
        state["step"] = parts[0].state["step"].astype(np.float64)
    return OptSteps(opt=opt, optimizer=trace.optimizer, hyper=dict(trace.hyper), lr=trace.lr,
                    loss=trace.loss, value=cat(p.value for p in parts),
                    grad=cat(p.grad for p in parts), grad_used=cat(p.grad_used for p in parts),
                    value_after=cat(p.value_after for p in parts), state=state)


def _elements(follow: dict, n_factors: int, user_ids, movie_ids):
    """Each recorded element's name (torch's indices) and the raw id of its user or movie."""
    names, ids = [], []
    for name, rows in follow.items():
        width = n_factors if name.endswith("weight") else 1
        raw = user_ids if name.startswith("u_") else movie_ids
        for r in rows:
            names += [f"{name}[{r},{c}]" for c in range(width)]
            ids += [raw[r]] * width
    mixed = any(isinstance(i, str) for i in ids)
    return tuple(names), np.array(ids, dtype=object if mixed else None)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().copy()


def _gradients(model: EmbeddingDotBias, grid: np.ndarray, rows, cols, table, titles) -> Gradients:
    """Autograd through each stage of the model's forward pass, written out so that x and the
    prediction can keep their gradients (checked to be the model's own output, bit for bit)."""
    users, movies = torch.from_numpy(rows), torch.from_numpy(cols)
    y = torch.from_numpy(grid[rows, cols])  # (n,)
    lo, hi = model.y_range
    dot = (model.u_weight(users) * model.i_weight(movies)).sum(1)  # (n,)
    x = dot + model.u_bias(users).squeeze(1) + model.i_bias(movies).squeeze(1)  # (n,)
    x.retain_grad()
    pred = sigmoid_range(x, lo, hi)  # (n,)
    pred.retain_grad()
    if not torch.equal(pred, model(users, movies)):
        raise AssertionError("the written-out forward pass is not EmbeddingDotBias's")
    loss = F.mse_loss(pred, y)
    loss.backward()
    x_alone = x.detach().requires_grad_()
    (dpred_dx,) = torch.autograd.grad(sigmoid_range(x_alone, lo, hi).sum(), x_alone)  # (n,)

    def on_grid(values: torch.Tensor, blank: float) -> np.ndarray:
        out = np.full(grid.shape, blank)
        out[rows, cols] = _np(values)
        return out

    return Gradients(
        user_ids=table.index.to_numpy(), movie_ids=table.columns.to_numpy(), titles=titles,
        ratings=grid, y_range=(lo, hi),
        u_weight=_np(model.u_weight.weight), i_weight=_np(model.i_weight.weight),
        u_bias=_np(model.u_bias.weight[:, 0]), i_bias=_np(model.i_bias.weight[:, 0]),
        pred=on_grid(pred, np.nan), dloss_dpred=on_grid(pred.grad, 0.0),
        dpred_dx=on_grid(dpred_dx, np.nan), dloss_dx=on_grid(x.grad, 0.0),
        d_u_weight=_np(model.u_weight.weight.grad), d_i_weight=_np(model.i_weight.weight.grad),
        d_u_bias=_np(model.u_bias.weight.grad[:, 0]), d_i_bias=_np(model.i_bias.weight.grad[:, 0]),
        loss=float(loss.detach()))
