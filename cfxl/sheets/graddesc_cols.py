"""The columns and top cells of each graddesc optimizer sheet, under torch's rules or the lesson's.

A column is a formula template for a step row and the values that row must recompute to
(torch's, or numpy's lesson rules). Template tokens, filled in by cfxl.sheets.graddesc:
`{k}` column k on this row, `{k-}` on the previous row (the start row before the first step),
`{$p}` the top cell p, `{k:prev_epoch}` column k over the previous epoch's rows, `{@x}` / `{@y}`
this row's cells on the data sheet, `{@elr}` this row's epoch's lr in the epoch table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.records.types import ANNEAL_DIVISOR, ANNEAL_RATIO, LineRecords

H_FD = 0.01  # the lesson's nudge for its finite-difference estimates


@dataclass(frozen=True)
class Col:
    """One column of step rows: its header, formula template and the values it must give."""

    key: str
    head: str
    formula: str | None        # None: a plain number (the epoch)
    values: np.ndarray         # (steps,) what each row must recompute to
    first: str | None = None   # the first step row's formula, when it differs
    epoch_first: str | None = None  # the first row of epochs 2.., when it differs
    start: float | None = None  # the start row's value: state before the first step
    start_input: bool = False   # a reader may edit the start value (the lesson's Reset value)
    fmt: str = "num"
    comment: str | None = None
    check: bool = True          # False: not torch's (the finite-difference estimates)
    scale: np.ndarray | None = None  # (steps,) size of what a cancelling value is computed from


@dataclass(frozen=True)
class Param:
    """A labelled top cell a reader may edit: start values, lr and the optimizer's settings."""

    key: str
    label: str
    value: float
    comment: str | None = None


def _sub(template: str, **names: str) -> str:
    """Fill `<name>` placeholders, leaving the `{token}` braces for the sheet writer."""
    for k, v in names.items():
        template = template.replace(f"<{k}>", v)
    return template


def _pair(key: str, head: str, formula: str, values: np.ndarray, *, state: str | None = None,
          r: LineRecords | None = None, **kw) -> list[Col]:
    """Two columns, for b then a, `<p>` standing for the parameter; values is (steps, 2). With
    state, the start row holds r's state before the first step."""
    scale = kw.pop("scale", None)
    return [Col(_sub(key, p=p), _sub(head, p=p), _sub(formula, p=p), values[:, j],
                **({"start": float(r.state_start[state][j])} if state else {}),
                **({"scale": scale[:, j]} if scale is not None else {}),
                **{k: _sub(v, p=p) if k in ("first", "epoch_first") else v for k, v in kw.items()})
            for j, p in enumerate(("b", "a"))]


def model_columns(r: LineRecords) -> list[Col]:
    """epoch .. err^2 and, on basic SGD, the lesson's finite-difference estimates."""
    cols = [
        Col("epoch", "epoch", None, r.epoch, fmt="int"),
        Col("step", "step", "={step-}+1", r.step, start=float(r.step[0] - 1), fmt="int",
            comment="the number of updates so far (torch's state 'step' in Adagrad, RMSprop, Adam)"),
        Col("x", "x", "={@x}", r.x, fmt="int"),
        Col("y", "y", "={@y}", r.y, fmt="int"),
        Col("b", "b", "={new_b-}", r.b, first="={$b0}", fmt="val",
            comment="b before this step: the top cell on the first row, then the row above's new b"),
        Col("a", "a", "={new_a-}", r.a, first="={$a0}", fmt="val"),
        Col("pred", "pred", "={b}+{a}*{x}", r.pred),
        Col("err2", "err^2", "=({pred}-{y})^2", r.err2, comment="the loss of this row: (pred - y)^2",
            scale=2 * np.abs(r.pred - r.y) * _size(r)),
    ]
    if r.opt == "sgd":
        h = H_FD
        b, a, x, y = r.b, r.a, r.x, r.y
        errb1 = ((b + h) + x * a - y) ** 2
        erra1 = ((a + h) * x + b - y) ** 2
        cols += [
            Col("errb1", "errb1", "=(({b}+{$h})+{x}*{a}-{y})^2", errb1,
                comment="err^2 with b nudged by h"),
            Col("est_db", "est de/db", "=({errb1}-{err2})/{$h}", (errb1 - r.err2) / h,
                comment="finite-difference estimate of de/db (de/db + h, exactly)", check=False),
            Col("erra1", "erra1", "=(({a}+{$h})*{x}+{b}-{y})^2", erra1,
                comment="err^2 with a nudged by h"),
            Col("est_da", "est de/da", "=({erra1}-{err2})/{$h}", (erra1 - r.err2) / h,
                comment="finite-difference estimate of de/da (de/da + h*x^2, exactly)",
                check=False),
        ]
    cols += [
        Col("de_db", "de/db", "=2*({pred}-{y})", r.grad[:, 0],
            comment="analytic: d(pred-y)^2/db = 2(pred-y); autograd's value is the check",
            scale=_grad_size(r)[:, 0]),
        Col("de_da", "de/da", "={de_db}*{x}", r.grad[:, 1], comment="analytic: 2(pred-y)*x",
            scale=_grad_size(r)[:, 1]),
    ]
    return cols


def _size(r: LineRecords) -> np.ndarray:
    """(steps,) the size of pred and y: pred - y near convergence keeps few of their digits."""
    return np.abs(r.pred) + np.abs(r.y)


def _grad_size(r: LineRecords) -> np.ndarray:
    """(steps, 2) the scale of de/db and de/da (and of the gradient after weight decay)."""
    g = 2 * _size(r)
    return np.c_[g, g * np.abs(r.x)] + r.hyper.weight_decay * np.abs(np.c_[r.b, r.a])


def _running(scale: np.ndarray) -> np.ndarray:
    """A state that averages gradients carries the error of the largest gradient so far."""
    return np.maximum.accumulate(scale, axis=0)


def torch_columns(r: LineRecords) -> tuple[list[Param], list[Col]]:
    """Top cells and columns following torch.optim's single-tensor update for r.opt."""
    h, opt, s = r.hyper, r.opt, r.state
    params = [Param("b0", "b (intercept)", h.start[0], "the guess for b before the first step"),
              Param("a0", "a (slope)", h.start[1], "the guess for a before the first step"),
              Param("lr", "lr", h.lr, "the learning rate" + ", before StepLR" * (opt == "adam_ann")),
              Param("weight_decay", "weight_decay", h.weight_decay,
                    "L2: torch adds weight_decay * value to the gradient")]
    g = _grad_size(r)
    cols = model_columns(r) + _pair(
        "grad_<p>", "grad <p>", "={de_d<p>}+{$weight_decay}*{<p>}", r.grad_used, scale=g,
        comment="the gradient the optimizer uses: de/d. + weight_decay * value")
    lr = "{$lr}"
    if opt == "sgd":
        params.append(Param("h", "h (finite diff.)", H_FD, "the nudge for the estimates"))
        step = "{$lr}*{grad_<p>}"
    elif opt == "momentum":
        params.append(Param("momentum", "momentum", h.momentum))
        cols += _pair("momentum_buffer_<p>", "momentum_buffer <p>",
                      "={momentum_buffer_<p>-}*{$momentum}+{grad_<p>}", s["momentum_buffer"],
                      state="momentum_buffer", r=r, scale=_running(g) / (1 - h.momentum),
                      comment="buf = buf*momentum + grad (dampening 0; the first step's buf is "
                              "grad itself, as 0*momentum + grad)")
        step = "{$lr}*{momentum_buffer_<p>}"
    elif opt == "adagrad":
        params.append(Param("eps", "eps", h.eps))
        cols += _pair("sum_<p>", "sum <p>", "={sum_<p>-}+{grad_<p>}*{grad_<p>}", s["sum"],
                      state="sum", r=r, comment="sum = sum + grad^2 (initial_accumulator_value 0)")
        step = "{$lr}*{grad_<p>}/(SQRT({sum_<p>})+{$eps})"
    elif opt == "rmsprop":
        params += [Param("alpha", "alpha", h.alpha), Param("eps", "eps", h.eps)]
        cols += _pair("square_avg_<p>", "square_avg <p>",
                      "={square_avg_<p>-}*{$alpha}+(1-{$alpha})*{grad_<p>}*{grad_<p>}",
                      s["square_avg"], state="square_avg", r=r,
                      comment="square_avg = square_avg*alpha + (1-alpha)*grad^2")
        step = "{$lr}*{grad_<p>}/(SQRT({square_avg_<p>})+{$eps})"
    else:  # adam, adam_ann
        params += [Param("beta1", "beta1", h.betas[0]), Param("beta2", "beta2", h.betas[1]),
                   Param("eps", "eps", h.eps)]
        cols += _pair("exp_avg_<p>", "exp_avg <p>",
                      "={exp_avg_<p>-}+(1-{$beta1})*({grad_<p>}-{exp_avg_<p>-})", s["exp_avg"],
                      state="exp_avg", r=r, scale=_running(g),
                      comment="exp_avg.lerp_(grad, 1-beta1) = exp_avg + (1-beta1)*(grad-exp_avg)")
        cols += _pair("exp_avg_sq_<p>", "exp_avg_sq <p>",
                      "={exp_avg_sq_<p>-}*{$beta2}+(1-{$beta2})*{grad_<p>}*{grad_<p>}",
                      s["exp_avg_sq"], state="exp_avg_sq", r=r,
                      comment="exp_avg_sq = exp_avg_sq*beta2 + (1-beta2)*grad^2")
        cols += [Col("bc1", "bias_correction1", "=1-{$beta1}^{step}",
                     r.derived["bias_correction1"], comment="1 - beta1^step"),
                 Col("bc2", "bias_correction2", "=1-{$beta2}^{step}",
                     r.derived["bias_correction2"], comment="1 - beta2^step")]
        if opt == "adam_ann":
            params.append(Param("gamma", "gamma", h.gamma, "StepLR: the lr times gamma each epoch"))
            cols.append(Col("lr", "lr", "=IF({epoch}={epoch-},{lr-},{lr-}*{$gamma})", r.lr,
                            first="={$lr}", fmt="val",
                            comment="StepLR(step_size=1): the lr times gamma at each new epoch"))
            lr = "{lr}"
        # torch: step_size = lr/bias_correction1; denom = sqrt(exp_avg_sq)/sqrt(bc2) + eps
        step = lr + "/{bc1}*{exp_avg_<p>}/(SQRT({exp_avg_sq_<p>})/SQRT({bc2})+{$eps})"
    return params, cols + _new(r, step, "the update, in torch's order of operations")


def _new(r: LineRecords, step: str, comment: str) -> list[Col]:
    return [Col(f"new_{p}", f"new {p}", _sub("={<p>}-" + step, p=p), v, fmt="val",
                comment=comment if p == "b" else None)
            for p, v in (("b", r.new_b), ("a", r.new_a))]


def lesson_columns(r: LineRecords) -> tuple[list[Param], list[Col]]:
    """Top cells and columns with the lesson's own formulas (lesson-workbooks.md §3.4-3.11);
    the start row's state is the lesson's Reset value, a cell a reader may edit."""
    h, opt, s = r.hyper, r.opt, r.state
    params = [Param("b0", "b (intercept)", h.start[0]), Param("a0", "a (slope)", h.start[1]),
              Param("lr", "lr", h.lr)]
    cols = model_columns(r)
    reset = {"start_input": True, "r": r}
    if opt == "sgd":
        params.append(Param("h", "h (finite diff.)", H_FD))
        step = "{de_d<p>}*{$lr}"
    elif opt == "momentum":
        params.append(Param("beta", "beta", h.momentum))
        cols += _pair("mom_<p>", "mom <p>", "={mom_<p>-}*{$beta}+(1-{$beta})*{de_d<p>}", s["mom"],
                      state="mom", **reset, comment="an average: mom*beta + (1-beta)*grad")
        step = "{mom_<p>}*{$lr}"
    elif opt == "adagrad":
        cols += _pair("histgrad_<p>", "histgrad <p>", "={histgrad_<p>-}", s["histgrad"],
                      epoch_first="=SQRT(SUMSQ({de_d<p>:prev_epoch}))/COUNT({de_d<p>:prev_epoch})",
                      state="histgrad", **reset,
                      comment="per epoch: sqrt(sum of the previous epoch's grad^2) / count")
        step = "{de_d<p>}*({$lr}/{histgrad_<p>})"
    elif opt == "rmsprop":
        params.append(Param("beta", "beta", h.alpha))
        cols += _pair("ms_<p>", "ms <p>", "={ms_<p>-}*{$beta}+(1-{$beta})*{de_d<p>}^2", s["ms"],
                      state="ms", **reset, comment="mean square: ms*beta + (1-beta)*grad^2")
        step = "{de_d<p>}*{$lr}/SQRT({ms_<p>-})"
    else:  # adam, adam_ann
        params += [Param("beta1", "beta1", h.betas[0]), Param("beta2", "beta2", h.betas[1])]
        cols += _pair("mom_<p>", "mom <p>", "={mom_<p>-}*{$beta1}+(1-{$beta1})*{de_d<p>}",
                      s["mom"], state="mom", **reset)
        cols += _pair("ms_<p>", "ms <p>", "={ms_<p>-}*{$beta2}+(1-{$beta2})*{de_d<p>}^2",
                      s["ms"], state="ms", **reset)
        lr = "{$lr}"
        if opt == "adam_ann":
            params += [Param("ratio", "anneal if ratio >", ANNEAL_RATIO),
                       Param("divisor", "then lr divided by", ANNEAL_DIVISOR)]
            cols.append(Col("lr", "lr", "={@elr}", r.lr, fmt="val"))
            lr = "{lr}"
        step = "{mom_<p>}*" + lr + "/SQRT({ms_<p>})"
    return params, cols + _new(r, step, "the lesson's update")
