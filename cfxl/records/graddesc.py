"""The lesson's line, y = a*x + b: its data, a two-parameter model trained one row at a time by
torch.optim and traced, and the lesson's own spreadsheet rules in numpy (graddesc.xlsm).

Everything returned is plain numpy (`LineRecords`), so the workbook layer never needs torch.
Parameters are ordered (b, a) throughout: state arrays are (steps, 2), column 0 the intercept b.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from cfxl import presets
from cfxl.engine.trace import Recorder
from cfxl.errors import CfxlError
from cfxl.records.replay import replay, single_tensor
from cfxl.records.types.line import (
    ANNEAL_DIVISOR,
    ANNEAL_RATIO,
    LESSON_ONLY,
    LINE_OPTIMIZERS,
    LINE_RULES,
    TORCH_ONLY,
    TRUE_A,
    TRUE_B,
    GraddescRecords,
    LineData,
    LineHyper,
    LineRecords,
)

# the 29 x values pasted into every optimiser sheet of the lesson's graddesc.xlsm
LESSON_X = (14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21, 28,
            20, 8, 64, 99, 70, 27, 17, 8)
# the lesson's Reset button writes these before its first pass: mean squares and adagrad's
# gradient norms start at 10000 (so the first steps are small), momentum averages at 0
LESSON_RESET = 10000.0


def data(n: int = 29, seed: int = presets.SEED, *, b: float = TRUE_B, a: float = TRUE_A) -> LineData:
    """n seeded random integers 1..100 as x (the lesson's RANDBETWEEN(1,100)), y = b + x*a."""
    if n < 1:
        raise CfxlError(f"need at least one row, got n={n}")
    x = np.random.default_rng(seed).integers(1, 101, size=n).astype(np.float64)
    return LineData(x, b, a, seed)


def lesson_data() -> LineData:
    """The lesson's own 29 rows (x from LESSON_X, y = 2x + 30)."""
    return LineData(np.array(LESSON_X, dtype=np.float64))


# each optimizer sheet's settings: torch's rules, or the lesson's own (cfxl.presets); torch has
# no Eve, so its sheet keeps the lesson's settings under either rules, and the lesson no AdamW
_TORCH = {opt: LineHyper(**s) for opt, s in (presets.LINE_TORCH | presets.LINE_ADAMW).items()}
LESSON_DEFAULTS = {opt: LineHyper(**s) for opt, s in presets.LINE_LESSON.items()} | {
    opt: _TORCH[opt] for opt in TORCH_ONLY}
TORCH_DEFAULTS = _TORCH | {opt: LESSON_DEFAULTS[opt] for opt in LESSON_ONLY}


class Line(nn.Module):
    """y = b + a*x with two scalar parameters, b (intercept) first as in the lesson's sheets."""

    def __init__(self, b: float = 1.0, a: float = 1.0):
        super().__init__()
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float64))
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b + self.a * x


def _settings(opt: str, hyper: LineHyper | None, defaults: dict[str, LineHyper]) -> LineHyper:
    """hyper, or the defaults' for opt; a clear error for an unknown optimizer or no epochs."""
    if opt not in LINE_OPTIMIZERS:
        raise CfxlError(f"unknown optimizer {opt!r}; choose one of {', '.join(LINE_OPTIMIZERS)}")
    h = hyper or defaults[opt]
    if h.epochs < 1:
        raise CfxlError(f"need at least one epoch, got {h.epochs}")
    return h


def train(opt: str, d: LineData, hyper: LineHyper | None = None, *,
          state: dict[str, np.ndarray] | None = None) -> LineRecords:
    """Train Line on d with torch.optim, batch size 1, one step per row, rows in order each epoch.

    adam_ann multiplies the lr by hyper.gamma after each epoch (torch's StepLR, step_size=1).
    state continues an earlier run (see `resume`): torch's state before the first step, each
    entry (2,) for (b, a) under torch's names, and "step", the steps taken so far.
    """
    if opt in LESSON_ONLY:
        raise CfxlError(f"torch.optim has no {opt}; its sheet follows the lesson's rules "
                        f"(cfxl.records.graddesc.lesson)")
    h = _settings(opt, hyper, TORCH_DEFAULTS)
    model = Line(*h.start)
    # adam_ann is Adam; its schedule is applied per epoch
    optimizer = single_tensor("adam" if opt == "adam_ann" else opt, model, lr=h.lr,
                              momentum=h.momentum, alpha=h.alpha, betas=h.betas, eps=h.eps,
                              weight_decay=h.weight_decay)
    step0 = _load_state(optimizer, model, state)
    sched = (torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=h.gamma)
             if opt == "adam_ann" else None)
    rec = Recorder()
    rows = [((x,), y) for x, y in zip(torch.from_numpy(d.x), torch.from_numpy(d.y))]
    preds, epochs = [], []
    for epoch in range(1, h.epochs + 1):
        kept = replay(model, optimizer, rows, recorder=rec)
        preds += [float(pred.detach()) for pred, _ in kept]
        epochs += [epoch] * len(rows)
        if sched is not None:
            sched.step()
    t = rec.result()
    pb, pa = t.params["b"], t.params["a"]
    n = len(epochs)
    state_after = {k: np.stack([pb.state[k], pa.state[k]], axis=1)
                   for k in pb.state if k != "step"}
    step = pb.state.get("step", step0 + np.arange(1, n + 1, dtype=np.float64))
    derived = {}
    if opt in ("adam", "adamw", "adam_ann"):
        beta1, beta2 = h.betas  # as torch's _single_tensor_adam computes them
        derived = {"bias_correction1": np.array([1 - beta1 ** s for s in step]),
                   "bias_correction2": np.array([1 - beta2 ** s for s in step])}
    return LineRecords(
        opt=opt, rules="torch", hyper=h, epoch=np.array(epochs, dtype=np.int64), step=step,
        x=np.tile(d.x, h.epochs), y=np.tile(d.y, h.epochs), b=pb.value, a=pa.value,
        pred=np.array(preds), err2=t.loss, grad=_both(pb, pa, "grad"),
        grad_used=_both(pb, pa, "grad_used"),
        state=state_after, derived=derived, lr=t.lr, new_b=pb.value_after, new_a=pa.value_after,
        state_start={k: np.zeros(2) if state is None else np.asarray(state[k], dtype=np.float64)
                     for k in state_after},  # a fresh torch run starts every state at 0
        true=(d.b, d.a))


def _load_state(optimizer: torch.optim.Optimizer, model: Line, state: dict | None) -> float:
    """Put a continued run's state into torch's optimizer; the steps taken so far."""
    if not state:
        return 0.0
    step0 = float(state.get("step", 0.0))
    for j, p in enumerate((model.b, model.a)):
        entry = {k: torch.tensor(float(np.asarray(v)[j]), dtype=torch.float64)
                 for k, v in state.items() if k != "step"}
        if not isinstance(optimizer, torch.optim.SGD):  # SGD keeps no count; the others a
            entry["step"] = torch.tensor(step0, dtype=torch.get_default_dtype())  # float tensor
        optimizer.state[p].update(entry)
    return step0


def _both(pb, pa, key: str) -> np.ndarray:
    """(steps, 2): b's and a's traced arrays side by side."""
    return np.stack([getattr(pb, key), getattr(pa, key)], axis=1)


def lesson(opt: str, d: LineData, hyper: LineHyper | None = None, *, reset: float = LESSON_RESET,
           state: dict[str, np.ndarray] | None = None) -> LineRecords:
    """The lesson's spreadsheet rules (lesson-workbooks.md §3.4-3.11), in numpy, in the order of
    operations of its formulas, every row chained to the previous one across epochs:

    - sgd: new = p - lr*g (as torch).
    - momentum: mom = mom*beta + (1-beta)*g, an average; new = p - mom*lr.
    - adagrad: per epoch, histgrad = sqrt(sum g^2)/count over the previous epoch's rows (`reset`
      before the first); new = p - g*(lr/histgrad).
    - rmsprop: new = p - g*lr/sqrt(ms of the PREVIOUS row); ms = ms*beta + (1-beta)*g^2.
    - adam: mom and ms as above, this row's; new = p - mom*lr/sqrt(ms): no bias correction, no eps.
    - adam_ann: adam; after each epoch lr /= ANNEAL_DIVISOR when sqrt(ms_b)+sqrt(ms_a) at the
      epoch's end exceeds ANNEAL_RATIO times the smallest such value before it (start included).
    - eve (§3.9): adam whose step is also divided by d, the loss's volatility: before each epoch
      r = |ft_1 - ft_2| / min(ft_1, ft_2) of the two losses before it, d = d*beta3 + (1-beta3)*r.
      The Reset sets d = 1, ft_1 = the loss and ft_2 = half of it (so r = 1); the loss before the
      first step is the start values' (the Eve paper's f(theta_0)), the losses cfxl's epoch loss.
    Mean squares and histgrad start at `reset`, momentum averages at 0, as the Reset button sets;
    state continues an earlier run (see `resume`): mom, ms, histgrad (2,) each, "step", and eve's
    d, ft_1 and ft_2 (floats).
    """
    if opt in TORCH_ONLY:
        raise CfxlError(f"the lesson's spreadsheet has no {opt}; its sheet follows torch.optim's "
                        f"rules (cfxl.records.graddesc.train)")
    h = _settings(opt, hyper, LESSON_DEFAULTS)
    n, E = len(d.x), h.epochs
    beta1, beta2 = (h.momentum, h.alpha) if opt in ("momentum", "rmsprop") else h.betas
    p = np.array(h.start, dtype=np.float64)  # (2,) b, a
    state = state or {}
    given = {k: np.asarray(state[k], dtype=np.float64) for k in ("mom", "ms", "histgrad")
             if k in state}
    start = {"mom": np.zeros(2), "ms": np.full(2, reset), "histgrad": np.full(2, reset)} | given
    mom, ms, hist = start["mom"], start["ms"], start["histgrad"]
    step0 = float(state.get("step", 0.0))
    lr = h.lr
    low = math.sqrt(ms[0]) + math.sqrt(ms[1])  # adam_ann: the smallest sqrt(ms b)+sqrt(ms a)
    # eve: the Reset's d, and its losses: the start values' loss and half of it
    vol = float(state.get("d", 1.0))
    f0 = math.sqrt(math.fsum((p[0] + p[1] * d.x - d.y) ** 2) / n)
    ft_1, ft_2 = float(state.get("ft_1", f0)), float(state.get("ft_2", f0 / 2))
    extra = ({"lr": [], "avg_grad2": [], "prev_grad2": [], "gradrat": []} if opt == "adam_ann"
             else {"ft_1": [], "ft_2": [], "r": [], "d": []} if opt == "eve" else {})
    out: dict[str, list] = {k: [] for k in ("epoch", "x", "y", "b", "a", "pred", "err2", "grad",
                                            "state", "lr", "new")}
    for epoch in range(1, E + 1):
        if opt == "adagrad" and epoch > 1:
            g_prev = np.array(out["grad"][-n:])  # (n, 2) the previous epoch's gradients
            hist = np.sqrt((g_prev * g_prev).sum(axis=0)) / n
        if opt == "eve":
            if epoch > 1:
                ft_1, ft_2 = _loss(out["err2"][-n:]), ft_1
            r = abs(ft_1 - ft_2) / min(ft_1, ft_2)
            vol = vol * h.beta3 + (1 - h.beta3) * r
            for k, v in zip(extra, (ft_1, ft_2, r, vol)):
                extra[k].append(v)
        if opt == "adam_ann":
            extra["lr"].append(lr)
        for x, y in zip(d.x, d.y):
            b, a = p
            pred = b + a * x
            err2 = (pred - y) ** 2
            gb = 2 * (pred - y)
            g = np.array([gb, gb * x])
            if opt == "momentum":
                mom = mom * beta1 + (1 - beta1) * g
                new, now = p - mom * lr, {"mom": mom}
            elif opt == "adagrad":
                new, now = p - g * (lr / hist), {"histgrad": hist}
            elif opt == "rmsprop":
                new = p - g * lr / np.sqrt(ms)
                ms = ms * beta2 + (1 - beta2) * g ** 2
                now = {"ms": ms}
            elif opt in ("adam", "adam_ann", "eve"):
                mom = mom * beta1 + (1 - beta1) * g
                ms = ms * beta2 + (1 - beta2) * g ** 2
                step = mom * lr / np.sqrt(ms)
                new, now = p - (step / vol if opt == "eve" else step), {"mom": mom, "ms": ms}
            else:
                new, now = p - g * lr, {}
            for k, v in zip(out, (epoch, x, y, b, a, pred, err2, g, now, lr, new)):
                out[k].append(v)
            p = new
        if opt == "adam_ann":
            avg = math.sqrt(ms[0]) + math.sqrt(ms[1])
            extra["avg_grad2"].append(avg)
            extra["prev_grad2"].append(low)
            extra["gradrat"].append(avg / low)
            if avg / low > ANNEAL_RATIO:
                lr = lr / ANNEAL_DIVISOR
            low = min(low, avg)
    grad = np.array(out["grad"])
    new = np.array(out["new"])
    keys = out["state"][0].keys()
    return LineRecords(
        opt=opt, rules="lesson", hyper=h, epoch=np.array(out["epoch"], dtype=np.int64),
        step=step0 + np.arange(1, n * E + 1, dtype=np.float64), x=np.array(out["x"]),
        y=np.array(out["y"]),
        b=np.array(out["b"]), a=np.array(out["a"]), pred=np.array(out["pred"]),
        err2=np.array(out["err2"]), grad=grad, grad_used=grad,
        state={k: np.array([s[k] for s in out["state"]]) for k in keys}, derived={},
        lr=np.array(out["lr"]), new_b=new[:, 0], new_a=new[:, 1],
        state_start={k: start[k] for k in keys},
        epoch_extra={k: np.array(v) for k, v in extra.items()},
        epoch_start={"d": float(state.get("d", 1.0))} if opt == "eve" else {}, true=(d.b, d.a))


def _loss(err2: list[float]) -> float:
    """An epoch's loss as its sheet computes it: sqrt of the mean err^2 (LineRecords.epoch_loss)."""
    return math.sqrt(math.fsum(err2) / len(err2))


def resume(r: LineRecords) -> tuple[LineHyper, dict[str, np.ndarray]]:
    """Where r leaves off, as the settings and state that continue it (`train` or `lesson` with
    state=): start at r's last new b and a, with its last state and step count, and the lr and
    adagrad's histgrad its next epoch would use, as the lesson's Run button pastes them back."""
    n = len(r.x) // int(r.epoch.max())
    state = {k: v[-1].copy() for k, v in r.state.items()} | {"step": np.float64(r.step[-1])}
    lr = float(r.lr[-1])
    if r.rules == "torch" and r.opt == "adam_ann":
        lr *= r.hyper.gamma  # StepLR steps after every epoch
    if r.rules == "lesson" and r.opt == "adagrad":
        g = r.grad[-n:]  # (n, 2) the last epoch's gradients
        state["histgrad"] = np.sqrt((g * g).sum(axis=0)) / n
    if r.rules == "lesson" and r.opt == "adam_ann" and r.epoch_extra["gradrat"][-1] > ANNEAL_RATIO:
        lr /= ANNEAL_DIVISOR
    if r.opt == "eve":  # the next epoch's losses before it, and the volatility so far
        loss = r.epoch_loss
        state |= {"d": float(r.epoch_extra["d"][-1]), "ft_1": float(loss[-1]),
                  "ft_2": float(loss[-2] if len(loss) > 1 else r.epoch_extra["ft_1"][-1])}
    return replace(r.hyper, lr=lr, start=(float(r.new_b[-1]), float(r.new_a[-1]))), state


def run(rules: str = "torch", d: LineData | None = None, *,
        hyper: dict[str, LineHyper] | None = None, epochs: int | None = None) -> GraddescRecords:
    """Every optimizer sheet's run under `rules` (eve's always the lesson's, adamw's always
    torch's); hyper overrides the defaults per optimizer, epochs (when given) every sheet's
    epoch count."""
    if rules not in LINE_RULES:
        raise CfxlError(f"unknown rules {rules!r}; choose one of {', '.join(LINE_RULES)}")
    d = data() if d is None else d
    defaults = TORCH_DEFAULTS if rules == "torch" else LESSON_DEFAULTS
    runs = {}
    for opt in LINE_OPTIMIZERS:
        h = (hyper or {}).get(opt, defaults[opt])
        if epochs is not None:
            h = replace(h, epochs=epochs)
        torch_rules = (rules == "torch" and opt not in LESSON_ONLY) or opt in TORCH_ONLY
        runs[opt] = train(opt, d, h) if torch_rules else lesson(opt, d, h)
    return GraddescRecords(d, rules, runs)
