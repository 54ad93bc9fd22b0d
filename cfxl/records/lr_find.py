"""The lr finder's run (cfxl.engine.lr_find) as the records its sheet, plot and text show."""

from __future__ import annotations

from cfxl.engine.lr_find import DIVERGED, LrFind, moving_average
from cfxl.engine.train import Config
from cfxl.records.types.lr_find import LrFindRecords


def lr_find_records(found: LrFind, config: Config) -> LrFindRecords:
    """The run's steps with both halves of fastai's smoothing, its suggestion, and what ran."""
    c = config
    ended = (f"stopped at step {len(found.lr)} of {found.steps}: the smoothed loss passed "
             f"{DIVERGED:g} times its lowest" if found.diverged else f"ran all {found.steps} steps")
    return LrFindRecords(
        lr=found.lr, loss=found.loss, average=moving_average(found.loss, found.beta),
        smooth=found.smooth, beta=found.beta, suggestion=found.suggestion,
        suggested=found.suggested, rule=found.rule, ended=ended,
        label=(f"{c.model}, {c.n_factors} factors, {c.opt}, batch size {c.bs}, weight decay "
               f"{c.weight_decay:g}, lr from {found.start:g} towards {found.end:g}"))
