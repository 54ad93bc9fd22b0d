"""Training on several processes (DDP on gloo, 2 CPU processes): the run equals the single
process's with the same global batch, saves a checkpoint like any other, and a rank that fails
or dies stops the whole run with one line, well within the process group's timeout."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cfxl.engine import checkpoint, distributed
from cfxl.engine.launch import FAIL, fit_spawned, joined
from cfxl.engine.train import Config, fit
from cfxl.errors import CfxlError
from tolerance import assert_close

ROOT = Path(__file__).resolve().parents[1]
# float64, so that the two runs differ only by the order of their sums; bs 999: every batch
# splits unevenly over 2 ranks (500 and 499), which the loss's scaling must make exact
SETTINGS = ["--epochs", "3", "--bs", "999", "--dtype", "float64", "--device", "cpu", "-q"]
CONFIG = Config(epochs=3, bs=999, dtype="float64", device="cpu")
LIMIT = distributed.TIMEOUT.total_seconds()  # a failed run must end well before a hang would


def cfxl(*args, env=None, launcher=(sys.executable, "-m", "cfxl"), cwd):
    return subprocess.run([*launcher, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=LIMIT)


@pytest.fixture(scope="module")
def single(ratings):
    """The single-process run of the same settings, the one the DDP runs must equal."""
    return fit(CONFIG, ratings, progress=False)


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """`cfxl train --nproc 2 -o m.pt`: its output and the model file it saved."""
    folder = tmp_path_factory.mktemp("ddp")
    done = cfxl("train", "--nproc", "2", *SETTINGS, "-o", "m.pt", cwd=folder)
    return done, folder / "m.pt"


def assert_same_model(got, want):
    """The issue's bound: the validation RMSE within 0.005 of one process's. And the same run:
    one process and two add each gradient's terms in another order, which Adam's division by
    sqrt(exp_avg_sq) magnifies where a gradient nearly cancels, so the weights agree to a
    millionth of the table's largest (measured: 4e-8 after 3 epochs), while a shard or loss
    scaled wrongly (a gradient half or twice what it should be) moves them by percents."""
    assert abs(got.kept["val_rmse"] - want.kept["val_rmse"]) < 0.005
    assert [h["epoch"] for h in got.history] == [h["epoch"] for h in want.history]
    a, b = got.model.state_dict(), want.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        w = b[k].numpy()
        assert_close(a[k].numpy(), w, scale=np.abs(w).max(), rtol=1e-6, err_msg=k)


def test_two_processes_train_save_and_equal_one(two, single):
    done, path = two
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("(the embedded sample: synthetic, MovieLens-shaped)")
    assert lines[1].split() == ["epoch", "train_loss", "val_loss", "val_rmse", "lr", "seconds",
                                "best"]
    assert [line.split()[0] for line in lines[2:5]] == ["1", "2", "3"]  # rank 0's rows, once
    assert lines[-1] == f"saved {path.name}"
    trained = checkpoint.load(path)  # a checkpoint like any other
    losses = [h["train_loss"] for h in trained.history]
    assert losses[-1] < 0.5 * losses[0] and trained.kept["val_rmse"] < single.history[0]["val_rmse"]
    assert_same_model(trained, single)


def test_fit_spawned_returns_rank_0s_model(ratings, single):
    rows = []
    trained = fit_spawned(CONFIG, ratings, 2, progress=False, on_epoch=rows.append)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert_same_model(trained, single)
    assert np.allclose(trained.predict(ratings.users.ids[:5], ratings.movies.ids[:5]),
                       single.predict(ratings.users.ids[:5], ratings.movies.ids[:5]))


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun is not installed beside this Python")
def test_under_torchrun_rank_0_alone_prints_and_saves(two, tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    done = cfxl("train", *SETTINGS, "-o", "t.pt", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"},
                launcher=(torchrun, "--standalone", "--nproc-per-node", "2", "-m", "cfxl"))
    assert done.returncode == 0, done.stderr
    drop_seconds = lambda out: [line.split()[:4] for line in out.splitlines()]  # noqa: E731
    assert drop_seconds(done.stdout) == drop_seconds(two[0].stdout.replace("m.pt", "t.pt"))
    assert_same_model(checkpoint.load(tmp_path / "t.pt"), checkpoint.load(two[1]))


@pytest.mark.parametrize("fail, why", [("1", "failed on purpose (CFXL_FAIL_RANK=1)"),
                                       ("1:kill", "its process was killed (SIGKILL)")])
def test_a_failing_rank_stops_the_run_in_one_line(tmp_path, fail, why):
    done = cfxl("train", "--nproc", "2", *SETTINGS, "-o", "m.pt", cwd=tmp_path,
                env={FAIL: fail})
    assert done.returncode == 1
    assert done.stderr == f"cfxl: error: rank 1 of 2 failed: {why}; all ranks were stopped\n"
    assert not (tmp_path / "m.pt").exists()


def test_sparse_is_refused_before_any_process_starts(ratings):
    with pytest.raises(CfxlError, match="dense path: leave out --sparse"):
        fit_spawned(Config(sparse=True, device="cpu"), ratings, 2)


def test_nproc_under_torchrun_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(CfxlError, match="under torchrun leave it out"):
        with joined(CONFIG, nproc=2):
            pass


@pytest.mark.parametrize("env, want", [
    ({}, None),
    ({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, distributed.World(1, 4, 1)),
    ({"RANK": "5", "WORLD_SIZE": "8"}, distributed.World(5, 8, 5)),
])
def test_the_world_is_read_from_torchruns_environment(monkeypatch, env, want):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert distributed.from_env() == want


@pytest.mark.parametrize("env, message", [
    ({"RANK": "x", "WORLD_SIZE": "2"}, "must be whole numbers"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK 2 is not in 0..WORLD_SIZE-1"),
])
def test_a_bad_torchrun_environment_is_one_line(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(CfxlError, match=message):
        distributed.from_env()


def test_each_rank_takes_every_world_th_rating_of_a_batch():
    batch = np.arange(7)
    shards = [batch[distributed.World(r, 3, r).shard] for r in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == batch.tolist()
    assert [len(s) for s in shards] == [3, 2, 2]
