"""fit()'s batch step as compiled passes where cfxl has them: EmbeddingDotBias on --sparse, on
the CPU, with a row-sparse optimizer that has a compiled rule (numba installed, the `fast` extra).

The forward and backward pass (cfxl.engine.dotbias_cpu) hand the optimizer the touched rows'
gradients autograd would (tests/test_rowsparse_fit.py proves them equal), and its step_rows
applies torch's rule to those rows; the model's .grad stays unset. Anything else (another
model, a GPU, a recorded or distributed run) takes autograd's step.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from cfxl.engine.models import EmbeddingDotBias

BatchStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], float]


def compiled_step(model: nn.Module, opts: list, bs: int) -> BatchStep | None:
    """A function (batch, users, movies, y) -> the batch's summed squared error that trains one
    batch of at most bs ratings (batch: their positions in users, movies and y), or None where
    autograd's step is needed."""
    if not isinstance(model, EmbeddingDotBias) or not model.u_weight.sparse or len(opts) != 1:
        return None
    [opt] = opts
    tables = [model.u_weight.weight, model.i_weight.weight, model.u_bias.weight,
              model.i_bias.weight]
    if not getattr(opt, "compiled", False) or {id(p) for g in opt.param_groups
                                               for p in g["params"]} != {id(t) for t in tables}:
        return None
    if tables[0].device.type != "cpu" or tables[0].dtype not in (torch.float32, torch.float64):
        return None
    from cfxl.engine.dotbias_cpu import dotbias_grads

    arrays = [t.detach().numpy() for t in tables]  # views: the optimizer updates them in place
    dtype = arrays[0].dtype.type  # the scalars in the tables' dtype, as torch casts them
    lo, hi = model.y_range
    k = arrays[0].shape[1]
    slots = opt.slot(tables[0]), opt.slot(tables[1])  # users', movies' (the biases share them)
    rows = np.empty(bs, np.int64), np.empty(bs, np.int64)
    grads = [np.empty((bs, k), arrays[0].dtype), np.empty((bs, k), arrays[0].dtype),
             np.empty((bs, 1), arrays[0].dtype), np.empty((bs, 1), arrays[0].dtype)]

    def step(batch: torch.Tensor, users: torch.Tensor, movies: torch.Tensor,
             y: torch.Tensor) -> float:
        sse, r_u, r_m = dotbias_grads(batch.numpy(), users.numpy(), movies.numpy(), y.numpy(),
                                      *arrays, dtype(lo), dtype(hi - lo), dtype(2.0 / len(batch)),
                                      *slots, *rows, *grads)
        u, m = rows[0][:r_u], rows[1][:r_m]
        opt.step_rows({tables[0]: (u, grads[0][:r_u]), tables[1]: (m, grads[1][:r_m]),
                       tables[2]: (u, grads[2][:r_u]), tables[3]: (m, grads[3][:r_m])})
        return sse

    return step
