"""Data-parallel training's pieces that fit() uses: which rank this is, its shard of a batch,
sums over ranks, the DDP wrapper; they do nothing outside a process group.

One global batch of `bs` ratings per step, as a single process takes it, split over the ranks
(rank r takes every world-th rating of it); each rank's loss is its squared errors over the
global batch's size, times the world size, so DDP's average of the ranks' gradients is the
gradient of the whole batch's mean: the same step a single process takes, up to summation order.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from cfxl.errors import CfxlError
from cfxl.engine.evaluate import evaluate

# A collective that waits longer than this for a rank stops the run with an error rather than
# hang: a rank that is gone (killed, its machine down) is noticed within it. Long enough for a
# slow rank's epoch-end work (validation, a checkpoint's copy) between two collectives.
TIMEOUT = dt.timedelta(seconds=60)
# Sparse gradients would need an all-gather of indices and values (gloo only; NCCL has no
# sparse all-reduce) and SparseAdam's lazy state; docs/scale.md says why the dense path instead.
DENSE_ONLY = "training on several processes takes the dense path: leave out --sparse"


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: torchrun's RANK, WORLD_SIZE and
    LOCAL_RANK (the rank among this machine's processes, which picks its GPU)."""

    rank: int
    size: int
    local_rank: int

    @property
    def shard(self) -> slice:
        """This rank's part of a batch: every size-th rating, starting at its rank."""
        return slice(self.rank, None, self.size)

    def device(self, device: torch.device) -> torch.device:
        """The device this rank trains on: its own GPU (LOCAL_RANK) where the run is on CUDA."""
        if device.type == "cpu":
            return device
        if device.type != "cuda":
            raise CfxlError(f"training on several processes runs on cpu or cuda, not {device.type}")
        if self.local_rank >= (n := torch.cuda.device_count()):
            raise CfxlError(f"rank {self.rank} is process {self.local_rank} on its machine, but "
                            f"torch sees {n} CUDA GPU(s) there: one process per GPU")
        return torch.device("cuda", self.local_rank)


def from_env() -> World | None:
    """The World torchrun (or cfxl's own launcher) describes in the environment; None when the
    process was started alone."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise CfxlError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets "
                        "them)") from None
    if not 0 <= rank < size:
        raise CfxlError(f"RANK {rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE {size})")
    return World(rank, size, local)


def current() -> World | None:
    """The World of the process group this process joined; None outside one (one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    rank = dist.get_rank()
    return World(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank)))


def backend(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPUs."""
    return "nccl" if device.type == "cuda" else "gloo"


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model under DistributedDataParallel: its gradients averaged over the ranks in
    backward, so every rank's optimizer takes the same step and the replicas stay equal."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard_loss(model: nn.Module, users: torch.Tensor, movies: torch.Tensor, y: torch.Tensor,
               world: World) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss this rank backpropagates, its squared errors' sum as float64) for its shard
    of the global batch (users, movies, y): the loss is scaled so that DDP's mean over ranks
    is the global batch's mean squared error (see the module's docstring)."""
    mine = world.shard
    sse = F.mse_loss(model(users[mine], movies[mine]), y[mine], reduction="sum")  # ()
    return sse * (world.size / len(y)), sse.detach().double()


def sum_over(world: World | None, t: torch.Tensor) -> torch.Tensor:
    """t summed over the ranks (every rank gets the sum); t itself outside a process group."""
    if world is None:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t


def evaluate_over(world: World | None, model: nn.Module, u: torch.Tensor, m: torch.Tensor,
                  y: torch.Tensor) -> float:
    """The mean squared error over all the ratings given, each rank evaluating its shard and
    the sums and counts added over the ranks; every rank gets the same number."""
    if world is None:
        return evaluate(model, u, m, y)
    mine = world.shard
    n = len(y[mine])
    sums = torch.tensor([evaluate(model, u[mine], m[mine], y[mine]) * n, n],
                        dtype=torch.float64, device=y.device)  # (2,): squared errors, count
    sums = sum_over(world, sums)
    return float(sums[0]) / max(float(sums[1]), 1.0)
