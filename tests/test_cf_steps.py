"""The CF model's optimizer sheets and gradients sheet: LibreOffice recomputes every unrolled
torch.optim step, every rating's forward pass and every chain-rule gradient to torch's value; an
edited lr, momentum, beta1 or weight decay re-trains each sheet to what a fresh torch.optim run
with that setting gives; the gradients sheet is autograd, also after an edit; traced runs on the
whole data keep only the chosen rows and show their settings as recorded, not editable."""

import dataclasses

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F
from tolerance import assert_close, running_size

from cfxl.presets import CF_ADAMW, CF_LRS
from cfxl.records.cf_steps import cf_step_records
from cfxl.records.types.cf import CF_OPTIMIZERS, CFStepRecords
from cfxl.errors import CfxlError, UnknownIdError
from cfxl.records.lesson import lesson_records
from cfxl.engine.models import EmbeddingDotBias
from cfxl.proof.recalc import recalc
from cfxl.proof.verify import verify
from cfxl.workbooks import write_workbook
from cfxl.sheets.refs import cell
from cfxl.sheets.cf_chain import chain_of, scales
from cfxl.sheets.cf_steps import FIRST, HEAD_ROW, CF_SHEETS, RATING, StepLayout, write_cf_sheets
from cfxl.sheets.styles import EDITABLE
from cfxl.sheets.gradients import gradients_layout

# recompute workbooks and compare with torch: `make test` runs these with a second seed
pytestmark = pytest.mark.recompute

TRACE_USERS = [253, 4]             # the sample's most active user and one of its least
TRACE_MOVIES = [4960, 2, 4]        # its most rated movie and two rated three times
LRS = CF_LRS | {"adamw": CF_ADAMW["lr"]}  # each sheet's lr; weight decay 0 but AdamW's
WDS = {o: CF_ADAMW["weight_decay"] if o == "adamw" else 0.0 for o in CF_OPTIMIZERS}
# Settings edited on each written sheet (torch.optim's names), lr halved on every one.
EDITS = {"sgd": {"weight_decay": 0.01}, "momentum": {"momentum": 0.8, "weight_decay": 0.01},
         "adam": {"beta1": 0.8, "weight_decay": 0.01}, "adamw": {"weight_decay": 0.3}}


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
    # per element and step: value (a live sheet's grad instead), grad_used, [state], new value
    per_row = {"sgd": 3, "momentum": 4, "adam": 8, "adamw": 8}
    # live: per step x, prediction, error and d loss/dx at each training rating, and the MSE; n
    n, n_train = g.slice.n, g.slice.n - g.slice.n_valid
    forward = rec.live * (rec.steps * (4 * n_train + 1) + 1)
    # n; prediction and d prediction/dx at each rating, d loss/d prediction and d loss/dx at each
    # training rating; each parameter's gradient
    checks = {"gradients": 1 + 2 * n + 2 * n_train + (U + M) * (k + 1)}
    checks.update({CF_SHEETS[o]: per_row[o] * cells + 2 * (o in ("adam", "adamw")) + forward
                   for o in rec.runs})  # adam's: and 1 - beta1, 1 - beta2
    return checks


def test_every_step_and_gradient_recomputes_to_torchs_value(rec, recomputed):
    report = verify(recomputed, rtol=1e-12)
    assert report.ok, report.failures[:5]
    assert recomputed.errors == []
    assert {s: c.checked for s, c in report.sheets.items()} == expected_checks(rec)
    assert all(c.max_rel_err <= 1e-12 for c in report.sheets.values())
    assert list(recomputed.values)[:5] == ["gradients", "cf_sgd", "cf_momentum", "cf_adam",
                                           "cf_adamw"]


def replay(opt: str, hyper: dict, start: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """torch.optim's rule (single-tensor, float64) in numpy: (steps, n) values after each step,
    given the gradients of every step. AdamW: the value shrinks, the gradient stays plain."""
    lr, wd = hyper["lr"], hyper["weight_decay"]
    value, buf, m, v, out = start, 0.0, 0.0, 0.0, []
    for t, grad in enumerate(grads, 1):
        g = grad + wd * value
        if opt == "adamw":
            value, g = value * (1 - lr * wd), grad
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


def layout(rec: CFStepRecords, opt: str) -> StepLayout:
    return StepLayout(opt, len(rec.names), rec.steps, rec.n_ratings * rec.live)


def _column(values: dict, L: StepLayout, name: str) -> np.ndarray:
    """(steps, n_elements) of one column of a recomputed cf sheet, torch's steps only; a column
    of the forward pass (RATING): (steps, n_ratings)."""
    c, n = (L.rcol(name), L.n_ratings) if name in RATING else (L.col(name), L.n_elements)
    return np.array([[values[cell(L.row(s, e), c)] for e in range(n)]
                     for s in range(1, L.steps + 1)])


def _fresh(ratings, rec: CFStepRecords, opt: str, edit: dict):
    """A fresh torch.optim run of the slice model with the edited settings, lr halved."""
    betas = (edit.get("beta1", 0.9), 0.999)
    return cf_step_records(ratings, opts=(opt,), steps=rec.steps, lr=LRS[opt] / 2,
                           weight_decay=edit.get("weight_decay", 0.0),
                           momentum=edit.get("momentum", 0.9), betas=betas,
                           seed=rec.seed).runs[opt]


@pytest.fixture(scope="module")
def edited(rec, book, engine, tmp_path_factory, save_exactly):
    """The workbook with every cf sheet's lr halved and EDITS made, and one gradients-sheet user
    factor moved."""
    wb = openpyxl.load_workbook(book)
    for opt in rec.runs:
        ws, L = wb[CF_SHEETS[opt]], layout(rec, opt)
        assert ws["C2"].value == "lr" and ws["C3"].value == LRS[opt]
        for name, value in {"lr": LRS[opt] / 2, **EDITS[opt]}.items():
            assert ws[L.hyper(name).replace("$", "")].fill.fgColor.rgb[-6:] == EDITABLE[1:]
            ws[L.hyper(name).replace("$", "")].value = value
    G = gradients_layout(rec.gradients)
    user, factor, delta = 2, 1, 0.5
    wb["gradients"].cell(G.g.pred_row + user + 1, G.g.uf_col + factor + 1).value += delta
    path = save_exactly(wb, tmp_path_factory.mktemp("edited") / "edited.xlsx")
    return recalc(path, engine=engine), (user, factor, delta)


@pytest.mark.parametrize("opt", list(EDITS))
def test_edited_settings_retrain_like_a_fresh_torch_run(opt, ratings, rec, recomputed, edited):
    """Every value, gradient, state, forward pass and loss of the edited sheet is a fresh
    torch.optim run's with the new settings, to 1e-12 of its operands' size."""
    after, _ = edited
    assert after.errors == []
    fresh, run, L = _fresh(ratings, rec, opt, EDITS[opt]), rec.runs[opt], layout(rec, opt)
    size = scales(chain_of(rec), fresh)
    values = after.values[CF_SHEETS[opt]]
    want = {"value": fresh.value, "grad": fresh.grad, "grad_used": fresh.grad_used,
            "new value": fresh.value_after, "x": fresh.x, "prediction": fresh.pred,
            "error": fresh.pred - chain_of(rec).y, "d loss/dx": fresh.dloss_dx,
            **{n: fresh.state[n] for n in ("momentum_buffer", "exp_avg", "exp_avg_sq")
               if n in fresh.state}}
    for name, expected in want.items():
        scale = size["new value"][np.r_[0, :L.steps - 1]] if name == "value" else size[name]
        assert_close(_column(values, L, name), expected, scale=scale, err_msg=name)
    loss = [values[cell(FIRST + s, L.loss_col + 1)] for s in range(L.steps)]
    assert_close(loss, fresh.loss, scale=size["MSE"])
    moved = np.abs(fresh.value_after - run.value_after) > 1e-6 * np.abs(run.value_after)
    assert moved[-1].mean() > 0.9  # almost every element ends somewhere else
    assert not np.allclose(fresh.loss[1:], run.loss[1:], rtol=1e-6)  # and the loss moved
    # torch's recorded values stay as written
    np.testing.assert_array_equal(_column(values, L, "torch value_after"), run.value_after)
    np.testing.assert_array_equal([values[cell(FIRST + s, L.loss_col + 2)]
                                   for s in range(L.steps)], run.loss)
    before = _column(recomputed.values[CF_SHEETS[opt]], L, "new value")
    assert_close(before, run.value_after, scale=scales(chain_of(rec), run)["new value"])


def training(s) -> np.ndarray:
    """The slice's ratings with the held-out ones blanked (NaN): what the loss sees."""
    return np.where(s.valid, np.nan, s.ratings)


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
    y = np.abs(training(g.slice))
    n = g.slice.n - g.slice.n_valid
    dx = np.where(np.isnan(y), 0, 2 / n * (max(abs(lo), abs(hi)) + y) * (hi - lo) / 4)
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
    fresh = _autograd(ratings, g.u_weight, g.i_weight, g.u_bias, g.i_bias, training(g.slice))
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
    moved = _autograd(ratings, u_weight, g.i_weight, g.u_bias, g.i_bias, training(g.slice))
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
        L = layout(rec, opt)
        assert L.height == max(E, rec.n_ratings)
        rows = list(wb[CF_SHEETS[opt]].iter_rows(min_row=1, max_row=L.row(3, 0),
                                              values_only=True))
        assert [h for h in rows[HEAD_ROW] if h][:len(L.columns)] == list(L.columns)
        assert [h for h in rows[HEAD_ROW][L.rcol(RATING[0]):] if h][:len(RATING)] == list(RATING)
        hyper = {k: v for k, v in zip(rows[1][2:], rows[2][2:]) if k}
        assert hyper["lr"] == LRS[opt] and hyper["weight_decay"] == WDS[opt]
        assert (hyper["lo"], hyper["hi"]) == rec.y_range and hyper["n"].startswith("=COUNT(")
        for e in (0, E // 2, E - 1):
            start, one, two = rows[L.row(0, e)], rows[L.row(1, e)], rows[L.row(2, e)]
            assert start[0] == one[0] == two[0] == rec.names[e]
            assert (start[2], one[2], two[2]) == (0, 1, 2)
            assert start[L.col("new value")] == run.value[0, e]  # the exact starting value
            for prev, row in ((L.row(0, e), one), (L.row(1, e), two)):
                assert row[L.col("value")] == f"={cell(prev, L.col('new value'))}"
            assert one[L.col("grad")].startswith("=") and start[L.col("grad")] is None
        # the first user's factor: d loss/dx of each of its ratings times the movie's factor
        dx, value = L.rcol("d loss/dx"), L.col("value")
        chain = chain_of(rec)
        assert rows[L.row(2, 0)][L.col("grad")] == "=" + "+".join(
            f"{cell(L.row(2, r), dx)}*{cell(L.row(2, chain.i_weight(m)), value)}"
            for r, m in enumerate(chain.movies[chain.users == 0]))
        r = L.row(1, 0)  # the first rating's forward pass: this step's parameter cells
        assert rows[r][L.rcol("x")].startswith(
            f"=SUMPRODUCT({cell(r, value)}:{cell(r + rec.n_factors - 1, value)},")
        assert rows[r][L.rcol("error")] == f"={cell(r, dx - 2)}-{cell(r, dx - 4)}"
        if opt == "momentum":
            assert two[L.col("momentum_buffer")] == (
                f"={cell(L.row(1, E - 1), L.col('momentum_buffer'))}*$D$3"
                f"+{cell(L.row(2, E - 1), L.col('grad_used'))}")
        if opt == "adam":
            assert {k: v for k, v in hyper.items() if k not in ("lo", "hi", "n")} == {
                "lr": LRS[opt], "beta1": 0.9, "1 - beta1": "=1-$D$3", "beta2": 0.999,
                "1 - beta2": "=1-$F$3", "eps": 1e-8, "weight_decay": 0}
            assert two[L.col("exp_avg")].startswith(f"={cell(L.row(1, E - 1), L.col('exp_avg'))}+")
        if opt == "adamw":  # the plain gradient; the value shrinks before Adam's step
            r, lr, wd = L.row(2, E - 1), L.hyper("lr"), L.hyper("weight_decay")
            assert two[L.col("grad_used")] == f"={cell(r, L.col('grad'))}"
            assert two[L.col("new value")].startswith(f"={cell(r, value)}*(1-{lr}*{wd})-{lr}/")
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
    assert list(rec.runs) == list(CF_OPTIMIZERS)
    for opt, run in rec.runs.items():
        np.testing.assert_array_equal(run.value[0], first)
        assert run.loss[-1] < run.loss[0] / 3  # the default lrs learn visibly in 30 steps
        assert run.lr.tolist() == [LRS[opt]] * rec.steps
    assert rec.runs["adam"].state["step"].tolist() == list(range(1, rec.steps + 1))
    assert g.loss == rec.runs["sgd"].loss[0] and g.slice.n == 204
    assert rec.n_ratings == g.slice.n - g.slice.n_valid == 163  # the held-out fifth stays out


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
    assert not traced.live
    wb = openpyxl.load_workbook(path)
    for opt in traced.runs:
        ws = wb[CF_SHEETS[opt]]
        column = [row[0] for row in ws.iter_rows(min_row=FIRST + 1, values_only=True)]
        assert column == names * (steps + 1)  # one row per (step, element), step 0 included
        # the gradients are torch's: no setting or start shows as editable, and the note says so
        assert not [c.coordinate for row in ws.iter_rows() for c in row
                    if (c.fill.fgColor.rgb or "")[-6:] == EDITABLE[1:]]
        assert "not editable" in ws["A2"].value and ws["C3"].value == traced.runs[opt].hyper["lr"]
    report = verify(path, engine=engine)
    assert report.ok, report.failures[:5]
    checks = expected_checks(traced)
    assert {s: c.checked for s, c in report.sheets.items()} == checks
    assert checks["cf_adam"] == 8 * E * steps + 2


def test_weight_decay_and_batches_follow_torch(ratings, engine, tmp_path, seed):
    rec = cf_step_records(ratings, steps=4, n_users=6, n_movies=6, n_factors=2,
                          weight_decay=0.01, bs=4, seed=seed)
    for opt, run in rec.runs.items():
        decay = 0 if opt == "adamw" else 0.01  # AdamW's decays the value, not the gradient
        np.testing.assert_array_equal(run.grad_used, run.grad + decay * run.value)
        assert_close(replay(opt, run.hyper, run.value[0], run.grad), run.value_after,
                     scale=trajectory_size(run.value[0], run.value_after))
        assert (run.grad == 0).any(axis=1).all()  # 4 ratings touch at most 4 of the 6 users
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
