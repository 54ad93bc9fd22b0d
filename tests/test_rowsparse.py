"""The row-sparse optimizers against torch.optim: its dense rules on rows touched every step, its
SparseAdam's lazy semantics on rows touched sometimes, in float64, with torch's ops and with the
compiled CPU pass (numba, when installed)."""

import copy
import importlib.util
import sys

import numpy as np
import pytest
import torch
from torch import nn

import cfxl.engine
from cfxl.engine.rowsparse import (RowSparseAdagrad, RowSparseAdam, RowSparseSGD,
                                   row_sparse_optimizer)
from cfxl.engine.train import Config, make_optimizers
from cfxl.errors import CfxlError
from tolerance import assert_close, running_size

N_ROWS, K, STEPS = 7, 3, 25
HAS_NUMBA = importlib.util.find_spec("numba") is not None
FUSED = [False, pytest.param(True, marks=pytest.mark.skipif(not HAS_NUMBA,
                                                           reason="numba not installed"))]
# cfxl's name -> (torch.optim's dense rule, its settings); the same settings build ours
RULES = {
    "sgd": (torch.optim.SGD, dict(lr=0.3, momentum=0.0, weight_decay=0.01)),
    "momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    "adam": (torch.optim.Adam, dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.01)),
    "adamw": (torch.optim.AdamW, dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    "adagrad": (torch.optim.Adagrad, dict(lr=0.3, eps=1e-6, weight_decay=0.01)),
}


def batches(touch_all: bool) -> list[torch.Tensor]:
    """Index batches with repeats; touch_all: every row in every batch."""
    rng = np.random.default_rng(3)
    out = []
    for _ in range(STEPS):
        extra = rng.integers(0, N_ROWS, 6)
        idx = np.concatenate([rng.permutation(N_ROWS), extra]) if touch_all else extra
        out.append(torch.as_tensor(idx))
    return out


def target(idx: torch.Tensor) -> torch.Tensor:
    return torch.linspace(-1.0, 2.0, len(idx) * K, dtype=torch.float64).reshape(len(idx), K)


def train(optimizer_for, idx_batches, *, sparse: bool):
    """The table after each step of a squared loss on the rows each batch looks up, and the
    optimizer (for its state)."""
    torch.manual_seed(0)
    table = nn.Embedding(N_ROWS, K, sparse=sparse).double()
    opt = optimizer_for([table.weight])
    trajectory = []
    for idx in idx_batches:
        opt.zero_grad(set_to_none=True)
        ((table(idx) - target(idx)) ** 2).sum().backward()
        opt.step()
        trajectory.append(table.weight.detach().clone().numpy())
    return np.stack(trajectory), opt  # (steps, n_rows, k)


def state(opt, name: str) -> np.ndarray:
    [s] = opt.state.values()
    return s[name].numpy()


@pytest.mark.parametrize("fused", FUSED)
@pytest.mark.parametrize("rule", list(RULES))
def test_rows_touched_every_step_follow_torchs_dense_rule(rule, fused):
    cls, kw = RULES[rule]
    ours, mine = train(lambda p: row_sparse_optimizer(rule, p, fused=fused, **kw),
                       batches(touch_all=True), sparse=True)
    theirs, torchs = train(lambda p: cls(p, foreach=False, **kw), batches(touch_all=True),
                           sparse=False)
    assert_close(ours, theirs, scale=running_size(theirs), err_msg=f"{rule} parameters")
    names = {"sgd": [], "momentum": ["momentum_buffer"], "adagrad": ["sum"]}.get(
        rule, ["exp_avg", "exp_avg_sq"])
    for name in names:
        assert_close(state(mine, name), state(torchs, name),
                     scale=np.abs(state(torchs, name)).max(), err_msg=name)
    [s] = mine.state.values()
    assert s["step"] == STEPS and set(s) == {"step", *names}


@pytest.mark.parametrize("fused", FUSED)
def test_rows_touched_sometimes_follow_sparse_adams_lazy_rule(fused):
    """Untouched rows keep their moments; bias corrections count every step, as SparseAdam's.
    eps tiny: SparseAdam adds it before dividing by sqrt(bias_correction2), torch's Adam after."""
    kw = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-30)
    ours, mine = train(lambda p: RowSparseAdam(p, fused=fused, **kw), batches(touch_all=False),
                       sparse=True)
    theirs, torchs = train(lambda p: torch.optim.SparseAdam(p, **kw), batches(touch_all=False),
                           sparse=True)
    assert_close(ours, theirs, scale=running_size(theirs))
    for name in ("exp_avg", "exp_avg_sq"):
        assert_close(state(mine, name), state(torchs, name),
                     scale=np.abs(state(torchs, name)).max(), err_msg=name)
    untouched = sorted(set(range(N_ROWS)) - {int(i) for i in batches(touch_all=False)[0]})
    assert untouched, "the first batch should leave a row untouched"
    torch.manual_seed(0)
    start = nn.Embedding(N_ROWS, K).double().weight.detach().numpy()
    assert (ours[0][untouched] == start[untouched]).all()


@pytest.mark.parametrize("fused", FUSED)
def test_lazy_momentum_is_torchs_sgd_stepping_each_row_when_touched(fused):
    """An untouched row neither moves nor decays its momentum: each row is its own torch SGD
    that steps only in the batches that look it up."""
    kw = dict(lr=0.1, momentum=0.9, weight_decay=0.01)
    ours, _ = train(lambda p: RowSparseSGD(p, fused=fused, **kw), batches(touch_all=False),
                    sparse=True)
    torch.manual_seed(0)
    start = nn.Embedding(N_ROWS, K).double().weight.detach()
    rows = [start[r].clone().requires_grad_() for r in range(N_ROWS)]
    opts = [torch.optim.SGD([w], foreach=False, **kw) for w in rows]
    want = []
    for idx in batches(touch_all=False):
        for r in set(int(i) for i in idx):
            opts[r].zero_grad()
            ((rows[r] - target(idx)[idx == r]) ** 2).sum().backward()
            opts[r].step()
        want.append(torch.stack([w.detach() for w in rows]).numpy())
    want = np.stack(want)
    assert_close(ours, want, scale=running_size(want))


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("rule", ["momentum", "adam"])
def test_compiled_pass_on_float32_tables_rounds_like_torchs_ops(rule):
    """In float32 both compute in the table's dtype, torch's scalars cast to it: they differ by
    a few roundings a step."""
    _, kw = RULES[rule]
    runs = []
    for fused in (True, False):
        torch.manual_seed(0)
        table = nn.Embedding(N_ROWS, K, sparse=True)
        opt = row_sparse_optimizer(rule, [table.weight], fused=fused, **kw)
        for idx in batches(touch_all=False):
            opt.zero_grad()
            ((table(idx) - target(idx).float()) ** 2).sum().backward()
            opt.step()
        runs.append(table.weight.detach().numpy().copy())
    eps32 = float(np.finfo(np.float32).eps)
    assert_close(runs[0], runs[1], scale=np.abs(runs[1]).max(), rtol=10 * STEPS * eps32)


def test_fused_without_numba_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.delitem(sys.modules, "cfxl.engine.rowsparse_cpu", raising=False)
    monkeypatch.delattr(cfxl.engine, "rowsparse_cpu", raising=False)
    with pytest.raises(CfxlError, match=r"numba.*pip install numba"):
        RowSparseAdam([nn.Parameter(torch.zeros(2, 2))], fused=True)


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")  # torch's, from its sparse Adagrad
def test_rows_touched_sometimes_follow_torchs_sparse_adagrad():
    """Lazy Adagrad is torch's own on a sparse gradient (which takes no weight decay)."""
    kw = dict(lr=0.3, eps=1e-6)
    ours, mine = train(lambda p: RowSparseAdagrad(p, **kw), batches(touch_all=False), sparse=True)
    theirs, torchs = train(lambda p: torch.optim.Adagrad(p, **kw), batches(touch_all=False),
                           sparse=True)
    assert_close(ours, theirs, scale=running_size(theirs))
    assert_close(state(mine, "sum"), state(torchs, "sum"), scale=np.abs(state(torchs, "sum")).max())


def test_sparse_fit_gives_the_row_sparse_optimizers_its_weight_decay():
    """--sparse decays lazily in the optimizer: torch's rule on the touched rows (proven above
    on rows touched every step), not a penalty in fit's loss."""
    model = nn.Embedding(5, 2, sparse=True)
    kinds = [("adam", RowSparseAdam), ("adamw", RowSparseAdam), ("sgd", RowSparseSGD),
             ("momentum", RowSparseSGD), ("adagrad", RowSparseAdagrad)]
    for opt, kind in kinds:
        [o] = make_optimizers(Config(opt=opt, sparse=True, weight_decay=0.1), model)
        assert type(o) is kind and o.defaults["weight_decay"] == 0.1
    [o] = make_optimizers(Config(opt="adagrad", sparse=True), model)
    assert o.defaults["eps"] == 1e-10  # torch's Adagrad default, as the dense path keeps it


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("rule", ["momentum", "adam"])
def test_the_compiled_pass_follows_a_loaded_state(rule):
    """The compiled pass keeps numpy views of each table's state between steps: loading a saved
    state (new tensors) must be stepped from, not the views of the old ones."""
    _, kw = RULES[rule]
    torch.manual_seed(0)
    table = nn.Embedding(N_ROWS, K, sparse=True).double()
    opt = row_sparse_optimizer(rule, [table.weight], fused=True, **kw)
    first, then = batches(touch_all=False)[:10], batches(touch_all=True)[:5]

    def steps(idx_batches):
        for idx in idx_batches:
            opt.zero_grad()
            ((table(idx) - target(idx)) ** 2).sum().backward()
            opt.step()
        return table.weight.detach().clone()

    steps(first)
    saved_table, saved_state = table.weight.detach().clone(), copy.deepcopy(opt.state_dict())
    once = steps(then)
    with torch.no_grad():
        table.weight.copy_(saved_table)
    opt.load_state_dict(saved_state)
    again = steps(then)
    assert torch.equal(once, again)
