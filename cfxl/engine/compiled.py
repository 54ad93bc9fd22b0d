"""fit()'s batch step as compiled passes where cfxl has them: EmbeddingDotBias on --sparse, on
the CPU, with a row-sparse optimizer that has a compiled rule (numba installed, the `fast` extra).

The forward and backward pass (cfxl.engine.dotbias_cpu) hand the optimizer the per-lookup
gradient rows autograd would (tests/test_rowsparse_fit.py proves them equal), and its step_rows
applies torch's rule to the touched rows; the model's .grad stays unset. Anything else (another
model, a GPU, a recorded or distributed run) takes autograd's step.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from cfxl.engine.models import EmbeddingDotBias

BatchStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], float]


def compiled_step(model: nn.Module, opts: list, bs: int) -> BatchStep | None:
    """A function (users, movies, y) -> the batch's summed squared error that trains one batch
    of at most bs ratings, or None where autograd's step is needed."""
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
    grads = [np.empty((bs, k), arrays[0].dtype), np.empty((bs, k), arrays[0].dtype),
             np.empty((bs, 1), arrays[0].dtype), np.empty((bs, 1), arrays[0].dtype)]

    def step(users: torch.Tensor, movies: torch.Tensor, y: torch.Tensor) -> float:
        n = len(y)
        u, m = users.numpy(), movies.numpy()  # (n,) each
        g = [a[:n] for a in grads]
        sse = dotbias_grads(u, m, y.numpy(), *arrays, dtype(lo), dtype(hi - lo), dtype(2.0 / n),
                            *g)
        opt.step_rows({tables[0]: (u, g[0]), tables[1]: (m, g[1]), tables[2]: (u, g[2]),
                       tables[3]: (m, g[3])})
        return sse

    return step
