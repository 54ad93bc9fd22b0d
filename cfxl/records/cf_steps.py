"""The CF model's optimizer steps, recorded element by element, and one step's gradients.

`cf_step_records` starts the `bias` sheet's slice model (EmbeddingDotBias over the lesson's
crosstab, the full data's rating range, float64) from its initial parameters and trains it on
the slice's training ratings (Slice.train, as the bias and train sheets: the held-out fifth is
never trained on) with torch.optim (SGD, SGD with momentum, Adam, AdamW) for a few steps, recording
with cfxl.engine.trace.Recorder every element of `u_weight`, `i_weight`, `u_bias` and `i_bias`:
value, autograd's gradient, torch's state, lr and the value after the step. A full-batch slice
run also records the forward pass at every training rating of every step (x, the prediction,
d loss/dx): the live cf_* sheets compute the gradient from them, so the run is `live`. With
`trace_users` / `trace_movies` the model is the whole data's instead and only those users' and
movies' rows are recorded, so a trace stays small whatever the data size; such a run (or a
mini-batch one) keeps autograd's gradient as recorded. `gradients` is autograd's side of the
`gradients` sheet: the chain rule's every stage at the slice model's first step. Records are
plain numpy (cfxl.sheets.cf_steps writes them); nothing here knows about workbooks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from cfxl import presets
from cfxl.data.ratings import Ratings
from cfxl.engine.models import EmbeddingDotBias, sigmoid_range
from cfxl.engine.trace import Recorder
from cfxl.errors import CfxlError
from cfxl.records.replay import (
    bias_forward,
    full_batch,
    numpy,
    replay,
    seeded,
    single_tensor,
    slice_tensors,
    take_slice,
)
from cfxl.records.types.cf import CF_OPTIMIZERS, SLICE_PARAMS, CFStepRecords, Gradients, OptSteps
from cfxl.records.types.slice import Slice


def cf_step_records(ratings: Ratings, *, steps: int = presets.CF_STEPS,
                    n_users: int = presets.SLICE_USERS, n_movies: int = presets.SLICE_MOVIES,
                    n_factors: int = presets.LESSON_FACTORS, opts=CF_OPTIMIZERS,
                    lr: float | Mapping[str, float] | None = None,
                    weight_decay: float | Mapping[str, float] | None = None,
                    momentum: float = presets.CF_MOMENTUM, betas=presets.CF_BETAS,
                    bs: int | None = None, trace_users=None, trace_movies=None,
                    seed: int = presets.SEED) -> CFStepRecords:
    """Train and record the CF model with each of `opts`, every run from the same start.

    lr: one for all, a mapping by opt, or None for presets.CF_LRS (and CF_ADAMW); weight_decay
    the same way, None for none but AdamW's presets.CF_ADAMW weight decay. Without trace_users /
    trace_movies (raw ids) the model is the `bias` sheet's slice model; with them,
    EmbeddingDotBias over all of `ratings` with only those rows recorded. bs None trains
    full-batch; otherwise each epoch draws a seeded permutation and takes batches of bs.
    momentum and betas are SGD with momentum's and Adam's (each ignored by the others).
    """
    unknown = [o for o in opts if o not in CF_OPTIMIZERS]
    if unknown or not opts:
        what = f"unknown optimizer {unknown[0]!r}" if unknown else "no optimizer asked for"
        raise CfxlError(f"{what}; choose from {', '.join(CF_OPTIMIZERS)}")
    if steps < 1 or (bs is not None and bs < 1):
        raise CfxlError(f"need steps >= 1 and a batch size >= 1, not {steps} and {bs}")
    lrs = _per_opt(lr, opts, presets.CF_LRS | {"adamw": presets.CF_ADAMW["lr"]})
    wds = _per_opt(weight_decay, opts, {"adamw": presets.CF_ADAMW["weight_decay"]})
    s = take_slice(ratings, n_users, n_movies)
    traced = trace_users is not None or trace_movies is not None
    live = not traced and bs is None

    if traced:
        users = torch.from_numpy(ratings.user_idx.astype(np.int64))
        movies = torch.from_numpy(ratings.movie_idx.astype(np.int64))
        y = torch.from_numpy(ratings.rating.astype(np.float64))
        shape = (ratings.n_users, ratings.n_movies)
        follow_users = _rows(ratings.users, trace_users)
        follow_movies = _rows(ratings.movies, trace_movies)
        user_ids, movie_ids = ratings.users.ids, ratings.movies.ids
    else:
        train = torch.from_numpy(~s.long_valid)  # (n,) the held-out ratings stay out
        users, movies, y = (t[train] for t in slice_tensors(s))
        shape = s.shape
        follow_users, follow_movies = np.arange(shape[0]), np.arange(shape[1])
        user_ids, movie_ids = s.user_ids, s.movie_ids
    follow = {}
    for name in SLICE_PARAMS:
        chosen = follow_users if name.startswith("u_") else follow_movies
        if len(chosen):
            follow[name] = chosen
    if not follow:
        raise CfxlError("nothing to record: trace at least one user or movie")

    def model(shape):
        return seeded(lambda: EmbeddingDotBias(*shape, n_factors, y_range=s.y_range), seed)

    runs = {}
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
        for opt in opts:
            recorder = Recorder(follow)
            m = model(shape)
            optimizer = single_tensor(opt, m, lr=lrs[opt], momentum=momentum, betas=betas,
                                      weight_decay=wds[opt], eps=1e-8)
            batches = (full_batch(users, movies, y, steps) if bs is None
                       else _shuffled(users, movies, y, steps, bs, seed))
            kept = replay(m, optimizer, batches, recorder=recorder,
                          forward=bias_forward if live else None)
            runs[opt] = _flatten(opt, recorder.result(), follow, kept if live else None)
        start = model(s.shape)
    names, ids = _elements(follow, n_factors, user_ids, movie_ids)
    return CFStepRecords(
        names=names, ids=ids, runs=runs, gradients=_gradients(start, s), traced=traced,
        live=live, n_ratings=len(y), n_factors=n_factors, steps=steps, bs=bs, seed=seed,
        y_range=s.y_range)


def _per_opt(given: float | Mapping[str, float] | None, opts, presets_: Mapping[str, float]):
    """A setting per optimizer: one for all, a mapping by opt, or None for the presets (0 where
    they have none)."""
    return {o: presets_.get(o, 0.0) if given is None else given[o]
            if isinstance(given, Mapping) else float(given) for o in opts}


def _rows(idmap, raw_ids) -> np.ndarray:
    """Embedding rows of the raw ids asked for, in the order asked, each once."""
    if raw_ids is None:
        return np.zeros(0, dtype=np.int64)
    rows = idmap.index(np.atleast_1d(np.asarray(raw_ids)))
    return np.array(list(dict.fromkeys(rows.tolist())), dtype=np.int64)


def _shuffled(users, movies, y, steps: int, bs: int, seed: int):
    """`steps` batches of bs ratings, each epoch a seeded permutation (the same for every
    optimizer): the batches fit() would draw, for a traced run."""
    gen = torch.Generator().manual_seed(seed)
    n, perm, pos = len(y), None, len(y)
    for _ in range(steps):
        if pos >= n:  # a new epoch
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + bs]  # (batch,)
        pos += bs
        yield (users[idx], movies[idx]), y[idx]


def _flatten(opt: str, trace, follow: dict, kept=None) -> OptSteps:
    """A Trace's parameters as (steps, n_elements) columns, in SLICE_PARAMS then row-major order;
    with kept (replay's (prediction, x) per step) the forward pass as (steps, n_ratings)."""
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
                    value_after=cat(p.value_after for p in parts), state=state,
                    x=None if kept is None else np.stack([numpy(x) for _, x in kept]),
                    pred=None if kept is None else np.stack([numpy(p) for p, _ in kept]),
                    dloss_dx=None if kept is None else np.stack([numpy(x.grad) for _, x in kept]))


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


def _gradients(model: EmbeddingDotBias, s: Slice) -> Gradients:
    """Autograd through each stage of the model's forward pass at its start, on the slice: the
    prediction at every rated cell, the MSE over the training ones."""
    users, movies, y = slice_tensors(s)
    train = torch.from_numpy(~s.long_valid)  # (n,)
    lo, hi = model.y_range
    pred, x = bias_forward(model, users, movies)  # (n,) each, keeping their gradients
    loss = F.mse_loss(pred[train], y[train])
    loss.backward()
    x_alone = x.detach().requires_grad_()
    (dpred_dx,) = torch.autograd.grad(sigmoid_range(x_alone, lo, hi).sum(), x_alone)  # (n,)
    rows, cols = s.rows, s.cols

    def on_grid(values: torch.Tensor, blank: float) -> np.ndarray:
        out = np.full(s.shape, blank)
        out[rows, cols] = numpy(values)
        return out

    return Gradients(
        slice=s, u_weight=numpy(model.u_weight.weight), i_weight=numpy(model.i_weight.weight),
        u_bias=numpy(model.u_bias.weight[:, 0]), i_bias=numpy(model.i_bias.weight[:, 0]),
        pred=on_grid(pred, np.nan), dloss_dpred=on_grid(pred.grad, 0.0),
        dpred_dx=on_grid(dpred_dx, np.nan), dloss_dx=on_grid(x.grad, 0.0),
        d_u_weight=numpy(model.u_weight.weight.grad), d_i_weight=numpy(model.i_weight.weight.grad),
        d_u_bias=numpy(model.u_bias.weight.grad[:, 0]),
        d_i_bias=numpy(model.i_bias.weight.grad[:, 0]), loss=float(loss.detach()))
