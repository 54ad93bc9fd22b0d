"""The lr finder's run, as the lr_find sheet shows it (cfxl.records.lr_find; numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LrFindRecords:
    """Each step of an lr finder's run (cfxl.engine.lr_find), its smoothing and its suggestion."""

    lr: np.ndarray        # (steps,) the lr of each step, growing exponentially
    loss: np.ndarray      # (steps,) the batch's MSE before the step, as torch computed it
    average: np.ndarray   # (steps,) its moving average: beta * previous + (1 - beta) * loss
    smooth: np.ndarray    # (steps,) the average debiased: average / (1 - beta ** step)
    beta: float           # fastai's smoothing, 0.98
    suggestion: float     # the suggested lr, lr[suggested]
    suggested: int        # its step, 0-based
    rule: str             # how it was chosen: fastai's "valley"
    label: str            # the run: model, optimizer, batch size, weight decay, lr range
    ended: str            # why the run ended: all its steps, or the loss diverged

    @property
    def n_steps(self) -> int:
        return len(self.lr)
