"""Training on several processes: N local workers spawned and watched (`cfxl train --nproc N`),
or this process joining the group torchrun started; one process group, gloo or NCCL.

The parent of spawned workers trains nothing: it prints what rank 0 sends (each epoch's row,
then the trained model), and the moment a worker fails or dies it stops the others and says
which rank failed and why, in one line. Under torchrun, torchrun watches the processes, and the
group's timeout (distributed.TIMEOUT) turns a rank that went missing into an error, not a hang.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from cfxl.data.ratings import Ratings
from cfxl.errors import CfxlError
from cfxl.engine import distributed
from cfxl.engine.models import make_model
from cfxl.engine.train import Config, Trained, fit, resolve_device

FAIL = "CFXL_FAIL_RANK"  # "R" fails rank R at its first epoch's end, "R:kill" kills it: for tests


@contextlib.contextmanager
def process_group(world: distributed.World, config: Config):
    """This process in the group of world.size ranks (rendezvous: MASTER_ADDR and MASTER_PORT,
    as torchrun sets them), on the backend for the config's device; left at the end."""
    device = world.device(resolve_device(config.device))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(distributed.backend(device), rank=world.rank,
                            world_size=world.size, timeout=distributed.TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def joined(config: Config, nproc: int = 1):
    """Under torchrun (RANK and WORLD_SIZE set): this process in torchrun's group for the body,
    yielding its World; started alone: nothing to join, None."""
    world = distributed.from_env()
    if world is None:
        yield None
        return
    if nproc > 1:
        raise CfxlError(f"--nproc {nproc} starts processes of its own; under torchrun leave it "
                        "out (torchrun's --nproc-per-node says how many)")
    with process_group(world, config):
        yield world


def fit_spawned(config: Config, ratings: Ratings, nproc: int, *, progress: bool | None = None,
                on_epoch=None) -> Trained:
    """fit() on nproc local worker processes (DDP), the model rank 0 ends with returned here;
    on_epoch(row) sees rank 0's rows as they come. A worker that fails or dies stops all of
    them: a CfxlError naming the rank and its error."""
    if nproc < 1:
        raise CfxlError(f"--nproc must be at least 1, not {nproc}")
    if config.sparse:  # said here, before any process starts, as fit says it under torchrun
        raise CfxlError(distributed.DENSE_ONLY)
    last = distributed.World(nproc - 1, nproc, nproc - 1)
    last.device(resolve_device(config.device))  # one GPU each: refused before any process starts
    ctx = mp.get_context("spawn")  # a fresh interpreter: no forked torch threads or CUDA state
    threads = max(1, torch.get_num_threads() // nproc)  # the workers share this process's cores
    port = _free_port()
    pipes = [ctx.Pipe(duplex=False) for _ in range(nproc)]  # (ours, the worker's): no locks
    workers = [ctx.Process(target=_worker, daemon=True, args=(
        rank, nproc, port, threads, config, ratings, progress, pipes[rank][1]))
        for rank in range(nproc)]
    for w, (_, theirs) in zip(workers, pipes):
        w.start()
        theirs.close()  # the worker's end lives in the worker: its death is then our EOF
    failures: dict[int, tuple[int, str]] = {}  # rank: (how telling, its one line)
    result, listening = [], {ours: rank for rank, (ours, _) in enumerate(pipes)}

    def collect(timeout: float) -> None:  # what the workers sent; how those that ended ended
        for conn in mp.connection.wait([*listening, *(w.sentinel for w in workers)], timeout):
            if conn not in listening:
                continue
            try:
                kind, *body = conn.recv()
            except EOFError:
                del listening[conn]
                continue
            if kind == "epoch" and on_epoch is not None:
                on_epoch(*body)
            elif kind == "done":
                result[:] = body
            elif kind == "failed":
                failures[listening[conn]] = tuple(body)
        for rank, w in enumerate(workers):
            if w.exitcode not in (None, 0) and rank not in failures:
                failures[rank] = (1, _death(w.exitcode))
    try:
        while not failures and (listening or any(w.exitcode is None for w in workers)):
            collect(timeout=1.0)
        if failures:  # a moment for the rank that failed first to say so, or to be seen dead
            collect(timeout=1.0)
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
        for w in workers:
            w.join()
        for ours, _ in pipes:
            ours.close()
    if failures:  # the root cause first: a rank's own error, then a death, then a lost peer
        rank, (_, why) = min(failures.items(), key=lambda f: (f[1][0], f[0]))
        raise CfxlError(f"rank {rank} of {nproc} failed: {why}; all ranks were stopped")
    if not result:
        raise CfxlError(f"the {nproc} training processes ended without a model")
    return _rebuilt(*result)


def _worker(rank: int, nproc: int, port: int, threads: int, config: Config, ratings: Ratings,
            progress, home) -> None:
    """One rank of fit_spawned: in the group, fit, rank 0 sending its rows and model home."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank))
    torch.set_num_threads(threads)
    tqdm.set_lock(threading.RLock())  # not its default, a named semaphore a killed rank leaks
    fail = os.environ.get(FAIL, "").split(":")

    def on_epoch(row):
        if fail[0] == str(rank) and row["epoch"] == 1:
            if fail[1:] == ["kill"]:
                os.kill(os.getpid(), signal.SIGKILL)
            raise CfxlError(f"failed on purpose ({FAIL}={rank})")
        if rank == 0:
            home.send(("epoch", row))
    try:
        with process_group(distributed.World(rank, nproc, rank), config):
            trained = fit(config, ratings, progress=progress if rank == 0 else False,
                          on_epoch=on_epoch)
        if rank == 0:
            state = {k: v.detach().cpu().numpy() for k, v in trained.model.state_dict().items()}
            home.send(("done", dataclasses.replace(trained, model=None), state))
    except BaseException as e:  # noqa: B036 (a worker's every ending is reported home)
        home.send(("failed", _telling(e), _one_line(e)))
        sys.exit(1)


def _telling(e: BaseException) -> int:
    """How well an error says what went wrong: 0 a rank's own, 2 a rank that lost a peer (the
    collective it waited in broke or timed out), so that the root cause is the one reported."""
    lost = (getattr(dist, "DistError", RuntimeError), RuntimeError)
    return 0 if isinstance(e, CfxlError) or not isinstance(e, lost) else 2


def _one_line(e: BaseException) -> str:
    if isinstance(e, CfxlError):
        return str(e)
    text = str(e).strip().splitlines()
    return type(e).__name__ + (f": {text[0][:300]}" if text else "")


def _death(exitcode: int) -> str:
    if exitcode < 0:
        return f"its process was killed ({signal.Signals(-exitcode).name})"
    return f"its process exited with status {exitcode}"


def _rebuilt(trained: Trained, state: dict) -> Trained:
    """The model rank 0 sent (its weights as numpy arrays: by value, not shared memory that
    ends with its process), rebuilt here."""
    c = trained.config
    model = make_model(c.model, len(trained.users), len(trained.movies), c.n_factors,
                       y_range=trained.y_range, nh=c.nh, p1=c.p1, p2=c.p2)
    model.to(dtype=getattr(torch, c.dtype)).load_state_dict(
        {k: torch.from_numpy(v) for k, v in state.items()})
    return dataclasses.replace(trained, model=model)


def _free_port() -> int:
    """A TCP port free now on this machine, for rank 0's rendezvous store."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
