"""The CF model's optimizer steps and one step's gradients (filled by cfxl.records.cf_steps)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.records.types.slice import Slice


# the optimizers of the slice model's sheets, cfxl.engine's names: the unrolled train sheet's
# optimizer cell chooses among these (its one update formula subtracts the chosen rule's step
# from the value, which AdamW's decay of the value itself does not fit), and the cf_* sheets
# add AdamW (cf_adamw)
SLICE_OPTIMIZERS = ("sgd", "momentum", "adam")
CF_OPTIMIZERS = (*SLICE_OPTIMIZERS, "adamw")
SLICE_PARAMS = ("u_weight", "i_weight", "u_bias", "i_bias")  # the order of elements in a step


@dataclass(frozen=True, eq=False)
class OptSteps:
    """One optimizer's run, each parameter element a column, in CFStepRecords.names' order."""

    opt: str                  # one of CF_OPTIMIZERS
    optimizer: str            # torch's class: "SGD", "Adam" or "AdamW"
    hyper: dict               # torch's param-group settings: lr, momentum, betas, eps, weight_decay
    lr: np.ndarray            # (steps,) the lr used at each step
    loss: np.ndarray          # (steps,) the batch's MSE before the step
    value: np.ndarray         # (steps, n_elements) before the step
    grad: np.ndarray          # (steps, n_elements) autograd's gradient of the batch MSE
    grad_used: np.ndarray     # (steps, n_elements) grad + weight_decay * value (AdamW: grad)
    value_after: np.ndarray   # (steps, n_elements)
    state: dict[str, np.ndarray]  # torch's names, after the step: (steps, n_elements);
    # a live run's forward pass at each of the slice's ratings (long order), before each step;
    # None for a traced or mini-batch run
    x: np.ndarray | None = None         # (steps, n_ratings) user . movie + user bias + movie bias
    pred: np.ndarray | None = None      # (steps, n_ratings) sigmoid range of x
    dloss_dx: np.ndarray | None = None  # (steps, n_ratings) autograd's d MSE/dx


@dataclass(frozen=True, eq=False)
class Gradients:
    """The slice model at its initial parameters, and autograd's gradient of its full-batch MSE
    over the training ratings (Slice.train) through every stage: d loss/d prediction,
    d prediction/dx (x = dot + biases), d loss/dx, and the parameters' gradients. Grids are
    (n_users, n_movies); unrated cells hold NaN in `pred` and `dpred_dx`, unrated and held-out
    cells 0 in `dloss_dpred` and `dloss_dx` (they are not in the loss)."""

    slice: Slice
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
    loss: float               # the training ratings' MSE


@dataclass(frozen=True, eq=False)
class CFStepRecords:
    """Every optimizer's recorded steps over the same elements, and the gradients sheet's data."""

    names: tuple[str, ...]    # (n_elements,) "u_weight[3,1]", "i_bias[7,0]": torch's indices
    ids: np.ndarray           # (n_elements,) raw id of the user or movie each element belongs to
    runs: dict[str, OptSteps]  # by opt, in the order asked for
    gradients: Gradients
    traced: bool              # True: the whole data's model, chosen rows; False: the slice model
    live: bool                # the slice model trained full-batch: every gradient a formula
    n_ratings: int            # ratings trained on
    n_factors: int
    steps: int
    bs: int | None            # None: full batch
    seed: int
    y_range: tuple[float, float]
