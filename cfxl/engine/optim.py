"""torch.optim's own classes under cfxl's optimizer names: on the fast path for training, or on
torch's plain single-tensor path, whose order of operations the spreadsheet formulas copy."""

from __future__ import annotations

import torch

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "adagrad")


def torch_optimizer(opt: str, params, *, lr: float, momentum: float = 0.9, alpha: float = 0.99,
                    betas: tuple[float, float] = (0.9, 0.999), eps: float | None = None,
                    weight_decay: float = 0.0, single_tensor: bool = False):
    """The torch.optim optimizer for `opt` ("momentum" is SGD with momentum, dampening 0).

    eps None keeps the class's own default (Adagrad's is 1e-10, the others' 1e-8). Without
    single_tensor the fused kernels are used where torch has them: one pass over each tensor,
    several times faster on the CPU, but with fused multiply-adds a formula cannot mirror.
    """
    o, extra = torch.optim, {} if eps is None else {"eps": eps}
    if opt in ("sgd", "momentum"):
        cls, kw = o.SGD, {"momentum": momentum if opt == "momentum" else 0.0}
    elif opt == "adam":
        cls, kw = o.Adam, {"betas": betas, **extra}
    elif opt == "rmsprop":
        cls, kw = o.RMSprop, {"alpha": alpha, **extra}
    elif opt == "adagrad":
        cls, kw = o.Adagrad, extra
    else:
        raise ValueError(f"unknown optimizer {opt!r}; choose one of {', '.join(OPTIMIZERS)}")
    params = list(params)
    if single_tensor:
        return cls(params, lr=lr, weight_decay=weight_decay, foreach=False, **kw)
    try:
        return cls(params, lr=lr, weight_decay=weight_decay, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # older torch, or no fused kernel here
        return cls(params, lr=lr, weight_decay=weight_decay, **kw)
