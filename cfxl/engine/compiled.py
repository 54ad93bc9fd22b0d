"""fit()'s batch step, and evaluation's squared errors, as compiled passes where cfxl has them:
EmbeddingDotBias on the CPU in float32 or float64, numba importable (a dependency).

The forward and backward pass (cfxl.engine.dotbias_cpu) compute the touched rows' gradients
autograd would (tests/test_rowsparse_fit.py proves them equal, and whole runs equal autograd's
runs). With --sparse the row-sparse optimizer's step_rows applies its rule to those rows. On the
dense path the rows are written into each table's .grad (the rows the last batch touched set
back to zero first), and torch.optim's own optimizer steps as it does after autograd: the same
dense Adam, a fraction of the time (autograd's backward of the four lookups builds and sums a
whole-table gradient per table and step). Anything else (another model, a GPU, a recorded or
distributed run) takes autograd's step. Evaluation (validation every epoch) takes the compiled
forward pass for the same models: a fifth to a tenth of torch's time on ml-1m's shape.
"""

from __future__ import annotations

import importlib.util
from typing import Callable

import numpy as np
import torch
from torch import nn

from cfxl.engine.models import EmbeddingDotBias

BatchStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], float]
SquaredErrors = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], float]


def _tables(model: nn.Module) -> list[torch.Tensor] | None:
    """The model's four tables where cfxl has its passes compiled: EmbeddingDotBias on the CPU
    in float32 or float64, numba importable; else None."""
    if not isinstance(model, EmbeddingDotBias) or importlib.util.find_spec("numba") is None:
        return None
    tables = [model.u_weight.weight, model.i_weight.weight, model.u_bias.weight,
              model.i_bias.weight]
    if tables[0].device.type != "cpu" or tables[0].dtype not in (torch.float32, torch.float64):
        return None
    return tables


def compiled_sse(model: nn.Module) -> SquaredErrors | None:
    """A function (users, movies, y) -> the summed squared error of the model's predictions
    (float64; the model read as it is when called), or None where torch's forward is needed."""
    tables = _tables(model)
    if tables is None:
        return None
    from cfxl.engine import dotbias_cpu

    def sse(users: torch.Tensor, movies: torch.Tensor, y: torch.Tensor) -> float:
        arrays = [t.detach().numpy() for t in tables]
        lo, hi = model.y_range
        dtype = arrays[0].dtype.type
        return dotbias_cpu.dotbias_sse(users.numpy(), movies.numpy(), y.numpy(), *arrays,
                                       dtype(lo), dtype(hi - lo))

    return sse


def compiled_step(model: nn.Module, opts: list, bs: int) -> BatchStep | None:
    """A function (batch, users, movies, y) -> the batch's summed squared error that trains one
    batch of at most bs ratings (batch: their positions in users, movies and y), or None where
    autograd's step is needed."""
    tables = _tables(model)
    if tables is None or len(opts) != 1:
        return None
    [opt] = opts
    if {id(p) for g in opt.param_groups for p in g["params"]} != {id(t) for t in tables}:
        return None
    sparse = model.u_weight.sparse
    if sparse and not getattr(opt, "compiled", False):
        return None
    from cfxl.engine import dotbias_cpu

    arrays = [t.detach().numpy() for t in tables]  # views: the optimizer updates them in place
    dtype = arrays[0].dtype.type  # the scalars in the tables' dtype, as torch casts them
    lo, hi = model.y_range
    k = arrays[0].shape[1]
    slots = [np.full(len(t), -1, np.int64) for t in tables[:2]]  # users', movies' (and biases')
    rows = np.empty(bs, np.int64), np.empty(bs, np.int64)
    grads = [np.empty((bs, k), arrays[0].dtype), np.empty((bs, k), arrays[0].dtype),
             np.empty((bs, 1), arrays[0].dtype), np.empty((bs, 1), arrays[0].dtype)]
    if not sparse:
        for t in tables:  # the gradients torch's optimizer reads, kept from step to step
            t.grad = torch.zeros_like(t)
        dense = [t.grad.numpy() for t in tables]
        stale = [np.empty(bs, np.int64), np.empty(bs, np.int64)]  # rows the last batch set
        n_stale = [0, 0]

    data: list = []  # the ratings' tensors (users, movies, y) and their numpy views, kept

    def step(batch: torch.Tensor, users: torch.Tensor, movies: torch.Tensor,
             y: torch.Tensor) -> float:
        if not data or any(a is not b for a, b in zip(data, (users, movies, y))):
            data[:] = [users, movies, y, users.numpy(), movies.numpy(), y.numpy()]
        sse, r_u, r_m = dotbias_cpu.dotbias_grads(
            batch.numpy(), *data[3:], *arrays, dtype(lo), dtype(hi - lo),
            dtype(2.0 / len(batch)), *slots, *rows, *grads)
        r = (r_u, r_m, r_u, r_m)
        if sparse:
            opt.step_rows({t: (rows[n % 2][:r[n]], grads[n][:r[n]]) for n, t in enumerate(tables)})
            return sse
        for n in range(4):
            dotbias_cpu.densify(dense[n], stale[n % 2][:n_stale[n % 2]], rows[n % 2][:r[n]],
                                grads[n][:r[n]])
        for n in range(2):
            stale[n][:r[n]] = rows[n][:r[n]]
            n_stale[n] = r[n]
        opt.step()
        return sse

    return step
