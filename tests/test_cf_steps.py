"""The CF model's optimizer sheets and gradients sheet: LibreOffice recomputes every unrolled
torch.optim step and every chain-rule gradient to torch's value; an edited lr replays torch's rule
at the new lr (given the recorded gradients); the gradients sheet is autograd, also after an edit;
traced runs on the whole data keep only the chosen rows."""

import dataclasses

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F
from tolerance import assert_close, running_size

from cfxl.presets import CF_LRS as LRS
from cfxl.records.cf_steps import cf_step_records
from cfxl.records.types.cf import SLICE_OPTIMIZERS, CFStepRecords
from cfxl.errors import CfxlError, UnknownIdError
from cfxl.records.lesson import lesson_records
from cfxl.engine.models import EmbeddingDotBias
from cfxl.proof.recalc import recalc
from cfxl.proof.verify import verify
from cfxl.workbooks import write_workbook
from cfxl.sheets.refs import cell
from cfxl.sheets.cf_steps import FIRST, HEAD_ROW, CF_SHEETS, StepLayout, write_cf_sheets
from cfxl.sheets.gradients import gradients_layout

# recompute workbooks and compare with torch: `make test` runs these with a second seed
pytestmark = pytest.mark.recompute

TRACE_USERS = [25, 569]            # the sample's most active user and one of its least
TRACE_MOVIES = [1068, 7212, 47875]  # its most rated movie and two rated three times


@pytest.fixture(scope="module")
def rec(ratings, seed):
    return cf_step_records(ratings, seed=seed)


@pytest.fixture(scope="module")
def build(rec):
    return lambda b: write_cf_sheets(b, rec)


def expected_checks(rec: CFStepRecords) -> dict[str, int]:
    """Verified cells per sheet: every formula of a torch value."""
    g = rec.gradients
    (U, M), k, cells = g.slice.ratings.shape, rec.n_factors, len(rec.names) * rec.steps
    per_row = {"sgd": 4, "momentum": 5, "adam": 9}  # value, grad_used, [state], lr, new value
    checks = {"gradients": 1 + 2 * g.slice.n + 2 * U * M + (U + M) * (k + 1)}  # n; pred, dpred/dx;
    checks.update({CF_SHEETS[o]: per_row[o] * cells + 2 * (o == "adam") for o in rec.runs})
    return checks  # d loss/d pred and d loss/dx on every cell; each parameter's gradient


def test_every_step_and_gradient_recomputes_to_torchs_value(rec, recomputed):
    report = verify(recomputed, rtol=1e-12)
    assert report.ok, report.failures[:5]
    assert recomputed.errors == []
    assert {s: c.checked for s, c in report.sheets.items()} == expected_checks(rec)
    assert all(c.max_rel_err <= 1e-12 for c in report.sheets.values())
    assert list(recomputed.values)[:4] == ["gradients", "cf_sgd", "cf_momentum", "cf_adam"]


def replay(opt: str, hyper: dict, start: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """torch.optim's rule (single-tensor, float64) in numpy: (steps, n) values after each step,
    given the gradients of every step."""
    lr, wd = hyper["lr"], hyper["weight_decay"]
    value, buf, m, v, out = start, 0.0, 0.0, 0.0, []
    for t, grad in enumerate(grads, 1):
        g = grad + wd * value
        if opt == "sgd":
            value = value - lr * g
        elif opt == "momentum":
            buf = hyper["momentum"] * buf + g
            value = value - lr * buf
        else:
            b1, b2 = hyper["betas"]
            m, v = m + (1 - b1) * (g - m), v * b2 + (1 - b2) * g * g
            value = value - lr / (1 - b1 ** t) * (m / (np.sqrt(v) / np.sqrt(1 - b2 ** t)
                                                       + hyper["eps"]))
        out.append(value)
    return np.array(out)


def trajectory_size(start: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(steps, n) the largest |value| each element has had: a parameter that passes near zero
    carries the rounding of every value it has been."""
    return running_size(np.vstack([start[None], after]))[1:]


def test_the_replay_is_torchs_rule(rec):
    for opt, run in rec.runs.items():
        got = replay(opt, run.hyper, run.value[0], run.grad)
        assert_close(got, run.value_after, scale=trajectory_size(run.value[0], run.value_after))
        np.testing.assert_array_equal(run.value[1:], run.value_after[:-1])


def _column(values: dict, L: StepLayout, name: str) -> np.ndarray:
    """(steps, n_elements) of one column of a recomputed cf sheet, torch's steps only."""
    c = L.col(name)
    return np.array([[values[cell(L.row(s, e), c)] for e in range(L.n_elements)]
                     for s in range(1, L.steps + 1)])


@pytest.fixture(scope="module")
def edited(rec, book, engine, tmp_path_factory, save_exactly):
    """The workbook with every cf sheet's lr halved and one gradients-sheet user factor moved."""
    wb = openpyxl.load_workbook(book)
    for opt in rec.runs:
        ws = wb[CF_SHEETS[opt]]
        assert ws["C2"].value == "lr" and ws["C3"].value == LRS[opt]
        ws["C3"].value = LRS[opt] / 2
    G = gradients_layout(rec.gradients)
    user, factor, delta = 2, 1, 0.5
    wb["gradients"].cell(G.g.pred_row + user + 1, G.g.uf_col + factor + 1).value += delta
    path = save_exactly(wb, tmp_path_factory.mktemp("edited") / "edited.xlsx")
    return recalc(path, engine=engine), (user, factor, delta)


def test_an_edited_lr_replays_torchs_rule_at_the_new_lr(rec, recomputed, edited):
    after, _ = edited
    assert after.errors == []
    for opt, run in rec.runs.items():
        L = StepLayout(opt, len(rec.names), rec.steps)
        values = after.values[CF_SHEETS[opt]]
        new = _column(values, L, "new value")
        want = replay(opt, {**run.hyper, "lr": LRS[opt] / 2}, run.value[0], run.grad)
        assert_close(new, want, scale=trajectory_size(run.value[0], want))
        np.testing.assert_array_equal(_column(values, L, "value")[1:], new[:-1])
        assert np.all(_column(values, L, "lr") == LRS[opt] / 2)
        moved = np.abs(new - run.value_after) > 1e-6 * np.abs(run.value_after)
        assert moved[-1].mean() > 0.9  # almost every element ends somewhere else
        torch_col = _column(values, L, "torch value_after")  # torch's recorded values stay
        np.testing.assert_array_equal(torch_col, run.value_after)
        before = _column(recomputed.values[CF_SHEETS[opt]], L, "new value")
        assert_close(before, run.value_after,
                     scale=trajectory_size(run.value[0], run.value_after))


def _autograd(ratings, u_weight, i_weight, u_bias, i_bias, grid) -> dict[str, np.ndarray]:
    """torch's gradients of the slice's MSE at the given parameters, independently of cfsteps."""
    (U, M), k = grid.shape, u_weight.shape[1]
    model = EmbeddingDotBias(U, M, k, y_range=ratings.rating_range).to(torch.float64)
    with torch.no_grad():
        for p, value in ((model.u_weight.weight, u_weight), (model.i_weight.weight, i_weight),
                         (model.u_bias.weight, u_bias.reshape(-1, 1)),
                         (model.i_bias.weight, i_bias.reshape(-1, 1))):
            p.copy_(torch.from_numpy(value))
    rows, cols = np.nonzero(~np.isnan(grid))
    loss = F.mse_loss(model(torch.from_numpy(rows), torch.from_numpy(cols)),
                      torch.from_numpy(grid[rows, cols]))
    loss.backward()
    return {"u_weight": model.u_weight.weight.grad.numpy(),
            "i_weight": model.i_weight.weight.grad.numpy(),
            "u_bias": model.u_bias.weight.grad[:, 0].numpy(),
            "i_bias": model.i_bias.weight.grad[:, 0].numpy()}


def _gradient_sizes(g, u_weight: np.ndarray) -> dict[str, np.ndarray]:
    """The size of what each chain-rule gradient sums: d loss/dx = 2/n (pred - y) * slope
    keeps the rounding of pred and y (they nearly cancel near convergence; pred is inside the
    sigmoid range), the slope is at most (hi - lo)/4, and each gradient adds such terms times
    a factor."""
    lo, hi = g.slice.y_range
    y = np.abs(g.slice.ratings)
    dx = np.where(np.isnan(y), 0, 2 / g.slice.n * (max(abs(lo), abs(hi)) + y) * (hi - lo) / 4)
    return {"u_weight": dx @ np.abs(g.i_weight), "i_weight": dx.T @ np.abs(u_weight),
            "u_bias": dx.sum(1), "i_bias": dx.sum(0)}


def _chain_rule(values: dict, G) -> dict[str, np.ndarray]:
    """The gradients sheet's formula blocks, as recomputed."""
    L, b = G.g, G.chain
    U, M, k = L.n_users, L.n_movies, L.n_factors

    def block(r0, c0, n_rows, n_cols):
        return np.array([[values[cell(r0 + i, c0 + j)] for j in range(n_cols)]
                         for i in range(n_rows)])

    return {"u_weight": block(b.pred_row, L.uf_col, U, k),
            "u_bias": block(b.pred_row, L.ub_col, U, 1)[:, 0],
            "i_weight": block(b.mf_row, L.grid_col, k, M).T,
            "i_bias": block(b.mb_row, L.grid_col, 1, M)[0]}


def test_the_gradients_sheet_is_autograd(rec, ratings, recomputed, edited):
    g = rec.gradients
    G = gradients_layout(g)
    sheet = _chain_rule(recomputed.values["gradients"], G)
    fresh = _autograd(ratings, g.u_weight, g.i_weight, g.u_bias, g.i_bias, g.slice.ratings)
    sizes = _gradient_sizes(g, g.u_weight)
    for name, value in sheet.items():
        assert_close(value, fresh[name], scale=sizes[name], err_msg=name)
        np.testing.assert_array_equal(getattr(g, f"d_{name}"), fresh[name])
    # the first step's gradient on the cf sheets is the same autograd, element by element
    first = np.concatenate([fresh[n].reshape(-1) for n in ("u_weight", "i_weight", "u_bias",
                                                             "i_bias")])
    for run in rec.runs.values():
        np.testing.assert_array_equal(run.grad[0], first)
    diff = recomputed.values["gradients"][cell(*G.difference)]
    assert 0 <= diff <= 1e-12 * max(max(np.abs(v).max(), sizes[n].max()) for n, v in fresh.items())

    # edited: the chain rule follows the new parameters, autograd's values stay
    after, (user, factor, delta) = edited
    u_weight = g.u_weight.copy()
    u_weight[user, factor] += delta
    edited_cell = cell(G.g.pred_row + user, G.g.uf_col + factor)
    assert after.values["gradients"][edited_cell] == u_weight[user, factor]
    moved = _autograd(ratings, u_weight, g.i_weight, g.u_bias, g.i_bias, g.slice.ratings)
    sheet = _chain_rule(after.values["gradients"], G)
    sizes = _gradient_sizes(g, u_weight)
    for name, value in sheet.items():
        assert_close(value, moved[name], scale=sizes[name], err_msg=name)
    assert not np.allclose(sheet["u_weight"], g.d_u_weight, rtol=1e-6)
    assert after.values["gradients"][cell(*G.difference)] > 1e-6


def test_rows_are_grouped_by_step_with_the_previous_step_a_fixed_offset_up(rec, book):
    wb = openpyxl.load_workbook(book, read_only=True)
    E = len(rec.names)
    for opt, run in rec.runs.items():
        L = StepLayout(opt, E, rec.steps)
        rows = list(wb[CF_SHEETS[opt]].iter_rows(min_row=1, max_row=L.row(2, E - 1) + 1,
                                              values_only=True))
        assert [h for h in rows[HEAD_ROW] if h][:len(L.columns)] == list(L.columns)
        hyper = {k: v for k, v in zip(rows[1][2:], rows[2][2:]) if k}
        assert hyper["lr"] == LRS[opt] and hyper["weight_decay"] == 0
        for e in (0, E // 2, E - 1):
            start, one, two = rows[L.row(0, e)], rows[L.row(1, e)], rows[L.row(2, e)]
            assert start[0] == one[0] == two[0] == rec.names[e]
            assert (start[2], one[2], two[2]) == (0, 1, 2)
            assert start[L.col("new value")] == run.value[0, e]  # the exact starting value
            for prev, row in ((L.row(0, e), one), (L.row(1, e), two)):
                assert row[L.col("value")] == f"={cell(prev, L.col('new value'))}"
            assert one[L.col("grad")] == run.grad[0, e]
        if opt == "momentum":
            assert two[L.col("momentum_buffer")] == (
                f"={cell(L.row(1, E - 1), L.col('momentum_buffer'))}*$D$3"
                f"+{cell(L.row(2, E - 1), L.col('grad_used'))}")
        if opt == "adam":
            assert hyper == {"lr": LRS[opt], "beta1": 0.9, "1 - beta1": "=1-$D$3", "beta2": 0.999,
                             "1 - beta2": "=1-$F$3", "eps": 1e-8, "weight_decay": 0}
            assert two[L.col("exp_avg")].startswith(f"={cell(L.row(1, E - 1), L.col('exp_avg'))}+")
    assert rec.names[:6] == ("u_weight[0,0]", "u_weight[0,1]", "u_weight[0,2]", "u_weight[0,3]",
                             "u_weight[0,4]", "u_weight[1,0]")
    assert rec.names[-1] == "i_bias[14,0]" and len(rec.names) == 2 * 15 * (5 + 1)
    assert FIRST == HEAD_ROW + 1


def _leaves(obj):
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _leaves(getattr(obj, f.name))
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _leaves(item)
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _leaves(item)
    else:
        yield obj


def test_records_start_at_the_bias_sheets_model_and_learn(rec, ratings, seed):
    leaves = list(_leaves(rec))
    assert not any(isinstance(x, torch.Tensor) for x in leaves)
    floats = [a for a in leaves if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    assert floats and all(a.dtype == np.float64 for a in floats)
    start = lesson_records(ratings, untrained=True, seed=seed).bias  # the bias sheet's start
    g = rec.gradients
    for name in ("u_weight", "i_weight", "u_bias", "i_bias"):
        np.testing.assert_array_equal(getattr(g, name), getattr(start, name))
    first = np.concatenate([getattr(start, n).reshape(-1)
                            for n in ("u_weight", "i_weight", "u_bias", "i_bias")])
    assert list(rec.runs) == list(SLICE_OPTIMIZERS)
    for opt, run in rec.runs.items():
        np.testing.assert_array_equal(run.value[0], first)
        assert run.loss[-1] < run.loss[0] / 3  # the default lrs learn visibly in 30 steps
        assert run.lr.tolist() == [LRS[opt]] * rec.steps
    assert rec.runs["adam"].state["step"].tolist() == list(range(1, rec.steps + 1))
    assert g.loss == rec.runs["sgd"].loss[0] and g.slice.n == rec.n_ratings == 210


@pytest.fixture(scope="module")
def traced(ratings, seed):
    return cf_step_records(ratings, trace_users=TRACE_USERS, trace_movies=TRACE_MOVIES, seed=seed)


def test_traced_rows_on_the_whole_data_stay_small_and_verify(traced, ratings, engine, tmp_path):
    k, steps = traced.n_factors, traced.steps
    users = ratings.users.index(np.array(TRACE_USERS))
    movies = ratings.movies.index(np.array(TRACE_MOVIES))
    names = [f"u_weight[{u},{f}]" for u in users for f in range(k)]
    names += [f"i_weight[{m},{f}]" for m in movies for f in range(k)]
    names += [f"u_bias[{u},0]" for u in users] + [f"i_bias[{m},0]" for m in movies]
    assert list(traced.names) == names
    E = len(names)
    assert E == (len(TRACE_USERS) + len(TRACE_MOVIES)) * (k + 1)
    assert traced.traced and traced.n_ratings == len(ratings)
    assert traced.ids.tolist() == [u for u in TRACE_USERS for _ in range(k)] + [
        m for m in TRACE_MOVIES for _ in range(k)] + TRACE_USERS + TRACE_MOVIES

    # the recorded rows are the whole-data model's: its start and autograd's first gradient
    torch.manual_seed(traced.seed)
    model = EmbeddingDotBias(ratings.n_users, ratings.n_movies, k,
                             y_range=ratings.rating_range).to(torch.float64)
    loss = F.mse_loss(model(torch.from_numpy(ratings.user_idx.astype(np.int64)),
                            torch.from_numpy(ratings.movie_idx.astype(np.int64))),
                      torch.from_numpy(ratings.rating.astype(np.float64)))
    loss.backward()
    whole = [(model.u_weight.weight, users), (model.i_weight.weight, movies),
             (model.u_bias.weight, users), (model.i_bias.weight, movies)]
    start = np.concatenate([p.detach()[rows].reshape(-1).numpy() for p, rows in whole])
    grad = np.concatenate([p.grad[rows].reshape(-1).numpy() for p, rows in whole])
    for run in traced.runs.values():
        np.testing.assert_array_equal(run.value[0], start)
        np.testing.assert_array_equal(run.grad[0], grad)  # the same autograd, the same sums
        assert_close(replay(run.opt, run.hyper, start, run.grad), run.value_after,
                     scale=trajectory_size(start, run.value_after))

    path = write_workbook(tmp_path / "traced.xlsx", lambda b: write_cf_sheets(b, traced))
    wb = openpyxl.load_workbook(path, read_only=True)
    for opt in traced.runs:
        ws = wb[CF_SHEETS[opt]]
        column = [row[0] for row in ws.iter_rows(min_row=FIRST + 1, values_only=True)]
        assert column == names * (steps + 1)  # one row per (step, element), step 0 included
    report = verify(path, engine=engine)
    assert report.ok, report.failures[:5]
    checks = expected_checks(traced)
    assert {s: c.checked for s, c in report.sheets.items()} == checks
    assert checks["cf_adam"] == 9 * E * steps + 2


def test_weight_decay_and_batches_follow_torch(ratings, engine, tmp_path, seed):
    rec = cf_step_records(ratings, steps=4, n_users=6, n_movies=6, n_factors=2,
                          weight_decay=0.01, bs=8, seed=seed)
    for opt, run in rec.runs.items():
        np.testing.assert_array_equal(run.grad_used, run.grad + 0.01 * run.value)
        assert_close(replay(opt, run.hyper, run.value[0], run.grad), run.value_after,
                     scale=trajectory_size(run.value[0], run.value_after))
        assert (run.grad == 0).any(axis=1).all()  # a batch of 8 leaves some rows untouched
    path = write_workbook(tmp_path / "small.xlsx", lambda b: write_cf_sheets(b, rec))
    report = verify(path, engine=engine)
    assert report.ok, report.failures[:5]
    assert {s: c.checked for s, c in report.sheets.items()} == expected_checks(rec)


def test_bad_arguments_say_why(ratings):
    with pytest.raises(CfxlError, match="unknown optimizer 'rmsprop'"):
        cf_step_records(ratings, opts=("sgd", "rmsprop"))
    with pytest.raises(UnknownIdError, match="user id 999999 is unknown"):
        cf_step_records(ratings, steps=1, trace_users=[999999])
    with pytest.raises(CfxlError, match="steps >= 1"):
        cf_step_records(ratings, steps=0)
