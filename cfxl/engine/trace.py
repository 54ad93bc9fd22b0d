"""Per-step recording of parameters, gradients and torch.optim state, as plain numpy records.

The recorder reads what torch did: the value before the step, autograd's gradient, the state
torch.optim keeps under its own names after the step, the lr used and the value after. No torch
object leaves this module, so the workbook layer never needs torch to show a trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cfxl.engine.models import param_names

# torch.optim's state names: SGD momentum, Adam, Adagrad, RMSprop
STATE_KEYS = ("step", "momentum_buffer", "exp_avg", "exp_avg_sq", "sum", "square_avg")


@dataclass
class ParamTrace:
    """One parameter (or chosen rows of it) over the recorded steps; arrays are (steps, *shape)."""

    name: str
    rows: np.ndarray | None   # rows followed (None: the whole tensor)
    value: np.ndarray         # before the step
    grad: np.ndarray          # as autograd gives it
    grad_used: np.ndarray     # as the optimizer uses it: grad + weight_decay * value (AdamW:
                              # grad alone, its decay shrinks the value before the step)
    value_after: np.ndarray
    state: dict[str, np.ndarray]  # torch's names, after the step; "step" is (steps,)


@dataclass
class Trace:
    """A recorded run: the optimizer, its hyperparameters, and per-step lr, loss and parameters."""

    optimizer: str            # torch class name, e.g. "Adam"
    hyper: dict               # the param group's settings (lr as configured, betas, eps, ...)
    lr: np.ndarray            # (steps,) lr used at each step
    loss: np.ndarray          # (steps,) batch loss before the step
    params: dict[str, ParamTrace]

    @property
    def n_steps(self) -> int:
        return len(self.lr)


def _np(t: torch.Tensor, rows) -> np.ndarray:
    t = t.detach()
    if t.is_sparse:
        t = t.to_dense()
    if rows is not None:
        t = t[torch.as_tensor(rows, device=t.device)]
    return t.cpu().double().numpy().copy()


class Recorder:
    """Hooks for fit(): call before_step after backward, after_step after optimizer.step.

    `follow` maps short parameter names (`u_weight`, `i_bias`, `lin1.weight`) to the rows to
    record (None for all rows); without it every parameter is recorded whole, which suits the
    small mirrored models.
    """

    def __init__(self, follow: dict[str, object] | None = None):
        self.follow = None if follow is None else {
            k: None if v is None else np.asarray(v, dtype=np.int64) for k, v in follow.items()}
        self._steps: list[dict] = []
        self._hyper: dict = {}
        self._optimizer = ""

    def _followed(self, model: nn.Module):
        params = param_names(model)
        names = params if self.follow is None else self.follow
        unknown = [n for n in names if n not in params]
        if unknown:
            raise KeyError(f"no parameter named {unknown[0]!r}; the model has {', '.join(params)}")
        return {n: (params[n], None if self.follow is None else self.follow[n]) for n in names}

    def before_step(self, model: nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        group = opt.param_groups[0]
        self._optimizer = type(opt).__name__
        self._hyper = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()
                       if k != "params" and isinstance(v, (int, float, bool, tuple))}
        wd = 0.0 if group.get("decoupled_weight_decay") else group.get("weight_decay", 0.0)
        rec = {"lr": float(group["lr"]), "loss": float(loss.detach()), "params": {}}
        for name, (p, rows) in self._followed(model).items():
            value, grad = _np(p, rows), _np(p.grad, rows)
            rec["params"][name] = {"rows": rows, "value": value, "grad": grad,
                                   "grad_used": grad + wd * value}
        self._steps.append(rec)

    def after_step(self, model: nn.Module, opt: torch.optim.Optimizer) -> None:
        rec = self._steps[-1]
        for name, (p, rows) in self._followed(model).items():
            entry = rec["params"][name]
            entry["value_after"] = _np(p, rows)
            state = opt.state.get(p, {})
            entry["state"] = {k: (float(state[k]) if k == "step" else _np(state[k], rows))
                              for k in STATE_KEYS if state.get(k) is not None}

    def result(self) -> Trace:
        """Stack the recorded steps into arrays (steps first)."""
        params = {}
        if self._steps:
            for name, first in self._steps[0]["params"].items():
                col = [s["params"][name] for s in self._steps]
                params[name] = ParamTrace(
                    name=name, rows=first["rows"],
                    **{k: np.stack([c[k] for c in col])
                       for k in ("value", "grad", "grad_used", "value_after")},
                    state={k: np.stack([np.asarray(c["state"][k]) for c in col])
                           for k in first["state"]})
        return Trace(optimizer=self._optimizer, hyper=self._hyper,
                     lr=np.array([s["lr"] for s in self._steps]),
                     loss=np.array([s["loss"] for s in self._steps]), params=params)
