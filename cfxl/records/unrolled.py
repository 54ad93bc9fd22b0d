"""The slice model's whole training run, every step's every number, for the live `train` sheet.

`unrolled_records` starts the `bias` sheet's EmbeddingDotBias (the lesson's crosstab slice, the
full data's rating range, float64) from torch's initial parameters and trains it full-batch with
torch.optim (SGD, SGD with momentum or Adam, single-tensor code) on the slice's training ratings
(Slice.train: the held-out fifth is never trained on) for K steps, recording per step what the
sheet computes as formulas: the parameters, the prediction at every rated cell (held-out ones
too), the errors, the training MSE and the validation MSE, d loss/dx (x = user . movie + biases),
the gradient the optimizer uses, its state and the updated parameters. The forward pass is
written out stage by stage so x keeps its gradient, and checked to be the model's own output.
Parameters and state come from cfxl.engine.trace.Recorder. Records are plain numpy; nothing here
knows about workbooks. Called again with other `UnrolledHyper` settings, it is the fresh torch
run an edited sheet must match.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from cfxl import presets
from cfxl.data.ratings import Ratings
from cfxl.engine.models import EmbeddingDotBias
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
from cfxl.records.types.cf import SLICE_OPTIMIZERS, SLICE_PARAMS
from cfxl.records.types.unrolled import UNROLLED_STATES, Params, UnrolledHyper, UnrolledRecords


def settings(hyper: UnrolledHyper) -> UnrolledHyper:
    """hyper checked, its lr filled in from the presets when not given."""
    if hyper.opt not in SLICE_OPTIMIZERS:
        raise CfxlError(f"unknown optimizer {hyper.opt!r}; choose from "
                        f"{', '.join(SLICE_OPTIMIZERS)}")
    if hyper.lr is None:
        hyper = replace(hyper, lr=presets.UNROLLED_LRS[hyper.opt])
    if not hyper.lr > 0:
        raise CfxlError(f"lr must be positive, not {hyper.lr}")
    return hyper


def unrolled_records(ratings: Ratings, *, steps: int = presets.UNROLLED_STEPS,
                     n_users: int = presets.SLICE_USERS, n_movies: int = presets.SLICE_MOVIES,
                     n_factors: int = presets.UNROLLED_FACTORS,
                     hyper: UnrolledHyper = UnrolledHyper(),
                     seed: int = presets.SEED) -> UnrolledRecords:
    """Train the slice model with torch.optim for `steps` full-batch steps and record them."""
    if steps < 1 or n_factors < 1:
        raise CfxlError(f"need steps >= 1 and n_factors >= 1, not {steps} and {n_factors}")
    h = settings(hyper)
    s = take_slice(ratings, n_users, n_movies)
    users, movies, y = slice_tensors(s)
    train, valid = ~torch.from_numpy(s.long_valid), torch.from_numpy(s.long_valid)  # (n,) each

    def forward(model, users, movies):
        """The training ratings' forward pass, and (no gradient) the held-out ones'."""
        pred, x = bias_forward(model, users, movies)
        with torch.no_grad():
            held_out = model(*cells[:, valid])
        return pred, (x, held_out)

    with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
        model = seeded(lambda: EmbeddingDotBias(*s.shape, n_factors, y_range=s.y_range), seed)
    optimizer = single_tensor(h.opt, model, lr=h.lr, momentum=h.momentum, betas=h.betas,
                              eps=h.eps, weight_decay=h.weight_decay)
    recorder = Recorder()
    cells = torch.stack([users, movies])  # (2, n)
    kept = replay(model, optimizer, full_batch(*cells[:, train], y[train], steps),
                  forward=forward, recorder=recorder)
    trace = recorder.result()

    def stacked(get) -> Params:
        """get(ParamTrace) -> (steps, rows, width) for each parameter; biases lose the width."""
        return Params(**{n: get(trace.params[n])[..., 0] if n.endswith("bias")
                         else get(trace.params[n]) for n in SLICE_PARAMS})

    before, after = stacked(lambda t: t.value), stacked(lambda t: t.value_after)
    value = Params(**{n: np.concatenate([before[n], after[n][-1:]]) for n in SLICE_PARAMS})
    state = {name: stacked(lambda t, name=name: t.state[name]) for name in UNROLLED_STATES
             if name in trace.params["u_weight"].state}
    k = np.arange(1, steps + 1, dtype=np.float64)
    grids = {}
    at = {"train": s.train, "valid": s.valid}
    for name, cell_set, flat, blank in (
            ("pred", "train", [numpy(out) for out, _ in kept], np.nan),
            ("pred", "valid", [numpy(held) for _, (_, held) in kept], np.nan),
            ("dloss_dx", "train", [numpy(x.grad) for _, (x, _) in kept], 0.0)):
        grid = grids.setdefault(name, np.full((steps, *s.shape), blank))
        grid[:, at[cell_set]] = np.stack(flat)
    y_valid = y[valid]
    valid_loss = [F.mse_loss(held, y_valid).item() for _, (_, held) in kept] if len(y_valid) else [
        np.nan] * steps
    beta1, beta2 = h.betas
    return UnrolledRecords(
        slice=s, n_factors=n_factors, seed=seed, hyper=h, value=value,
        grad=stacked(lambda t: t.grad), grad_used=stacked(lambda t: t.grad_used), state=state,
        step=k,
        # torch's Python-float expressions (Adam's step is a float there)
        bias_correction1=np.array([1 - beta1 ** t for t in k]),
        bias_correction2=np.array([1 - beta2 ** t for t in k]),
        loss=trace.loss, valid_loss=np.array(valid_loss), pred=grids["pred"],
        err=grids["pred"] - s.ratings, dloss_dx=grids["dloss_dx"])
