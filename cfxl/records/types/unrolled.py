"""Training unrolled in formulas (filled by cfxl.records.unrolled)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.records.types.slice import Slice


UNROLLED_STATES = ("momentum_buffer", "exp_avg", "exp_avg_sq")  # torch's names, all on the sheet


@dataclass(frozen=True)
class UnrolledHyper:
    """The train sheet's yellow settings, with torch.optim's names; lr None takes the preset
    (cfxl.presets.UNROLLED_LRS), an lr with which that optimizer lowers the slice's loss visibly."""

    opt: str = "adam"                # "sgd", "momentum" (SGD with momentum) or "adam"
    lr: float | None = None
    momentum: float = 0.9            # used by "momentum" only; plain "sgd" has none
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's, torch's defaults
    eps: float = 1e-8
    weight_decay: float = 0.0        # L2, added to the gradient as torch.optim does


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
    """K steps of full-batch training of the slice model on its training ratings (Slice.train).
    Grids are (steps, n_users, n_movies) with NaN at unrated cells; dloss_dx is 0 at unrated and
    held-out cells (they are not in the loss), pred and err are at every rated cell."""

    slice: Slice
    n_factors: int
    seed: int
    hyper: UnrolledHyper       # lr filled in
    value: Params             # (steps + 1, ...): before each step, then after the last
    grad: Params              # (steps, ...) autograd's gradient of the MSE
    grad_used: Params         # (steps, ...) what the optimizer uses: grad + weight_decay * value
    state: dict[str, Params]  # torch's state after each step, by its names (those it keeps)
    step: np.ndarray          # (steps,) 1..K, Adam's state `step`
    bias_correction1: np.ndarray  # (steps,) torch's 1 - beta1 ** step (computed for every opt)
    bias_correction2: np.ndarray
    loss: np.ndarray          # (steps,) the training MSE before each step (what torch minimises)
    valid_loss: np.ndarray    # (steps,) the held-out ratings' MSE at the same parameters
    pred: np.ndarray
    err: np.ndarray           # prediction - rating
    dloss_dx: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.loss)
