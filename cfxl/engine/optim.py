"""torch.optim's own classes under cfxl's optimizer names: on the fast path for training, or on
torch's plain single-tensor path, whose order of operations the spreadsheet formulas copy."""

from __future__ import annotations

import math

import torch

from cfxl.errors import CfxlError, option

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "adagrad", "adamw")
# AdamW decays the weights themselves (decoupled, fastai's default), not through the gradient
DECOUPLED = ("adamw",)


def check_settings(*, lr: float | None, momentum: float, betas: tuple[float, float], eps: float,
                   weight_decay: float) -> None:
    """The settings a user types, in the ranges torch.optim accepts (lr None: a preset's), so a
    mistake is told before any data is read or model trained."""
    if lr is not None and not (lr > 0 and math.isfinite(lr)):
        raise CfxlError(f"lr must be a positive number, not {lr}")
    if not (momentum >= 0 and math.isfinite(momentum)):
        raise CfxlError(f"momentum must be a number >= 0, not {momentum}")
    if not all(0 <= b < 1 for b in betas):
        raise CfxlError(f"betas must each be in [0, 1), not {betas[0]},{betas[1]}")
    if not (eps > 0 and math.isfinite(eps)):
        raise CfxlError(f"eps must be a positive number, not {eps}")
    if not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise CfxlError(f"{option('weight_decay')} must be a number >= 0, not {weight_decay}")


def torch_optimizer(opt: str, params, *, lr: float, momentum: float = 0.9, alpha: float = 0.99,
                    betas: tuple[float, float] = (0.9, 0.999), eps: float | None = None,
                    weight_decay: float = 0.0, single_tensor: bool = False):
    """The torch.optim optimizer for `opt` ("momentum" is SGD with momentum, dampening 0;
    "adamw" is AdamW: the weights shrink by lr * weight_decay before Adam's step, the decay
    kept out of the moments).

    eps None keeps the class's own default (Adagrad's is 1e-10, the others' 1e-8). Without
    single_tensor the fused kernels are used where torch has them: one pass over each tensor,
    several times faster on the CPU, but with fused multiply-adds a formula cannot mirror.
    """
    o, extra = torch.optim, {} if eps is None else {"eps": eps}
    if opt in ("sgd", "momentum"):
        cls, kw = o.SGD, {"momentum": momentum if opt == "momentum" else 0.0}
    elif opt in ("adam", "adamw"):
        cls, kw = o.Adam if opt == "adam" else o.AdamW, {"betas": betas, **extra}
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
