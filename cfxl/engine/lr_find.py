"""fastai's learning-rate finder: one pass of mini-batches from a fresh model, the lr growing
exponentially from `start` to `end`, the smoothed loss at each step, and a suggested lr.

As fastai's `Learner.lr_find`: step i trains at lr = start * (end / start) ** (i / steps); the
loss is smoothed by a debiased exponential moving average (beta 0.98, fastai's Recorder); the
run stops once the smoothed loss passes 4 times the best so far (it has diverged). The
suggestion is fastai's default rule since 2.5, "valley" (`fastai.callback.schedule.valley`):
the longest stretch over which the smoothed loss keeps falling, and the lr half of a third into
it, judged on the steps past the first tenth with the last five left out, as fastai does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cfxl.data.ratings import Ratings
from cfxl.errors import CfxlError
from cfxl.engine.train import Config, make_optimizers, start as start_run

BETA = 0.98     # fastai's Recorder smooths the loss with this
DIVERGED = 4.0  # fastai's lr_find stops when the smoothed loss passes 4x its best
RULE = "valley"


@dataclass(frozen=True)
class LrFind:
    """An lr finder's run as plain numpy: every step's lr, batch loss and smoothed loss."""

    lr: np.ndarray          # (steps run,) the lr of each step
    loss: np.ndarray        # (steps run,) the batch's MSE before the step
    smooth: np.ndarray      # (steps run,) the debiased moving average of loss (beta)
    suggestion: float       # the suggested lr: lr[suggested]
    suggested: int          # its step, 0-based
    start: float            # the range asked for: lr grows from start towards end
    end: float
    steps: int              # steps asked for; more than were run when the loss diverged
    diverged: bool          # stopped early: the smoothed loss passed DIVERGED x its best
    beta: float = BETA
    rule: str = RULE


def moving_average(loss: np.ndarray, beta: float = BETA) -> np.ndarray:
    """fastai's AvgSmoothLoss before its debiasing: avg_i = beta * avg_{i-1} + (1 - beta) * loss_i,
    from avg_-1 = 0."""
    out, avg = np.empty(len(loss)), 0.0
    for i, x in enumerate(loss):
        avg = beta * avg + (1 - beta) * float(x)
        out[i] = avg
    return out


def smooth(loss: np.ndarray, beta: float = BETA) -> np.ndarray:
    """The smoothed loss fastai plots: the moving average divided by 1 - beta ** (i + 1), so the
    first steps are not pulled towards its start at 0."""
    return moving_average(loss, beta) / (1 - beta ** np.arange(1, len(loss) + 1))


def valley(losses: np.ndarray) -> int:
    """fastai's valley rule: the index, into losses, of the lr it suggests. The longest run of
    falling losses (a longest decreasing subsequence, ending where it is longest), then an
    index half of a third past its start: well inside the fall, before the bottom."""
    n = len(losses)
    lds, max_start, max_end = [1] * n, 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end, max_start = i, i - lds[i]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def lr_find(config: Config, ratings: Ratings, *, start: float = 1e-7, end: float = 10.0,
            steps: int = 100, stop_div: bool = True) -> LrFind:
    """Train config's model from its fresh start for up to `steps` mini-batches of the training
    ratings (config's optimizer, weight decay and batch size; its lr and schedule replaced by
    the growing lr), drawing another permutation when an epoch runs out."""
    if not (0 < start < end and math.isfinite(end)):
        raise CfxlError(f"the lr finder's range must have 0 < start < end, not {start:g} to {end:g}")
    if steps < 2:
        raise CfxlError(f"the lr finder needs at least 2 steps, not {steps}")
    c = config
    device, (u, m, y), _, model = start_run(c, ratings)
    opts = make_optimizers(c, model)
    gen = torch.Generator().manual_seed(c.seed)  # batch order, as fit draws it
    lrs, losses, best, avg, order, at = [], [], math.inf, 0.0, None, len(y)
    model.train()
    for i in range(steps):
        if at + c.bs > len(y) and at > 0:  # a new epoch's order (a short last batch is skipped)
            order, at = torch.randperm(len(y), generator=gen).to(device), 0  # (n_train,)
        batch = order[at:at + c.bs]  # (bs,)
        at += c.bs
        lr = start * (end / start) ** (i / steps)
        for o in opts:
            for group in o.param_groups:
                group["lr"] = lr
        loss = F.mse_loss(model(u[batch], m[batch]), y[batch])
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
        lrs.append(lr)
        losses.append(float(loss.detach()))
        avg = BETA * avg + (1 - BETA) * losses[-1]  # as moving_average
        s = avg / (1 - BETA ** (i + 1))
        if not math.isfinite(s) or (stop_div and s > DIVERGED * best):
            break
        best = min(best, s)
    lr_arr, loss_arr = np.array(lrs), np.array(losses)
    sm = smooth(loss_arr)
    diverged = len(lrs) < steps
    suggested = suggest(sm, steps)
    return LrFind(lr=lr_arr, loss=loss_arr, smooth=sm, suggestion=float(lr_arr[suggested]),
                  suggested=suggested, start=start, end=end, steps=steps, diverged=diverged)


def suggest(smoothed: np.ndarray, steps: int) -> int:
    """The valley rule on the steps fastai judges: past the first tenth of those asked for, the
    last five left out (where the loss shoots up), non-finite losses dropped; index into all."""
    window = np.arange(steps // 10, len(smoothed) - 5)
    bad = np.flatnonzero(~np.isfinite(smoothed[window]))
    window = window[:bad[0]] if len(bad) else window  # fastai cuts at the first NaN
    if len(window) < 2:
        raise CfxlError(f"the loss diverged within {len(smoothed)} steps, too few to suggest an "
                        "lr; lower the range's end (--end)")
    return int(window[valley(smoothed[window])])
