"""The optimizer workbook's line records (filled by cfxl.records.graddesc)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


TRUE_B, TRUE_A = 30.0, 2.0  # the lesson's "a=2, b=30"
LINE_PARAMS = ("b", "a")  # the line's parameters, in the sheets' order
# a sheet each: the lesson's, adamw (fastai's default) beside adam, eve after adam_ann
LINE_OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw", "adam_ann", "eve")
LINE_SHEETS = {"sgd": "basic SGD", "momentum": "momentum", "adagrad": "adagrad",
               "rmsprop": "rmsprop", "adam": "adam", "adamw": "adamw", "adam_ann": "adam_ann",
               "eve": "eve"}
LESSON_ONLY = ("eve",)  # torch has no Eve: its sheet follows the lesson's rules under either rules
TORCH_ONLY = ("adamw",)  # the lesson has no AdamW: its sheet follows torch's under either rules
COMPARE_SHEET = "compare"  # every line sheet's loss by epoch, and its b and a against the truth
LINE_RULES = ("torch", "lesson")  # torch.optim's, or the lesson spreadsheet's own
ANNEAL_RATIO, ANNEAL_DIVISOR = 2.0, 4.0  # lesson adam_ann: lr / 4 when the gradients grow 2x


@dataclass(frozen=True)
class LineData:
    """x, and the true a and b that make y; y = b + x*a, as the data sheet computes it."""

    x: np.ndarray  # (n,) float64 integers
    b: float = TRUE_B
    a: float = TRUE_A
    seed: int | None = None  # None: the lesson's pasted rows

    @property
    def y(self) -> np.ndarray:
        return self.b + self.x * self.a  # (n,)


@dataclass(frozen=True)
class LineHyper:
    """One optimizer sheet's settings; fields an optimizer does not use are ignored."""

    lr: float
    epochs: int = 5
    momentum: float = 0.0          # SGD's momentum; the lesson's momentum beta
    alpha: float = 0.99            # RMSprop's decay of square_avg; the lesson's rmsprop beta
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's (torch's defaults)
    eps: float = 1e-8              # RMSprop and Adam; Adagrad uses torch's 1e-10
    weight_decay: float = 0.0      # L2, added to the gradient as torch.optim does; AdamW's
    #                                decoupled: the value shrinks by lr * weight_decay first
    gamma: float = 1.0             # adam_ann: StepLR's factor, applied after each epoch
    beta3: float = 0.9             # eve: the decay of its average loss volatility d
    start: tuple[float, float] = (1.0, 1.0)  # (b, a) before the first step, the lesson's guesses


@dataclass
class LineRecords:
    """One optimizer's run, a row per step (epochs stacked); every array is float64."""

    opt: str                      # one of LINE_OPTIMIZERS
    rules: str                    # "torch" (torch.optim ran it) or "lesson" (numpy, the lesson's)
    hyper: LineHyper
    epoch: np.ndarray             # (steps,) 1-based
    step: np.ndarray              # (steps,) 1-based; torch's state "step" where it keeps one
    x: np.ndarray                 # (steps,)
    y: np.ndarray
    b: np.ndarray                 # before the step
    a: np.ndarray
    pred: np.ndarray              # b + a*x
    err2: np.ndarray              # (pred - y)^2, the loss of the step's one row
    grad: np.ndarray              # (steps, 2) autograd's de/db, de/da
    grad_used: np.ndarray         # (steps, 2) as the optimizer uses it: + weight_decay * value
    #                               (AdamW: the gradient itself)
    state: dict[str, np.ndarray]  # after the step, torch's names (lesson: mom, ms, histgrad)
    derived: dict[str, np.ndarray]  # (steps,) per-step numbers inside the update (bias corrections)
    lr: np.ndarray                # (steps,) lr used
    new_b: np.ndarray
    new_a: np.ndarray
    state_start: dict[str, np.ndarray] = field(default_factory=dict)  # (2,) before the first step
    epoch_extra: dict[str, np.ndarray] = field(default_factory=dict)  # (epochs,) adam_ann, eve
    epoch_start: dict[str, float] = field(default_factory=dict)  # eve: d before the first epoch
    true: tuple[float, float] = (TRUE_B, TRUE_A)  # the data's true b and a, the sheet's target

    @property
    def n_steps(self) -> int:
        return len(self.x)

    @property
    def epoch_loss(self) -> np.ndarray:
        """(epochs,) sqrt of the mean err2 over each epoch's rows: the sheet's loss column."""
        return np.array([math.sqrt(math.fsum(self.err2[self.epoch == e]) / (self.epoch == e).sum())
                         for e in range(1, int(self.epoch.max()) + 1)])


@dataclass
class GraddescRecords:
    """What the graddesc workbook shows: the data, the rules, and one run per optimizer sheet."""

    data: LineData
    rules: str
    runs: dict[str, LineRecords]  # by optimizer key, in LINE_OPTIMIZERS order
