"""How good a model is: its MSE in eval mode, the mean-rating baseline, and the check that a
finished run did not diverge."""

from __future__ import annotations

import torch
from torch import nn

from cfxl.engine.compiled import compiled_sse
from cfxl.errors import CfxlError

DIVERGED = 1.1  # a run ending above 1.1 times the MSE of both the mean and its start diverged


@torch.inference_mode()
def evaluate(model: nn.Module, u: torch.Tensor, m: torch.Tensor, y: torch.Tensor,
             chunk: int = 1 << 14) -> float:
    """Mean squared error over all given ratings, in eval mode (dropout off). In chunks small
    enough that a chunk's looked-up rows stay in the CPU's cache: 16k ratings took a tenth of
    the time of 256k (ml-1m's shape, one thread). EmbeddingDotBias on the CPU takes its
    compiled forward pass (cfxl.engine.compiled), several times faster."""
    model.eval()
    fast = compiled_sse(model)
    if fast is not None:
        return fast(u, m, y) / max(len(y), 1)
    total = torch.zeros((), dtype=torch.float64, device=y.device)
    for i in range(0, len(y), chunk):
        diff = model(u[i:i + chunk], m[i:i + chunk]) - y[i:i + chunk]  # (chunk,)
        total += diff.double().square().sum()
    return float(total) / max(len(y), 1)


def mean_baseline(y_train: torch.Tensor, y: torch.Tensor) -> float:
    """The MSE on y of predicting the training ratings' mean for every rating."""
    return float((y.double() - y_train.double().mean()).square().mean())


def check_trained(history: list[dict], *, before: float, after: float, baseline: float, on: str,
                  hint: str) -> None:
    """A finished run must not be clearly worse (by DIVERGED) than both predicting the mean
    rating and the model it started from: that is a run whose lr threw it off, however finite
    its loss (a sigmoid range keeps the predictions bounded while the weights run away).

    Not worse than the mean alone: a short legitimate run (the lesson's EmbeddingDot after one
    epoch, from predictions near 0) can be above it while far better than where it started.
    Not by a hair: a small model that learns little from noisy ratings ends within a percent
    of both (lr 1e6 with Adam ends three times above them)."""
    worse = DIVERGED * max(baseline, before)
    if not after > worse:
        return
    key = "val_loss" if on == "validation" else "train_loss"
    losses = [h[key] for h in history]
    epoch = next(k for k in range(len(losses), 0, -1) if k == 1 or not losses[k - 2] > worse)
    raise CfxlError(f"training diverged in epoch {epoch}: the {on} MSE ended at {after:.4g}, "
                    f"more than {DIVERGED - 1:.0%} worse than both predicting the mean rating "
                    f"({baseline:.4g}) and the model before training ({before:.4g}); {hint}")
