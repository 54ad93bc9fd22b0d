"""torch.optim's update rules as formula templates: one table, rendered by every sheet family
(and, apart, the lesson's Eve, which torch lacks).

A rule is one optimizer's `_single_tensor_*` step in torch's order of operations
(torch/optim/sgd.py, adagrad.py, rmsprop.py, adam.py): named stages, the gradient with weight
decay first, then the state under torch's names, then the step the parameter moves by. The new
value is `{param}-step`: torch adds the step times -lr (param.add_(grad, alpha=-lr),
param.addcdiv_(..., value=-step_size)) and negating is exact. AdamW (adam.py with
decoupled_weight_decay) keeps the decay out of the gradient: the parameter itself shrinks
first, param.mul_(1 - lr*weight_decay), and the step is taken from that (`Rule.base`). A sheet
that follows the templates rounds where torch rounds, except where torch's CPU kernels fuse a
multiply and an add into one rounding (add_ with alpha, lerp_, addcmul_): there the two may
differ in the last bit.

Tokens:
  {name}   this step's quantity of one element: `param` (its value before the step), `dloss`
           (the loss's gradient, autograd's), `grad` (what the optimizer uses), `step` (torch's
           count, 1 at the first step), `lr`, or a stage's value
  {name-}  the same quantity at the previous step
  {$h}     the hyperparameter h; {$1-h} is 1 - h, as torch computes it, before use
Each family gives the tokens its meaning through `render`: the previous step is the row above on
the line sheets, n_elements rows up on the cf_* sheets, one band up on the train sheet; a
hyperparameter is a top cell, a hyper cell or a sheet-level name. The line sheets' own columns
add `{@x}` (a data sheet cell) and `{name:prev_epoch}` (a column over the previous epoch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

TOKEN = re.compile(r"\{([$@]?)((?:1-)?\w+)(-|:prev_epoch)?\}")
# One value per step, the same for every element.
SHARED = ("step", "lr", "bias_correction1", "bias_correction2")


@dataclass(frozen=True)
class Stage:
    """One quantity torch computes in a step, as a template over the tokens."""

    name: str     # torch's name: optimizer.state's key for a state
    formula: str
    note: str     # what torch's code does, in the sheets' words


@dataclass(frozen=True)
class Rule:
    """One optimizer's update: its hyperparameters besides lr and weight_decay, its stages in
    torch's order, the step subtracted, and what it is subtracted from (`base`: the parameter,
    or AdamW's parameter after its decoupled decay)."""

    hyper: tuple[str, ...]
    stages: tuple[Stage, ...]
    step: str
    base: str = "{param}"

    @property
    def new_value(self) -> str:
        return self.base + "-" + self.step

    @property
    def decoupled(self) -> bool:
        """Whether weight decay shrinks the parameter (AdamW) rather than adding to the gradient."""
        return "{$weight_decay}" in self.base

    @property
    def states(self) -> tuple[str, ...]:
        """The stages each element keeps from step to step (momentum_buffer, exp_avg, ...)."""
        return tuple(s.name for s in self.stages if s.name != "grad" and s.name not in SHARED)

    def reads(self, token: str) -> bool:
        """Whether a template of the rule holds token, e.g. '{step}' or '{$1-beta1}'."""
        return any(token in t for t in (self.base, self.step, *(s.formula for s in self.stages)))


# grad = grad.add(param, alpha=weight_decay): L2, the weight_decay times the value added first
GRAD = Stage("grad", "{dloss}+{$weight_decay}*{param}",
             "the gradient the optimizer uses: de/d. + weight_decay * value")

# AdamW: the gradient as autograd gives it; the decay acts on the parameter (DECAY) instead
PLAIN_GRAD = Stage("grad", "{dloss}",
                   "the gradient the optimizer uses: de/d. itself (AdamW decays the value instead)")
# param.mul_(1 - lr * weight_decay) before Adam's step; 1 - lr*weight_decay is a Python float
DECAY = "{param}*(1-{lr}*{$weight_decay})"
# Adam's moments and step, as adam.py computes them after the gradient (shared by AdamW)
ADAM_STAGES = (
    Stage("exp_avg", "{exp_avg-}+{$1-beta1}*({grad}-{exp_avg-})",
          "exp_avg.lerp_(grad, 1-beta1) = exp_avg + (1-beta1)*(grad-exp_avg)"),
    Stage("exp_avg_sq", "{exp_avg_sq-}*{$beta2}+{$1-beta2}*{grad}*{grad}",
          "exp_avg_sq = exp_avg_sq*beta2 + (1-beta2)*grad^2"),
    # Python floats in torch: 1 - beta1 ** step
    Stage("bias_correction1", "1-{$beta1}^{step}", "1 - beta1^step"),
    Stage("bias_correction2", "1-{$beta2}^{step}", "1 - beta2^step"),
)
# step_size = lr / bc1; denom = exp_avg_sq.sqrt() / bc2 ** 0.5 + eps;
# param.addcdiv_(exp_avg, denom, value=-step_size): (step_size * exp_avg) / denom
ADAM_STEP = "{lr}/{bias_correction1}*{exp_avg}/(SQRT({exp_avg_sq})/{bias_correction2}^0.5+{$eps})"

RULES = {
    "sgd": Rule((), (GRAD,), "{lr}*{grad}"),
    "momentum": Rule(("momentum",), (
        GRAD,
        # buf.mul_(momentum).add_(grad); torch's first buf is a clone of grad, and 0*momentum + grad
        # is grad exactly, so the empty state can be a zero like every other state
        Stage("momentum_buffer", "{momentum_buffer-}*{$momentum}+{grad}",
              "buf = buf*momentum + grad (dampening 0; the first step's buf is grad itself, as "
              "0*momentum + grad)"),
    ), "{lr}*{momentum_buffer}"),
    "adagrad": Rule(("eps",), (
        GRAD,
        # state_sum.addcmul_(grad, grad, value=1); std = state_sum.sqrt().add_(eps); the step
        # size lr / (1 + (step - 1) * lr_decay) is lr itself at lr_decay 0
        Stage("sum", "{sum-}+{grad}*{grad}", "sum = sum + grad^2 (initial_accumulator_value 0)"),
    ), "{lr}*{grad}/(SQRT({sum})+{$eps})"),
    "rmsprop": Rule(("alpha", "eps"), (
        GRAD,
        # square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        Stage("square_avg", "{square_avg-}*{$alpha}+{$1-alpha}*{grad}*{grad}",
              "square_avg = square_avg*alpha + (1-alpha)*grad^2"),
    ), "{lr}*{grad}/(SQRT({square_avg})+{$eps})"),
    "adam": Rule(("beta1", "beta2", "eps"), (GRAD, *ADAM_STAGES), ADAM_STEP),
    "adamw": Rule(("beta1", "beta2", "eps"), (PLAIN_GRAD, *ADAM_STAGES), ADAM_STEP, base=DECAY),
}


# The lesson's Eve (lesson-workbooks.md §3.9), which torch.optim lacks, in the same language: its
# adam (averages weighted by 1 - beta, no bias correction, no eps) with the step also divided by
# {d}, the loss's volatility, one value per epoch. Before each epoch's rows, EVE_EPOCH gives r
# from the two losses before it, {ft_1} and {ft_2}, and d as r's running average.
LESSON_RULES = {
    "eve": Rule(("beta1", "beta2", "beta3"), (
        Stage("mom", "{mom-}*{$beta1}+{$1-beta1}*{dloss}", "mom = mom*beta1 + (1-beta1)*grad"),
        Stage("ms", "{ms-}*{$beta2}+{$1-beta2}*{dloss}^2", "ms = ms*beta2 + (1-beta2)*grad^2"),
    ), "{mom}*{lr}/SQRT({ms})/{d}"),
}
EVE_EPOCH = (
    Stage("r", "ABS({ft_1}-{ft_2})/MIN({ft_1},{ft_2})",
          "the loss's volatility: |ft-1 - ft-2| / min(ft-1, ft-2)"),
    Stage("d", "{d-}*{$beta3}+{$1-beta3}*{r}",
          "d = d*beta3 + (1-beta3)*r; the step is divided by d"),
)


def render(template: str, ref: Callable[[str, str, str | None], str]) -> str:
    """The template with each token replaced by ref(kind, name, mod): kind '$' for a
    hyperparameter ('' for a quantity), mod '-' for the previous step (else None)."""
    return TOKEN.sub(lambda m: ref(*m.groups()), template)
