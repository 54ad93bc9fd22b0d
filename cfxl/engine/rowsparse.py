"""Row-sparse optimizers for embedding tables: torch's Adam, AdamW, SGD and Adagrad rules applied
only to the rows a batch touched, lazily (an untouched row's state waits, as in torch.optim.SparseAdam).

Why: nn.Embedding(sparse=True) hands the optimizer one gradient row per rating, uncoalesced, and
torch's SparseAdam spends most of a CPU step coalescing it and in three sparse adds. Here the
touched rows are found once per index tensor and step (torch.unique; a table's weight and bias
share their indices), their gradients summed with index_add_, the rows gathered with
index_select, updated by torch's single-tensor rule in its order of operations, and written back
with index_copy_. On rows touched every step the result is torch.optim's dense Adam / AdamW / SGD
/ Adagrad, weight decay included (tests/test_rowsparse.py); a dense gradient updates the whole tensor by the same rule. On the CPU,
when numba can be imported (a dependency of cfxl), the same rule runs as one compiled pass over the
touched rows (cfxl.engine.rowsparse_cpu), several times faster (Adagrad: torch's ops only).

Weight decay is lazy too: torch's rule on the touched rows only (L2 added to their gradient;
AdamW's decoupled shrink), as SparseAdam users expect; an untouched row does not decay.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch

from cfxl.errors import CfxlError

ROW_SPARSE = ("sgd", "momentum", "adam", "adamw", "adagrad")  # cfxl's names of the rules here


def touched(grad: torch.Tensor, seen: dict) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(rows, summed gradient rows) of a sparse gradient: each touched row once, ascending.

    A dense gradient gives (None, grad): every row. `seen` maps an index tensor to its unique
    rows and inverse within one step, so tables indexed by the same batch tensor (the user
    factors and biases) find their rows once; the index tensors it holds stay alive meanwhile.
    """
    if not grad.is_sparse:
        return None, grad
    idx, values = grad._indices()[0], grad._values()  # (nnz,), (nnz, k)
    if grad.is_coalesced():
        return idx, values
    key = (idx.data_ptr(), idx.numel(), idx.device)
    if key not in seen:
        seen[key] = (idx, *torch.unique(idx, return_inverse=True))
    _, rows, inverse = seen[key]  # (r,), (nnz,)
    summed = values.new_zeros((len(rows), *values.shape[1:]))  # (r, k)
    return rows, summed.index_add_(0, inverse, values)


def _gather(t: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    return t if rows is None else t.index_select(0, rows)  # (r, k) copy, or t itself


def _scatter(t: torch.Tensor, rows: torch.Tensor | None, block: torch.Tensor) -> None:
    if rows is not None:
        t.index_copy_(0, rows, block)


def _kernels(fused: bool | None):
    """cfxl.engine.rowsparse_cpu when it is to be used: fused None uses it when numba is
    installed, True requires it, False never uses it (torch's ops only)."""
    if fused is False or (fused is None and importlib.util.find_spec("numba") is None):
        return None
    try:
        from cfxl.engine import rowsparse_cpu
    except ImportError as e:
        raise CfxlError(f"the fused row-sparse step needs numba ({e}): pip install numba")
    return rowsparse_cpu


class _RowSparse(torch.optim.Optimizer):
    """The step loop shared by the rules: each parameter's touched rows, then `_update` (torch's
    ops) or `_fused` (one compiled pass, for a sparse gradient on the CPU, where a rule has one)."""

    _fused = None

    def __init__(self, params, defaults: dict, fused: bool | None):
        super().__init__(params, defaults)
        self._cpu = _kernels(fused)
        self._slots: dict = {}  # per table on the CPU path: (n_rows,) of -1, the kernels' scratch
        self._views: dict = {}  # per table on the CPU path: its and its state's numpy views

    def slot(self, p: torch.Tensor) -> np.ndarray:
        """p's scratch for coalescing on the CPU: (n_rows,) of -1, left so by every use."""
        if p not in self._slots:
            self._slots[p] = np.full(len(p), -1, dtype=np.int64)
        return self._slots[p]

    def _state_of(self, p: torch.Tensor, group: dict) -> dict:
        """p's state, made on its first step (zeros, torch's names), its step counted."""
        state = self.state[p]
        if not state:
            state["step"] = 0
            for name in self._state_names(group):
                state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        return state

    @property
    def compiled(self) -> bool:
        """Whether a sparse gradient on the CPU takes the compiled pass (step_rows' condition)."""
        return self._cpu is not None and self._fused is not None

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        seen: dict = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if self.compiled and p.grad.is_sparse and p.device.type == "cpu" \
                        and p.dtype in (torch.float32, torch.float64):  # numpy's dtypes
                    g = p.grad
                    rows = self._cpu.coalesce(g._indices()[0].numpy(), g._values().numpy(),
                                              self.slot(p))
                    self._step_rows(p, group, *rows)
                else:
                    self._update(p, *touched(p.grad, seen), self._state_of(p, group), group)
        return loss

    def step_rows(self, grads: dict) -> None:
        """step() for gradients given as {parameter: (rows (r,), summed (r, k))}, numpy
        arrays, each touched row once with its gradient summed over its lookups (a coalesced
        sparse gradient): the compiled pass on CPU tables in float32 or float64 (`compiled`).

        Lean, as it runs once a batch: the rule's scalars are worked out once for the tables
        of a group that share a step count and dtype, and the tables' numpy views are kept."""
        self._opt_called = True  # what step()'s wrapper tells an lr scheduler: it has stepped
        for group in self.param_groups:
            scalars: dict = {}
            for p in group["params"]:
                if p in grads:
                    self._step_rows(p, group, *grads[p], scalars)

    def _step_rows(self, p, group, rows: np.ndarray, summed: np.ndarray,
                   scalars: dict | None = None) -> None:
        state = self._state_of(p, group)
        arrays = self._arrays(p, state, group)
        key, scalars = (state["step"], arrays[0].dtype), {} if scalars is None else scalars
        if key not in scalars:  # in the table's dtype, as torch casts a Python scalar
            scalars[key] = tuple(map(arrays[0].dtype.type, self._scalars(group, key[0])))
        self._fused(self._cpu, rows, summed, arrays, scalars[key])

    def _arrays(self, p: torch.Tensor, state: dict, group: dict) -> tuple[np.ndarray, ...]:
        """numpy views of p and its state tensors, kept while they are the same tensors."""
        tensors = (p, *(state[name] for name in self._state_names(group)))
        kept = self._views.get(p)
        if kept is None or kept[1] != p.data_ptr() or any(a is not b for a, b in
                                                          zip(kept[0], tensors[1:])):
            kept = (tensors[1:], p.data_ptr(), tuple(t.detach().numpy() for t in tensors))
            self._views[p] = kept
        return kept[2]


class RowSparseAdam(_RowSparse):
    """Lazy Adam (decoupled=False: L2 added to the gradient) or AdamW (decoupled=True: the
    touched rows shrink by lr * weight_decay), torch's state `step`, `exp_avg`, `exp_avg_sq`.

    `step` counts every step the table had a gradient, touched row or not, so the bias
    corrections are SparseAdam's; eps is added after dividing by sqrt(bias_correction2), as in
    torch's dense Adam (SparseAdam adds it before, a difference of eps * (1 - sqrt(bc2))).
    """

    def __init__(self, params, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled: bool = False,
                 fused: bool | None = None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled=decoupled), fused)

    @staticmethod
    def _state_names(group) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    @staticmethod
    def _update(p, rows, grad, state, group) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        wd = group["weight_decay"]
        w = _gather(p, rows)  # (r, k)
        exp_avg, exp_avg_sq = _gather(state["exp_avg"], rows), _gather(state["exp_avg_sq"], rows)
        if wd and group["decoupled"]:
            w.mul_(1 - lr * wd)
        elif wd:
            grad = grad.add(w, alpha=wd)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step = state["step"]
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        denom = (exp_avg_sq.sqrt() / bias_correction2 ** 0.5).add_(eps)  # (r, k)
        w.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
        _scatter(p, rows, w)
        _scatter(state["exp_avg"], rows, exp_avg)
        _scatter(state["exp_avg_sq"], rows, exp_avg_sq)

    @staticmethod
    def _fused(cpu, rows, summed, arrays, scalars) -> None:
        cpu.adam(rows, summed, *arrays, *scalars)  # arrays: the table, exp_avg, exp_avg_sq

    @staticmethod
    def _scalars(group, step: int) -> tuple[float, ...]:
        """rowsparse_cpu.adam's scalars, as torch computes them."""
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        decay = group["decoupled"]
        return (1 - lr * wd if decay else 1, 0 if decay else wd, 1 - beta1, beta2, 1 - beta2,
                group["eps"], lr / (1 - beta1 ** step), (1 - beta2 ** step) ** 0.5)


class RowSparseSGD(_RowSparse):
    """Lazy SGD, with momentum (dampening 0) kept in torch's `momentum_buffer` when momentum > 0:
    an untouched row neither moves nor decays its buffer."""

    def __init__(self, params, *, lr: float = 1e-3, momentum: float = 0.0,
                 weight_decay: float = 0.0, fused: bool | None = None):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay), fused)

    @staticmethod
    def _state_names(group) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] else ()

    @staticmethod
    def _update(p, rows, grad, state, group) -> None:
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        w = _gather(p, rows)  # (r, k)
        if wd:
            grad = grad.add(w, alpha=wd)
        if momentum:
            buf = _gather(state["momentum_buffer"], rows)  # (r, k)
            buf.mul_(momentum).add_(grad)  # a zero buffer's first step is torch's clone(grad)
            _scatter(state["momentum_buffer"], rows, buf)
            grad = buf
        w.add_(grad, alpha=-lr)
        _scatter(p, rows, w)

    @staticmethod
    def _fused(cpu, rows, summed, arrays, scalars) -> None:
        w, *buf = arrays  # the table and its momentum buffer, where it has one
        cpu.sgd(rows, summed, w, buf[0] if buf else w[:0], *scalars)

    @staticmethod
    def _scalars(group, step: int) -> tuple[float, ...]:
        return group["lr"], group["momentum"], group["weight_decay"]


class RowSparseAdagrad(_RowSparse):
    """Lazy Adagrad (lr_decay 0, initial accumulator 0), torch's state `step` and `sum`: the
    touched rows add their squared gradient (L2 included) to `sum`; torch's ops on any device."""

    def __init__(self, params, *, lr: float = 1e-2, eps: float = 1e-10,
                 weight_decay: float = 0.0, fused: bool | None = None):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay), fused)

    @staticmethod
    def _state_names(group) -> tuple[str, ...]:
        return ("sum",)

    @staticmethod
    def _update(p, rows, grad, state, group) -> None:
        w = _gather(p, rows)  # (r, k)
        if group["weight_decay"]:
            grad = grad.add(w, alpha=group["weight_decay"])
        total = _gather(state["sum"], rows).addcmul_(grad, grad, value=1)  # (r, k)
        w.addcdiv_(grad, total.sqrt().add_(group["eps"]), value=-group["lr"])
        _scatter(p, rows, w)
        _scatter(state["sum"], rows, total)


def row_sparse_optimizer(opt: str, params, *, lr: float, momentum: float = 0.9,
                         betas: tuple[float, float] = (0.9, 0.999), eps: float | None = None,
                         weight_decay: float = 0.0, fused: bool | None = None) -> _RowSparse:
    """The row-sparse optimizer for cfxl's name `opt` (ROW_SPARSE), with torch.optim's meanings:
    "momentum" is SGD with momentum, "adamw" decays the weights decoupled; eps None is the
    class's own default (Adagrad's 1e-10, Adam's 1e-8), as torch_optimizer's."""
    extra = {} if eps is None else {"eps": eps}
    if opt in ("sgd", "momentum"):
        return RowSparseSGD(params, lr=lr, momentum=momentum if opt == "momentum" else 0.0,
                            weight_decay=weight_decay, fused=fused)
    if opt in ("adam", "adamw"):
        return RowSparseAdam(params, lr=lr, betas=betas, weight_decay=weight_decay,
                             decoupled=opt == "adamw", fused=fused, **extra)
    if opt == "adagrad":
        return RowSparseAdagrad(params, lr=lr, weight_decay=weight_decay, fused=fused, **extra)
    raise CfxlError(f"no row-sparse optimizer {opt!r}; choose one of {', '.join(ROW_SPARSE)}")
