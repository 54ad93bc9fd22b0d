"""cfxl's Excel functions as plain Python against torch: predictions equal Trained.predict, an
optimizer step equals torch.optim's, a bad argument comes back as an error value. With
XLWINGS_LICENSE_KEY set, the same functions also run through xlwings' own server dispatch."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from cfxl.excel import functions
from cfxl.engine import checkpoint
from cfxl.excel import model_functions
from cfxl.data.ratings import read_ratings
from cfxl.errors import CfxlError
from cfxl.engine.models import param_names
from cfxl.engine.models import sigmoid_range as torch_sigmoid_range
from cfxl.engine.train import Config, fit
from tolerance import assert_close

TOL = 1e-12


def small_ratings(folder: Path, *, seed: int = 0, users: int = 30, movies: int = 40) -> Path:
    """A MovieLens-layout folder: about half of users x movies rated, titles beside them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(u, m, float(rng.integers(1, 11)) / 2) for u in range(1, users + 1)
            for m in range(1, movies + 1) if rng.random() < 0.5]
    pd.DataFrame(rows, columns=["userId", "movieId", "rating"]).to_csv(folder / "ratings.csv",
                                                                       index=False)
    pd.DataFrame({"movieId": range(1, movies + 1),
                  "title": [f"Film {i} (19{i + 50})" for i in range(1, movies + 1)],
                  "genres": "Drama"}).to_csv(folder / "movies.csv", index=False)
    return folder / "ratings.csv"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(path of a saved dotbias model, the Trained, its Ratings)."""
    folder = tmp_path_factory.mktemp("model")
    ratings = read_ratings(small_ratings(folder / "data"))
    trained = fit(Config(n_factors=4, epochs=2, bs=32), ratings, progress=False)
    return checkpoint.save(trained, folder / "model.pt"), trained, ratings


# ------------------------------------------------------------------ the model's functions


def test_predict_equals_trained_predict(model):
    path, trained, ratings = model
    frame = ratings.frame()
    users, movies = frame["userId"].to_numpy()[:25], frame["movieId"].to_numpy()[:25]
    got = model_functions.predict(model_functions.load_model(path), users.reshape(-1, 1).tolist(),
                        movies.reshape(-1, 1).tolist())
    want = trained.predict(users, movies).tolist()
    assert np.array(got, dtype=float).reshape(-1).tolist() == want
    one = model_functions.predict(model_functions.load_model(path), float(users[0]), float(movies[0]))  # Excel's 1.0
    assert one == float(trained.predict(users[:1], movies[:1])[0])


def test_predict_broadcasts_a_column_of_users_against_a_row_of_movies(model):
    path, trained, _ = model
    got = model_functions.predict(model_functions.load_model(path), [[1], [2], [3]], [[1, 2, 3, 4]])
    got = np.array(got, dtype=float)
    want = trained.predict(np.repeat([1, 2, 3], 4), np.tile([1, 2, 3, 4], 3)).reshape(3, 4)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_predict_unknown_and_blank_ids_cell_by_cell(model):
    path, trained, _ = model
    got = model_functions.predict(model_functions.load_model(path), [[1], [999], [None]], [[2], [2], [2]])
    assert got[0][0] == pytest.approx(float(trained.predict([1], [2])[0]), rel=1e-6)
    assert got[1][0].startswith("#N/A user id 999 is unknown")
    assert got[2][0] == ""


def float64_scores(trained, user_id):
    """Every movie's prediction for a user, computed here from the parameters in float64."""
    p = {k: v.detach().double().numpy() for k, v in param_names(trained.model).items()}
    u = trained.users.index(user_id)
    x = p["i_weight"] @ p["u_weight"][u] + p["u_bias"][u, 0] + p["i_bias"][:, 0]  # (n_movies,)
    lo, hi = trained.y_range
    return lo + (hi - lo) / (1 + np.exp(-x))


def best_first(values, counts, allowed, n):
    """Movie indices by value, ties to the more rated movie, then the lower index."""
    order = sorted(np.flatnonzero(allowed), key=lambda i: (-values[i], -counts[i], i))
    return order[:n]


def test_recommend_is_the_top_of_the_predictions_less_the_seen(model):
    path, trained, ratings = model
    rows = model_functions.recommend(model_functions.load_model(path), 3, 5, True)
    assert rows[0] == ["movieId", "title", "predicted"]
    frame = ratings.frame()
    seen = set(frame.query("userId == 3")["movieId"])
    movies = trained.movies.ids
    counts = frame["movieId"].value_counts().reindex(movies).to_numpy()
    scores = float64_scores(trained, 3)
    want = best_first(scores, counts, ~np.isin(movies, list(seen)), 5)
    assert [r[0] for r in rows[1:]] == [movies[i] for i in want]
    assert rows[1][1] == f"Film {movies[want[0]]} (19{movies[want[0]] + 50})"
    assert_close([r[2] for r in rows[1:]], scores[want], scale=5.5)
    forward = trained.predict(np.full(len(movies), 3), movies)  # torch's float32 forward pass
    assert_close([r[2] for r in rows[1:]], forward[want], scale=5.5,
                 rtol=8 * np.finfo(np.float32).eps)
    everything = model_functions.recommend(model_functions.load_model(path), 3, 5, False)
    assert everything[1][0] == movies[best_first(scores, counts, np.ones(len(movies), bool), 1)[0]]


def test_similar_is_cosine_of_the_movie_factors(model):
    path, trained, ratings = model
    rows = model_functions.similar(model_functions.load_model(path), 7, 3)
    w = F.normalize(param_names(trained.model)["i_weight"].detach().double(), dim=1)
    i = trained.movies.index(7)
    cos = (w @ w[i]).numpy()
    counts = ratings.frame()["movieId"].value_counts().reindex(trained.movies.ids).to_numpy()
    others = np.arange(len(cos)) != i
    best = best_first(cos, counts, others, 3)
    assert [r[0] for r in rows[1:]] == [trained.movies.id_of(int(j)) for j in best]
    assert_close([r[2] for r in rows[1:]], cos[best], scale=1.0)


def test_the_functions_say_when_the_training_ratings_are_gone(model, tmp_path):
    path, trained, ratings = model
    moved = checkpoint.load(path)
    moved.source = str(tmp_path / "gone.csv")
    for call in (lambda: model_functions.recommend(moved, 3, 5, True),
                 lambda: model_functions.similar(moved, 7, 3)):
        with pytest.raises(CfxlError, match="gone.csv, is gone"):
            call()


def test_a_changed_model_file_is_loaded_again(model, tmp_path):
    path, trained, ratings = model
    copy = checkpoint.save(trained, tmp_path / "m.pt")
    first = model_functions.load_model(copy)
    assert model_functions.load_model(copy) is first  # cached
    other = fit(Config(n_factors=3, epochs=1, bs=32, seed=7), ratings, progress=False)
    time.sleep(0.01)
    checkpoint.save(other, copy, force=True)
    second = model_functions.load_model(copy)
    assert second is not first and second.config.n_factors == 3


def test_model_file_from_the_environment_and_the_workbook_folder(model, tmp_path, monkeypatch):
    path, _, _ = model
    monkeypatch.setenv(model_functions.MODEL_ENV, str(path))
    assert model_functions.model_file(None) == path
    monkeypatch.delenv(model_functions.MODEL_ENV)
    with pytest.raises(Exception, match="no model file"):
        model_functions.model_file("")
    monkeypatch.syspath_prepend(str(path.parent))  # xlwings puts the workbook's folder here
    monkeypatch.chdir(tmp_path)
    assert model_functions.model_file(path.name) == path.parent / path.name


# ------------------------------------------------------------------ building blocks


def test_dot_and_sigmoid_range_are_the_models():
    u, m = [[0.1, -0.2, 0.3]], [[1.5], [2.0], [-0.5]]  # a row against a column
    assert functions.dot(u, m) == float(torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
                                    @ torch.tensor([1.5, 2.0, -0.5], dtype=torch.float64))
    rows = functions.dot([[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]])  # DotProduct, row-wise
    assert rows == [[17.0], [53.0]]
    x = [[-2.0, 0.0, 3.5]]
    want = torch_sigmoid_range(torch.tensor(x, dtype=torch.float64), 0.5, 5.0).tolist()
    assert functions.sigmoid_range(x, 0.5, 5.0) == want
    assert functions.sigmoid_range(0.0, 0.5, 5.0) == 2.75


# ------------------------------------------------------------------ torch.optim steps


def chained(steps: int, fn, state0):
    """Run a step function `steps` times, feeding its output row back in."""
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(steps, 3))
    p0 = rng.normal(size=3)
    out, p, state = [], p0, state0
    for g in grads:
        row = fn(p.reshape(1, -1).tolist(), g.reshape(-1, 1).tolist(), state)
        p, state = row[:, 0], row[:, 1:]
        out.append(row)
    return p0, grads, out


def torch_run(p0, grads, make):
    p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = make([p])
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append((p.detach().clone(), {k: v.clone() if torch.is_tensor(v) else v
                                         for k, v in opt.state[p].items()}))
    return out


def test_sgd_step_equals_torch_sgd():
    p0, grads, ours = chained(
        5, lambda p, g, s: functions.sgd_step(p, g, lr=0.1, weight_decay=0.01), None)
    theirs = torch_run(p0, grads, lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.01,
                                                             foreach=False))
    for row, (value, _) in zip(ours, theirs):
        np.testing.assert_allclose(row[:, 0], value.numpy(), rtol=TOL, atol=0)


@pytest.mark.parametrize("dampening,nesterov", [(0.0, False), (0.0, True), (0.1, False)])
def test_momentum_step_equals_torch_sgd_with_momentum(dampening, nesterov):
    def step(p, g, s):
        buf = [[None]] * 3 if s is None else s[:, :1].tolist()  # blank: torch's first step
        return functions.sgd_step(p, g, lr=0.05, momentum=0.9, buf=buf, dampening=dampening,
                              weight_decay=0.01, nesterov=nesterov)
    p0, grads, ours = chained(6, step, None)
    theirs = torch_run(p0, grads, lambda ps: torch.optim.SGD(
        ps, lr=0.05, momentum=0.9, dampening=dampening, weight_decay=0.01, nesterov=nesterov,
        foreach=False))
    for row, (value, state) in zip(ours, theirs):
        np.testing.assert_allclose(row[:, 0], value.numpy(), rtol=TOL, atol=0)
        np.testing.assert_allclose(row[:, 1], state["momentum_buffer"].numpy(), rtol=TOL, atol=0)


def test_adam_step_equals_torch_adam():
    def step(p, g, s):
        m, v, t = (np.zeros(3), np.zeros(3), 0.0) if s is None else (s[:, 0], s[:, 1], s[0, 2])
        return functions.adam_step(p, g, m.reshape(-1, 1).tolist(), v.tolist(), lr=0.01,
                               betas=[[0.8, 0.95]], eps=1e-6, weight_decay=0.02, state_step=t)
    p0, grads, ours = chained(7, step, None)
    theirs = torch_run(p0, grads, lambda ps: torch.optim.Adam(
        ps, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.02, foreach=False))
    for row, (value, state) in zip(ours, theirs):
        np.testing.assert_allclose(row[:, 0], value.numpy(), rtol=TOL, atol=0)
        np.testing.assert_allclose(row[:, 1], state["exp_avg"].numpy(), rtol=TOL, atol=0)
        np.testing.assert_allclose(row[:, 2], state["exp_avg_sq"].numpy(), rtol=TOL, atol=0)
        assert (row[:, 3] == float(state["step"])).all()


# ------------------------------------------------------------------ training on a sheet's table


def test_train_reads_long_format_and_crosstab_alike():
    long = [["userId", "movieId", "rating"], [1, 10, 4.0], [1, 20, 2.0], [2, 10, 5.0],
            [2, 30, 1.0], [3, 20, 3.0], [3, 30, 4.5]]
    cross = [[None, 10, 20, 30], [1, 4.0, 2.0, None], [2, 5.0, None, 1.0], [3, None, 3.0, 4.5]]
    a = functions.train_table(long, 2, 50, 0.1)
    b = functions.train_table(cross, 2, 50, 0.1)
    assert a == b
    assert a[0] == ["userId", "bias", "f1", "f2"] and [r[0] for r in a[1:4]] == [1, 2, 3]
    assert a[4] == ["movieId", "bias", "f1", "f2"] and [r[0] for r in a[5:8]] == [10, 20, 30]
    assert a[-1][0] == "rmse" and a[-1][1] < 1.0
    assert functions.train_table(long, 2, 50, 0.1) == a  # seeded
    assert functions.train_table(long[1:], 2, 50, 0.1) == a  # no header row
    labelled = [["user \\ movie", 10, 20]] + [row[:3] for row in cross[1:]]  # two movies
    assert [r[0] for r in functions.train_table(labelled, 2, 5)[:4]] == ["userId", 1, 2, 3]


# ------------------------------------------------------------------ the xlwings wrappers


@pytest.fixture(scope="module")
def udfs():
    pytest.importorskip("xlwings", reason="the excel extra (xlwings) is not installed: "
                                          "pip install -e '.[excel]' to test cfxl.excel.udfs")
    from cfxl.excel import udfs
    return udfs


def test_wrappers_return_what_the_library_computes(udfs, model):
    path, trained, _ = model
    m = str(path)
    assert udfs.cfxl_predict([[1]], [[2]], m) == model_functions.predict(trained, 1, 2)
    assert udfs.cfxl_recommend(1, 3, True, m) == model_functions.recommend(trained, 1, 3, True)
    assert udfs.cfxl_similar(2, 4, m) == model_functions.similar(trained, 2, 4)
    assert udfs.cfxl_dot([[1.0, 2.0]], [[3.0, 4.0]]) == 11.0
    assert udfs.cfxl_sigmoid_range([[0.0]], 0, 1) == 0.5
    assert udfs.cfxl_sgd_step([[1.0]], [[2.0]], 0.1) == [[0.8]]
    assert udfs.cfxl_momentum_step([[1.0]], [[2.0]], [[None]], 0.1) == [[0.8, 2.0]]
    assert udfs.cfxl_adam_step([[1.0]], [[2.0]], [[0.0]], [[0.0]], 0.1)[0][3] == 1.0
    assert udfs.cfxl_train([[None, 1, 2], [1, 3.0, 4.0], [2, 5.0, None]], 2, 5)[-1][0] == "rmse"


def test_bad_arguments_give_error_values_not_tracebacks(udfs, model, monkeypatch):
    path, _, _ = model
    m = str(path)
    monkeypatch.delenv(model_functions.MODEL_ENV, raising=False)
    cases = {
        udfs.cfxl_predict: ([[1]], [[999]], m),
        udfs.cfxl_recommend: (999, 5, True, m),
        udfs.cfxl_similar: (2, 0, m),
        udfs.cfxl_dot: ([[1.0, 2.0]], [[3.0]]),
        udfs.cfxl_sigmoid_range: ([["abc"]], 0, 1),
        udfs.cfxl_sgd_step: ([[1.0, 2.0]], [[1.0]], 0.1),
        udfs.cfxl_adam_step: ([[1.0]], [[1.0]], [[0.0]], [[0.0]], 0.1, None, 1e-8, 0.0, 1.5),
        udfs.cfxl_train: ([[1, 2]],),
    }
    for f, args in cases.items():
        got = f(*args)
        got = got[0][0] if isinstance(got, list) else got
        assert isinstance(got, str) and got.startswith(("#VALUE! ", "#N/A ")), (f.__name__, got)
    assert udfs.cfxl_predict([[1]], [[2]], str(path.with_name("nope.pt"))).startswith(
        "#VALUE! ") and "no such model file" in udfs.cfxl_predict([[1]], [[2]], "nope.pt")
    assert "unknown" in udfs.cfxl_recommend(999, 5, True, m)
    assert udfs.cfxl_predict([[1]], [[2]]).startswith("#VALUE! no model file")


def test_every_function_has_a_one_line_docstring(udfs):
    functions = [udfs.cfxl_predict, udfs.cfxl_recommend, udfs.cfxl_similar, udfs.cfxl_dot,
                 udfs.cfxl_sigmoid_range, udfs.cfxl_sgd_step, udfs.cfxl_momentum_step,
                 udfs.cfxl_adam_step, udfs.cfxl_train, udfs.cfxl_reset, udfs.cfxl_run,
                 udfs.cfxl_train_model, udfs.cfxl_refresh]
    for f in functions:
        assert f.__doc__ and "\n" not in f.__doc__.strip() and len(f.__doc__) < 110, f.__name__


# ------------------------------------------------------------------ xlwings' server dispatch

SERVER_SCRIPT = r"""
import asyncio, json, sys
import xlwings as xw
from xlwings.server import custom_functions_call, custom_functions_meta
import cfxl.excel.udfs as udfs

def call(name, *args):
    payload = {"client": "Office.js", "func_name": name, "args": [list(a) for a in args],
               "caller_address": "[Book1.xlsx]Sheet1!B2", "session_id": "s1",
               "culture_info_name": "en-US", "date_format": "M/d/yyyy",
               "version": xw.__version__, "runtime": "1.4"}
    return asyncio.run(custom_functions_call(payload, udfs))

names = sorted(f["name"] for f in custom_functions_meta(udfs)["functions"])
model = sys.argv[1]
print(json.dumps({
    "names": names,
    "predict": call("cfxl_predict", [[1], [2]], [[3, 4]], [[model]]),
    "unknown": call("cfxl_predict", [[999]], [[3]], [[model]]),
    "sgd": call("cfxl_sgd_step", [[1.0, 2.0]], [[0.5], [0.25]], [[0.1]], [[0.01]]),
    "adam": call("cfxl_adam_step", [[1.0]], [[2.0]], [[0.0]], [[0.0]], [[0.1]], [[0.9, 0.99]]),
}, default=str))
"""


def test_udfs_through_xlwings_server_dispatch(udfs, model, tmp_path):
    if not os.environ.get("XLWINGS_LICENSE_KEY"):
        pytest.skip("xlwings' server dispatch (xlwings/pro) needs XLWINGS_LICENSE_KEY: its licence "
                    "is PolyForm Noncommercial or paid, not the project's to accept")
    path, trained, _ = model
    script = tmp_path / "dispatch.py"
    script.write_text(SERVER_SCRIPT)
    env = dict(os.environ, XLWINGS_ON_SERVER="true")
    done = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "CFXL_PREDICT" in [n.upper() for n in out["names"]]
    want = model_functions.predict(trained, [[1], [2]], [[3, 4]])
    np.testing.assert_allclose(np.array(out["predict"], dtype=float), want, rtol=1e-6)
    assert str(out["unknown"]).find("#N/A user id 999") >= 0
    want = functions.sgd_step([[1.0, 2.0]], [[0.5], [0.25]], lr=0.1, weight_decay=0.01)
    np.testing.assert_allclose(np.array(out["sgd"], dtype=float), want, rtol=TOL)
    np.testing.assert_allclose(np.array(out["adam"], dtype=float)[0],
                               functions.adam_step([[1.0]], [[2.0]], [[0.0]], [[0.0]], lr=0.1,
                                               betas=[[0.9, 0.99]])[0], rtol=TOL)
