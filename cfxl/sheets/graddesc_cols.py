"""The columns and top cells of each graddesc optimizer sheet, under torch's rules or the lesson's.

A column is a formula template for a step row and the values that row must recompute to
(torch's, or numpy's lesson rules). Template tokens, cfxl.sheets.rules' language filled in by
cfxl.sheets.graddesc: `{k}` column k on this row, `{k-}` on the previous row (the start row
before the first step), `{$p}` the top cell p, `{k:prev_epoch}` column k over the previous
epoch's rows, `{@x}` / `{@y}` this row's cells on the data sheet, `{@e_k}` column k of the
epoch table on this row's epoch (its lr, eve's d). torch's columns are its rules rendered so; the
lesson's are written here, Eve's rendered from cfxl.sheets.rules.LESSON_RULES.

Number formats follow cfxl.sheets.styles: counts `int`, data, parameters, predictions and errors
`num`, gradients and optimizer state `sci`, a computed lr `general` as the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.records.types.line import ANNEAL_DIVISOR, ANNEAL_RATIO, LineRecords
from cfxl.sheets.rules import LESSON_RULES, RULES, SHARED, render

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
        Col("b", "b", "={new_b-}", r.b, first="={$b0}",
            comment="b before this step: the top cell on the first row, then the row above's new b"),
        Col("a", "a", "={new_a-}", r.a, first="={$a0}"),
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
                comment="finite-difference estimate of de/db (de/db + h, exactly)", check=False,
                fmt="sci"),
            Col("erra1", "erra1", "=(({a}+{$h})*{x}+{b}-{y})^2", erra1,
                comment="err^2 with a nudged by h"),
            Col("est_da", "est de/da", "=({erra1}-{err2})/{$h}", (erra1 - r.err2) / h,
                comment="finite-difference estimate of de/da (de/da + h*x^2, exactly)",
                check=False, fmt="sci"),
        ]
    cols += [
        Col("de_db", "de/db", "=2*({pred}-{y})", r.grad[:, 0],
            comment="analytic: d(pred-y)^2/db = 2(pred-y); autograd's value is the check",
            scale=_grad_size(r)[:, 0], fmt="sci"),
        Col("de_da", "de/da", "={de_db}*{x}", r.grad[:, 1], comment="analytic: 2(pred-y)*x",
            scale=_grad_size(r)[:, 1], fmt="sci"),
    ]
    return cols


def _size(r: LineRecords) -> np.ndarray:
    """(steps,) the size of pred and y: pred - y near convergence keeps few of their digits."""
    return np.abs(r.pred) + np.abs(r.y)


def _grad_size(r: LineRecords) -> np.ndarray:
    """(steps, 2) the scale of de/db and de/da (and of the gradient after L2 weight decay;
    AdamW's decay stays out of it)."""
    g = 2 * _size(r)
    l2 = 0.0 if _decoupled(r) else r.hyper.weight_decay
    return np.c_[g, g * np.abs(r.x)] + l2 * np.abs(np.c_[r.b, r.a])


def _decoupled(r: LineRecords) -> bool:
    return r.rules == "torch" and r.opt in RULES and RULES[r.opt].decoupled


def _state_size(r: LineRecords, state: str) -> np.ndarray | None:
    """(steps, 2) the scale of a state that sums or averages gradients: it carries the error of
    the largest gradient so far. None for a sum of squares: nothing cancels in it."""
    largest = np.maximum.accumulate(_grad_size(r), axis=0)
    if state == "momentum_buffer":  # a geometric sum: up to 1 / (1 - momentum) gradients
        return largest / (1 - r.hyper.momentum)
    return largest if state == "exp_avg" else None


def torch_columns(r: LineRecords) -> tuple[list[Param], list[Col]]:
    """Top cells and columns following torch.optim's single-tensor update for r.opt: its rule
    (cfxl.sheets.rules) as a column per stage, b's and a's side by side."""
    h, opt = r.hyper, r.opt
    rule = RULES["adam" if opt == "adam_ann" else opt]  # adam_ann: adam, its lr on a schedule
    settings = {"momentum": h.momentum, "alpha": h.alpha, "eps": h.eps, "beta1": h.betas[0],
                "beta2": h.betas[1]}
    params = [Param("b0", "b (intercept)", h.start[0], "the guess for b before the first step"),
              Param("a0", "a (slope)", h.start[1], "the guess for a before the first step"),
              Param("lr", "lr", h.lr, "the learning rate" + ", before StepLR" * (opt == "adam_ann")),
              Param("weight_decay", "weight_decay", h.weight_decay,
                    "decoupled: the value shrinks by lr * weight_decay before each step; the "
                    "gradient and the moments stay free of it" if rule.decoupled else
                    "L2: torch adds weight_decay * value to the gradient")]
    params += [Param(name, name, settings[name]) for name in rule.hyper]
    if opt == "sgd":
        params.append(Param("h", "h (finite diff.)", H_FD, "the nudge for the estimates"))
    lr = "{lr}" if opt == "adam_ann" else "{$lr}"
    cols = model_columns(r)
    for stage in rule.stages:
        formula = _line(stage.formula, lr)
        if stage.name in SHARED:
            cols.append(Col(stage.name, stage.name, formula, r.derived[stage.name],
                            comment=stage.note))
        elif stage.name == "grad":
            cols += _pair("grad_<p>", "grad <p>", formula, r.grad_used, scale=_grad_size(r),
                          comment=stage.note, fmt="sci")
        else:
            cols += _pair(f"{stage.name}_<p>", f"{stage.name} <p>", formula, r.state[stage.name],
                          state=stage.name, r=r, scale=_state_size(r, stage.name),
                          comment=stage.note, fmt="sci")
    if opt == "adam_ann":
        params.append(Param("gamma", "gamma", h.gamma, "StepLR: the lr times gamma each epoch"))
        cols.append(Col("lr", "lr", "=IF({epoch}={epoch-},{lr-},{lr-}*{$gamma})", r.lr,
                        first="={$lr}", fmt="general",
                        comment="StepLR(step_size=1): the lr times gamma at each new epoch"))
    return params, cols + _new(r, _line(rule.new_value, lr),
                               "the update, in torch's order of operations"
                               + ": value*(1 - lr*weight_decay), then Adam's step" * rule.decoupled)


def _line(template: str, lr: str) -> str:
    """A rule's template as a line sheet's column formula: b's or a's own column `<name>_<p>`
    (`<p>` itself for the parameter, de/d<p> for the loss's gradient), a column the two share
    for the step, the bias corrections and adam_ann's lr, a top cell for a hyperparameter."""
    def ref(kind: str, name: str, mod: str | None) -> str:
        if kind == "$":
            return f"(1-{{${name[2:]}}})" if name.startswith("1-") else f"{{${name}}}"
        if name == "lr":
            return lr
        own = {"param": "<p>", "dloss": "de_d<p>"}.get(name, f"{name}_<p>")
        return "{" + (name if name in SHARED else own) + (mod or "") + "}"

    return "=" + render(template, ref)


def _new(r: LineRecords, formula: str, comment: str) -> list[Col]:
    return [Col(f"new_{p}", f"new {p}", _sub(formula, p=p), v,
                comment=comment if p == "b" else None)
            for p, v in (("b", r.new_b), ("a", r.new_a))]


def lesson_columns(r: LineRecords) -> tuple[list[Param], list[Col]]:
    """Top cells and columns with the lesson's own formulas (lesson-workbooks.md §3.4-3.11);
    the start row's state is the lesson's Reset value, a cell a reader may edit."""
    h, opt = r.hyper, r.opt
    params = [Param("b0", "b (intercept)", h.start[0]), Param("a0", "a (slope)", h.start[1]),
              Param("lr", "lr", h.lr)]
    cols = model_columns(r)
    if opt == "sgd":
        params.append(Param("h", "h (finite diff.)", H_FD))
        step = "{de_d<p>}*{$lr}"
    elif opt == "momentum":
        params.append(Param("beta", "beta", h.momentum))
        cols += _average(r, "mom", "beta", "an average: mom*beta + (1-beta)*grad")
        step = "{mom_<p>}*{$lr}"
    elif opt == "adagrad":
        cols += _pair("histgrad_<p>", "histgrad <p>", "={histgrad_<p>-}", r.state["histgrad"],
                      epoch_first="=SQRT(SUMSQ({de_d<p>:prev_epoch}))/COUNT({de_d<p>:prev_epoch})",
                      state="histgrad", start_input=True, r=r, fmt="sci",
                      comment="per epoch: sqrt(sum of the previous epoch's grad^2) / count")
        step = "{de_d<p>}*({$lr}/{histgrad_<p>})"
    elif opt == "rmsprop":
        params.append(Param("beta", "beta", h.alpha))
        cols += _average(r, "ms", "beta", "mean square: ms*beta + (1-beta)*grad^2")
        step = "{de_d<p>}*{$lr}/SQRT({ms_<p>-})"
    elif opt == "eve":
        rule = LESSON_RULES["eve"]
        settings = {"beta1": h.betas[0], "beta2": h.betas[1], "beta3": h.beta3}
        notes = {"beta3": "the decay of d, the average volatility of the loss"}
        params += [Param(k, k, settings[k], notes.get(k)) for k in rule.hyper]
        scale = {"mom": _state_size(r, "exp_avg")}  # an average of gradients, as torch's exp_avg
        for stage in rule.stages:
            cols += _pair(f"{stage.name}_<p>", f"{stage.name} <p>", _lesson(stage.formula),
                          r.state[stage.name], state=stage.name, start_input=True, r=r,
                          scale=scale.get(stage.name), comment=stage.note, fmt="sci")
        return params, cols + _new(r, _lesson(rule.new_value),
                                   "the lesson's eve: its adam's step divided by this epoch's d")
    else:  # adam, adam_ann
        params += [Param("beta1", "beta1", h.betas[0]), Param("beta2", "beta2", h.betas[1])]
        cols += _average(r, "mom", "beta1") + _average(r, "ms", "beta2")
        lr = "{$lr}"
        if opt == "adam_ann":
            params += [Param("ratio", "anneal if ratio >", ANNEAL_RATIO),
                       Param("divisor", "then lr divided by", ANNEAL_DIVISOR)]
            cols.append(Col("lr", "lr", "={@e_lr}", r.lr, fmt="general"))
            lr = "{lr}"
        step = "{mom_<p>}*" + lr + "/SQRT({ms_<p>})"
    return params, cols + _new(r, "={<p>}-" + step, "the lesson's update")


# The lesson's running averages, beta weighting the old: of the gradient, of its square.
AVERAGES = {"mom": "={mom_<p>-}*{$<beta>}+(1-{$<beta>})*{de_d<p>}",
            "ms": "={ms_<p>-}*{$<beta>}+(1-{$<beta>})*{de_d<p>}^2"}


def _average(r: LineRecords, name: str, beta: str, comment: str | None = None) -> list[Col]:
    """b's and a's columns of one of the lesson's averages, starting from its Reset value."""
    return _pair(f"{name}_<p>", f"{name} <p>", _sub(AVERAGES[name], beta=beta), r.state[name],
                 state=name, start_input=True, r=r, comment=comment, fmt="sci")


def _lesson(template: str) -> str:
    """A lesson rule's template (cfxl.sheets.rules) as a line sheet's column formula: b's or a's
    own column, de/d<p> for the gradient, the lr top cell, the epoch table's d."""
    def ref(kind: str, name: str, mod: str | None) -> str:
        if kind == "$":
            return f"(1-{{${name[2:]}}})" if name.startswith("1-") else f"{{${name}}}"
        own = {"param": "<p>", "dloss": "de_d<p>", "lr": "$lr", "d": "@e_d"}
        return "{" + own.get(name, f"{name}_<p>") + (mod or "") + "}"

    return "=" + render(template, ref)
