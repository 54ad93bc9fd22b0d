"""cfxl on a CUDA GPU equals cfxl on the CPU: the model's forward pass, fit (dense and --sparse,
whose row-sparse optimizer runs torch's ops there), the Recorder and the exported tables, each
compared at a tolerance from the size of what they are computed from. Marked `cuda`: skipped,
saying so, where torch sees no GPU. benchmarks/gpu_speed.py's arguments and its refusal without
a GPU are checked on any machine."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cfxl.data.ratings import read_ratings
from cfxl.engine.models import make_model
from cfxl.engine.rowsparse import row_sparse_optimizer
from cfxl.engine.trace import Recorder
from cfxl.engine.train import Config, fit
from cfxl.records.model_tables import model_tables
from tolerance import assert_close

EPS64 = float(np.finfo(np.float64).eps)


def gpu(test):
    """Marked `cuda`, and skipped, saying why, where torch sees no GPU."""
    reason = "torch sees no CUDA GPU: the CUDA path is tested where one is (pytest -m cuda)"
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason=reason)(test))


def gpu_speed():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_speed.py"
    spec = importlib.util.spec_from_file_location("gpu_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_speed_parses_its_batch_sizes_and_refuses_non_cuda_devices():
    bench = gpu_speed()
    args = bench.parse(["--bs", "1024,65536", "--shape", "ml-1m", "--epochs", "3"])
    assert (args.bs, args.shape, args.epochs, args.device) == ([1024, 65536], "ml-1m", 3, "cuda")
    assert bench.parse([]).bs == [16_384, 65_536, 262_144]
    for bad in (["--bs", "12,x"], ["--bs", "0"], ["--epochs", "0"], ["--device", "cpu"]):
        with pytest.raises(SystemExit):
            bench.parse(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_gpu_speed_refuses_in_one_line_without_a_gpu(capsys):
    assert gpu_speed().main(["--shape", "ml-1m"]) == 1
    err = capsys.readouterr().err.strip()
    assert "sees no CUDA device" in err and len(err.splitlines()) == 1


@pytest.fixture(scope="module")
def ratings():
    return read_ratings()  # the embedded sample


def quick(**kw) -> Config:
    """A short float64 run: the GPU's and the CPU's rounding differ by a few units of float64's
    last place per operation, far inside the tolerance below."""
    base = dict(model="dotbias", n_factors=8, bs=4096, epochs=2, dtype="float64", keep_best=False)
    return Config(**{**base, **kw})


def steps_of(config: Config, ratings) -> int:
    n_train = len(ratings) - int(len(ratings) * config.val_pct)
    return config.n_epochs * -(-n_train // config.bs)


def assert_same_model(gpu, cpu, steps: int) -> None:
    """Parameters equal within float64 rounding accumulated over the steps, relative to each
    tensor's largest value."""
    for name, want in cpu.state_dict().items():
        got = gpu.state_dict()[name].cpu().numpy()
        want = want.numpy()
        assert_close(got, want, scale=np.abs(want).max(), rtol=64 * steps * EPS64, err_msg=name)


@gpu
@pytest.mark.parametrize("model", ["dot", "dotbias", "net"])
def test_the_forward_pass_on_the_gpu_is_the_cpus(model):
    torch.manual_seed(0)
    net = make_model(model, 50, 40, 8, y_range=(0.5, 5.0)).double().eval()
    u, m = torch.randint(0, 50, (300,)), torch.randint(0, 40, (300,))
    want = net(u, m).detach().numpy()
    got = net.cuda()(u.cuda(), m.cuda()).detach().cpu().numpy()
    assert_close(got, want, scale=np.abs(want).max(), rtol=64 * EPS64)


@gpu
@pytest.mark.parametrize("kw", [dict(), dict(sparse=True), dict(opt="adamw", sparse=True),
                                dict(model="net"), dict(opt="momentum", schedule="sgdr")])
def test_fit_on_the_gpu_is_fit_on_the_cpu(ratings, kw):
    config = quick(**kw)
    gpu = fit(replace(config, device="cuda"), ratings, progress=False)
    cpu = fit(replace(config, device="cpu"), ratings, progress=False)
    assert gpu.device.startswith("cuda") and next(gpu.model.parameters()).is_cuda
    assert_same_model(gpu.model, cpu.model, steps_of(config, ratings))
    for g, c in zip(gpu.history, cpu.history):
        assert_close(g["val_loss"], c["val_loss"], rtol=64 * steps_of(config, ratings) * EPS64)


@gpu
def test_the_row_sparse_optimizer_runs_torchs_ops_on_the_gpu():
    """The same lazy Adam steps on CUDA tables as on CPU ones (torch's ops on both)."""
    tables = []
    for device in ("cuda", "cpu"):
        torch.manual_seed(0)
        table = torch.nn.Embedding(30, 4, sparse=True).double().to(device)
        opt = row_sparse_optimizer("adam", [table.weight], lr=0.05, weight_decay=0.01,
                                   fused=False)
        gen = torch.Generator().manual_seed(1)
        for _ in range(20):
            idx = torch.randint(0, 30, (12,), generator=gen).to(device)
            opt.zero_grad()
            ((table(idx) - 1.0) ** 2).sum().backward()
            opt.step()
        tables.append(table.weight.detach().cpu().numpy())
    assert_close(tables[0], tables[1], scale=np.abs(tables[1]).max(), rtol=64 * 20 * EPS64)


@gpu
def test_the_recorder_on_the_gpu_records_the_cpus_steps(ratings):
    config = quick(epochs=1, bs=8192, opt="adam")
    traces = [fit(replace(config, device=d), ratings, progress=False,
                  recorder=Recorder({"u_weight": [0, 1], "i_bias": [0]})).trace
              for d in ("cuda", "cpu")]
    steps = traces[1].n_steps
    assert traces[0].n_steps == steps
    assert_close(traces[0].loss, traces[1].loss, rtol=64 * steps * EPS64)
    for name, want in traces[1].params.items():
        got = traces[0].params[name]
        for field in ("value", "grad", "value_after"):
            w = getattr(want, field)
            assert_close(getattr(got, field), w, scale=np.abs(w).max(),
                         rtol=64 * steps * EPS64, err_msg=f"{name}.{field}")
        for key, w in want.state.items():
            assert_close(got.state[key], w, scale=np.abs(w).max(), rtol=64 * steps * EPS64,
                         err_msg=f"{name}.{key}")


@gpu
def test_the_exported_tables_of_a_gpu_model_are_the_cpus(ratings):
    config = quick()
    tables = [model_tables(fit(replace(config, device=d), ratings, progress=False), ratings,
                           date="2026-01-01") for d in ("cuda", "cpu")]
    steps = steps_of(config, ratings)
    for name in ("users", "movies", "predictions"):
        got, want = getattr(tables[0], name), getattr(tables[1], name)
        assert list(got.columns) == list(want.columns)
        for col in want.select_dtypes("number").columns:
            w = want[col].to_numpy(dtype=np.float64)
            assert_close(got[col].to_numpy(dtype=np.float64), w, scale=np.abs(w).max(),
                         rtol=64 * steps * EPS64, err_msg=f"{name}.{col}")


@gpu
def test_export_on_the_gpu_writes_the_workbook(tmp_path):
    from click.testing import CliRunner

    from cfxl.cli import cli

    book = tmp_path / "collab.xlsx"
    result = CliRunner().invoke(cli, ["export", "--device", "cuda", "--epochs", "1", "-o",
                                      str(book)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert book.stat().st_size > 0
