"""fit's compiled batch step (cfxl.engine.compiled) against autograd: EmbeddingDotBias's
gradients, and whole runs with and without it (--sparse and dense), in float64."""

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cfxl.data.ratings import read_ratings
from cfxl.engine import compiled, train
from cfxl.engine.models import EmbeddingDotBias
from cfxl.engine.train import Config, fit, make_optimizers
from tolerance import assert_close, running_size

pytestmark = pytest.mark.skipif(importlib.util.find_spec("numba") is None,
                                reason="numba not installed: --sparse takes autograd's step")


def test_the_compiled_pass_gives_autograds_gradient_rows():
    from cfxl.engine.dotbias_cpu import dotbias_grads

    torch.manual_seed(0)
    model = EmbeddingDotBias(9, 7, 4, y_range=(0.5, 5.0), sparse=True).double()
    for e in (model.u_weight, model.i_weight, model.u_bias, model.i_bias):
        e.weight.data.normal_(0, 0.6)  # predictions spread over the range, not all near its middle
    rng = np.random.default_rng(1)
    users, movies = torch.as_tensor(rng.integers(0, 9, 40)), torch.as_tensor(rng.integers(0, 7, 40))
    y = torch.as_tensor(rng.uniform(0.5, 5.0, 40))
    pred = model(users, movies)
    F.mse_loss(pred, y).backward()
    tables = [model.u_weight.weight, model.i_weight.weight, model.u_bias.weight, model.i_bias.weight]
    slots, rows = (np.full(9, -1), np.full(7, -1)), (np.empty(40, np.int64), np.empty(40, np.int64))
    got = [np.empty((40, k)) for k in (4, 4, 1, 1)]
    sse, r_u, r_m = dotbias_grads(np.arange(40), users.numpy(), movies.numpy(), y.numpy(),
                                  *[t.detach().numpy() for t in tables], 0.5, 4.5, 2 / 40,
                                  *slots, *rows, *got)
    assert (slots[0] == -1).all() and (slots[1] == -1).all()
    assert_close(sse, float(((pred - y) ** 2).sum().detach()), scale=float((y ** 2).sum()))
    touched = {0: rows[0][:r_u], 1: rows[1][:r_m], 2: rows[0][:r_u], 3: rows[1][:r_m]}
    lookups = (users, movies, users, movies)
    for n, t in enumerate(tables):
        want = t.grad.coalesce().to_dense().numpy()
        mine = np.zeros_like(want)
        mine[touched[n]] = got[n][:len(touched[n])]
        assert sorted(touched[n]) == sorted(set(lookups[n].tolist()))
        # a row's gradient sums its lookups' terms: judged against the size of the largest
        assert_close(mine, want, scale=np.abs(want).max())


@pytest.fixture(scope="module")
def ratings(tmp_path_factory):
    rng = np.random.default_rng(5)
    rows = [f"{u},{m},{rng.integers(1, 11) / 2},0" for u in range(40) for m in rng.choice(30, 12, replace=False)]
    path = tmp_path_factory.mktemp("fit") / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    return read_ratings(path)


@pytest.mark.parametrize("opt, sparse", [("adam", True), ("adamw", True), ("momentum", True),
                                         ("adam", False), ("adamw", False), ("rmsprop", False)])
def test_a_compiled_run_is_autograds_run(ratings, opt, sparse, monkeypatch):
    """A whole fit, one-cycle schedule and weight decay included, with the compiled step and
    with autograd's: the same parameters at the end, in float64; --sparse with the row-sparse
    optimizers, the dense path with torch.optim's own."""
    config = Config(model="dotbias", n_factors=5, opt=opt, lr=0.02, bs=16, epochs=2,
                    weight_decay=1e-3, sparse=sparse, dtype="float64", device="cpu",
                    keep_best=False)
    model = fit(config, ratings, progress=False).model
    assert compiled.compiled_step(model, make_optimizers(config, model), 16) is not None
    monkeypatch.setattr(train, "compiled_step", lambda *a: None)
    reference = fit(config, ratings, progress=False).model
    for name, want in reference.state_dict().items():
        got = model.state_dict()[name].numpy()
        assert_close(got, want.numpy(), scale=np.abs(want.numpy()).max(), err_msg=name)


def test_other_runs_take_autograds_step(ratings):
    for kw in (dict(model="dot"), dict(opt="adagrad"), dict(model="net"), dict(model="dot", sparse=False)):
        config = Config(**{**dict(model="dotbias", n_factors=3, sparse=True, device="cpu"), **kw})
        _, _, _, model = train.start(config, ratings)
        assert compiled.compiled_step(model, make_optimizers(config, model), 64) is None, kw


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_evaluation_is_torchs_forward(dtype):
    """evaluate() on EmbeddingDotBias (CPU) takes the compiled forward pass: the MSE torch's
    forward gives, to the roundings of its dtype (the dot product is summed in another order)."""
    from cfxl.engine import evaluate as evaluation

    torch.manual_seed(2)
    model = EmbeddingDotBias(50, 40, 20, y_range=(0.5, 5.0)).to(dtype)
    for e in (model.u_weight, model.i_weight, model.u_bias, model.i_bias):
        e.weight.data.normal_(0, 0.5)
    users, movies = torch.randint(0, 50, (3000,)), torch.randint(0, 40, (3000,), dtype=torch.int32)
    y = (torch.randint(1, 11, (3000,)) / 2).to(dtype)
    assert compiled.compiled_sse(model) is not None
    got = evaluation.evaluate(model, users, movies, y)
    with torch.no_grad():
        want = float(((model(users, movies.long()) - y).double() ** 2).mean())
    eps = float(torch.finfo(dtype).eps)
    assert_close(got, want, scale=want, rtol=100 * eps)
    assert compiled.compiled_sse(EmbeddingDotBias(5, 4, 3).to(torch.bfloat16)) is None
