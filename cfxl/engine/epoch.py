"""One epoch of fit(): batches sliced from the epoch's permutation, each one's loss, backward,
optimizer and scheduler steps, and the squared errors summed; in a process group, this rank's
shard of every batch (cfxl.engine.distributed).

Lean on purpose: it runs once per batch, and at bs 4096 on one CPU thread a batch of the
row-sparse path takes under a millisecond, so every Python call and small tensor op here shows.
The squared errors are summed when the epoch ends (no GPU sync per batch). Where cfxl has the
batch step as compiled passes (cfxl.engine.compiled) it takes that instead of autograd's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cfxl.engine import distributed
from cfxl.engine.compiled import BatchStep


@dataclass
class Loop:
    """What every batch of a run uses: the model (and `stepped`, its DDP wrapper in a process
    group), the optimizers and schedulers, and a Recorder when the run is traced."""

    model: nn.Module
    opts: list[torch.optim.Optimizer]
    scheds: list = field(default_factory=list)
    world: distributed.World | None = None
    stepped: nn.Module | None = None
    recorder: object = None
    compiled: BatchStep | None = None  # the batch step as compiled passes, where there is one

    def __post_init__(self):
        if self.stepped is None:
            self.stepped = self.model


def run_epoch(loop: Loop, u: torch.Tensor, m: torch.Tensor, y: torch.Tensor,
              order: torch.Tensor, bs: int, *, desc: str = "",
              progress: bool | None = None) -> tuple[torch.Tensor, float]:
    """Train one pass over (u, m, y) in the epoch's order (a permutation of their positions),
    in batches of bs: (the squared errors summed, float64, this rank's; the lr of the last
    batch). Each batch is gathered when it is used: gathering the whole epoch first took a
    quarter of an epoch's time on the --sparse path (ml-1m's shape, one thread)."""
    starts = range(0, len(y), bs)
    bar = tqdm(starts, desc=desc, unit="batch", leave=False,
               disable=None if progress is None else not progress)
    shown = not bar.disable
    loop.stepped.train()
    group = loop.opts[0].param_groups[0]
    sses: list = []  # each batch's squared errors: () float64 tensors, or floats (compiled)
    lr = group["lr"]
    for k, i in enumerate(bar if shown else starts):
        batch = order[i:i + bs]  # (bs,)
        lr = group["lr"]
        if loop.compiled is not None:
            sses.append(loop.compiled(batch, u, m, y))
        else:
            sses.append(_autograd_step(loop, u[batch], m[batch], y[batch]))
        for s in loop.scheds:
            s.step()
        if shown and k % 50 == 49:
            bar.set_postfix(loss=f"{float(sum(sses[-50:])) / (50 * bs):.4f}")  # the last 50
    bar.close()
    if sses and isinstance(sses[0], float):
        return torch.tensor(sum(sses), dtype=torch.float64), lr
    return (torch.stack(sses).sum() if sses else torch.zeros((), dtype=torch.float64)), lr


def _autograd_step(loop: Loop, users: torch.Tensor, movies: torch.Tensor,
                   y: torch.Tensor) -> torch.Tensor:
    """One batch through autograd and torch.optim (or the row-sparse optimizers): its summed
    squared errors, float64, this rank's."""
    if loop.world is None:
        loss = F.mse_loss(loop.model(users, movies), y)
        sse = loss.detach().double() * len(y)
    else:
        loss, sse = distributed.shard_loss(loop.stepped, users, movies, y, loop.world)
    for o in loop.opts:
        o.zero_grad(set_to_none=True)
    loss.backward()
    if loop.recorder is not None:
        loop.recorder.before_step(loop.model, loop.opts[0], loss)
    for o in loop.opts:
        o.step()
    if loop.recorder is not None:
        loop.recorder.after_step(loop.model, loop.opts[0])
    return sse
