"""Recommendations from a trained model (cfxl.engine.recommend) and the recommend / similar
commands: rankings against torch's own forward pass, the fold-in against its normal equations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from test_udfs import small_ratings
from tolerance import assert_close

from cfxl.cli import cli
from cfxl.data.ratings import read_ratings
from cfxl.engine import checkpoint
from cfxl.engine import recommend as use
from cfxl.engine.train import Config, fit
from cfxl.errors import CfxlError, DataError, UnknownIdError

F32 = 2.0 ** -20  # torch's float32 forward against float64: a few float32 roundings of the score


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return read_ratings(small_ratings(tmp_path_factory.mktemp("data") / "small"))


@pytest.fixture(scope="module")
def trained(data):
    return fit(Config(n_factors=4, epochs=3, bs=64, device="cpu"), data, progress=False)


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    return checkpoint.save(trained, tmp_path_factory.mktemp("model") / "model.pt")


def seen(data, user) -> set:
    frame = data.frame()
    return set(frame.loc[frame["userId"] == user, "movieId"])


@pytest.mark.parametrize("user", [1, 7, 30])
def test_recommend_ranks_the_unrated_movies_by_torchs_prediction(trained, data, user):
    top = use.recommend(trained, user, n=10, ratings=data)
    assert list(top["rank"]) == list(range(1, 11))
    assert not set(top["movieId"]) & seen(data, user)
    torch_pred = trained.predict(np.full(10, user), top["movieId"].to_numpy())
    lo, hi = trained.y_range
    assert_close(top["predicted"], torch_pred, scale=hi - lo, rtol=F32)
    every = use.model_scores(trained, user)  # float64 from the parameters, all movies
    unseen = [m for m in trained.movies.ids if m not in seen(data, user)]
    best = max(every[trained.movies.index(m)] for m in unseen)
    assert top["predicted"].iloc[0] == best
    assert top["predicted"].is_monotonic_decreasing


def test_include_rated_ranks_every_movie(trained, data):
    top = use.recommend(trained, 1, n=len(trained.movies), include_rated=True, ratings=data)
    assert sorted(top["movieId"]) == sorted(trained.movies.ids.tolist())
    counts = dict(zip(top["movieId"], top["n_ratings"]))
    assert sum(counts.values()) == len(data)


def test_ties_go_to_the_more_rated_movie_then_the_first_met():
    scores = np.array([1.0, 2.0, 2.0, 2.0, 0.5])
    counts = np.array([5, 3, 9, 3, 1])
    assert use.rank(scores, counts, np.ones(5, bool), 4).tolist() == [2, 1, 3, 0]
    assert use.rank(scores, counts, np.array([1, 1, 0, 1, 1], bool), 2).tolist() == [1, 3]


def test_similar_is_torchs_cosine_among_popular_movies(trained, data):
    movie = int(trained.movies.ids[0])
    top = use.similar(trained, movie, n=5, min_ratings=20, ratings=data)
    w = trained.model.i_weight.weight.detach().double()
    want = torch.nn.functional.cosine_similarity(
        w[trained.movies.index(top["movieId"].to_numpy())], w[trained.movies.index(movie)][None], dim=1)
    assert_close(top["similarity"], want.numpy(), scale=1.0)
    assert movie not in set(top["movieId"])
    assert (top["n_ratings"] >= 20).all()
    assert top["similarity"].is_monotonic_decreasing


def test_fold_in_solves_the_ridge_normal_equations(trained):
    f = use.factors(trained)
    movies = trained.movies.ids[:6]
    rated = dict(zip(movies.tolist(), [5.0, 4.5, 1.0, 0.5, 3.0, 4.0]))
    lam = 0.7
    vector, bias = use.fold_in(trained, rated, lam=lam)
    idx = trained.movies.index(movies)
    x = np.hstack([f.i_weight[idx], np.ones((6, 1))])  # (6, k + 1)
    lo, hi = trained.y_range
    q = np.clip(list(rated.values()), lo + 0.25, hi - 0.25)
    y = np.log((q - lo) / (hi - q)) - f.i_bias[idx]
    theta = np.append(vector, bias)
    gradient = x.T @ (x @ theta - y) + lam * theta  # of 1/2 |X theta - y|^2 + lam/2 |theta|^2
    assert_close(gradient, np.zeros_like(gradient), scale=np.abs(x).T @ np.abs(y) + 1.0)


def test_fold_in_without_ratings_is_the_movie_biases_alone(trained, data):
    vector, bias = use.fold_in(trained, {})
    assert not vector.any() and bias == 0.0
    top = use.recommend_folded(trained, {}, n=3, ratings=data)
    f = use.factors(trained)
    assert top["movieId"].iloc[0] == trained.movies.ids[np.argmax(f.i_bias)]


def test_a_folded_in_user_is_not_offered_what_they_rated(trained, data):
    liked = {int(m): 5.0 for m in trained.movies.ids[:3]}
    top = use.recommend_folded(trained, liked, n=10, ratings=data)
    assert not set(top["movieId"]) & set(liked)
    vector, bias = use.fold_in(trained, liked)
    assert_close(top["predicted"], use.factors(trained).scores(vector, bias)[
        trained.movies.index(top["movieId"].to_numpy())])


@pytest.mark.parametrize("rated, lam, says", [
    ({1: 9.0}, 1.0, "movie 1: rating 9 is outside the model's range"),
    ({1: 4.0}, 0.0, "lambda must be above 0"),
])
def test_fold_in_refuses_what_it_cannot_fit(trained, rated, lam, says):
    with pytest.raises(CfxlError, match=says):
        use.fold_in(trained, rated, lam=lam)


def test_an_unknown_id_says_so(trained, data):
    with pytest.raises(UnknownIdError):
        use.fold_in(trained, {123456: 4.0})
    with pytest.raises(UnknownIdError):
        use.recommend(trained, 123456, ratings=data)
    with pytest.raises(CfxlError, match="-n"):
        use.recommend(trained, 1, n=0, ratings=data)


def test_the_net_cannot_be_folded_in(data):
    net = fit(Config(model="net", n_factors=3, epochs=1, bs=64, device="cpu"), data, progress=False)
    with pytest.raises(CfxlError, match="EmbeddingNet"):
        use.fold_in(net, {1: 4.0})
    top = use.recommend(net, 1, n=3, ratings=data)  # its own forward pass
    assert_close(top["predicted"], net.predict(np.full(3, 1), top["movieId"].to_numpy()), rtol=F32)


def test_read_my_ratings(tmp_path):
    good = tmp_path / "my.csv"
    good.write_text("movieId,title,rating\n3,Film 3,4.5\nabc,x,1\n")
    assert use.read_my_ratings(good) == {3: 4.5, "abc": 1.0}
    bad = tmp_path / "bad.csv"
    bad.write_text("movieId,rating\n3,great\n")
    with pytest.raises(DataError, match="bad.csv, line 2, column 'rating'"):
        use.read_my_ratings(bad)
    (tmp_path / "none.csv").write_text("id,stars\n1,2\n")
    with pytest.raises(DataError, match="movieId and rating"):
        use.read_my_ratings(tmp_path / "none.csv")


# ------------------------------------------------------------------ the commands


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cfxl_recommend_prints_the_libraries_table(saved, trained, data):
    result = run("recommend", saved, "--user", 7, "-n", 3)
    assert result.exit_code == 0, result.output
    top = use.recommend(trained, 7, n=3, ratings=data)
    widths = (4, 7, max(5, *map(len, top["title"])), 9, 7)  # rank movieId title predicted ratings
    rows = [("rank", "movieId", "title", "predicted", "ratings")] + [
        (r.rank, r.movieId, r.title, f"{r.predicted:.4f}", f"{r.n_ratings:,d}") for r in top.itertuples()]
    assert result.output == (
        "user 7: the 3 movies predicted highest of those they have not rated\n"
        + "".join("  ".join(str(c).rjust(w) for c, w in zip(row, widths)) + "\n" for row in rows))


def test_cfxl_recommend_json_and_a_new_user(saved, trained, data, tmp_path):
    result = run("recommend", saved, "--user", 7, "-n", 2, "--json")
    rows = json.loads(result.output)
    want = use.recommend(trained, 7, n=2, ratings=data)
    assert [r["movieId"] for r in rows] == want["movieId"].tolist()
    assert [r["predicted"] for r in rows] == want["predicted"].tolist()  # exact: repr round-trips
    mine = tmp_path / "my.csv"
    mine.write_text("movieId,rating\n1,5\n2,0.5\n")
    result = run("recommend", saved, "--ratings", mine, "-n", 2, "--json")
    folded = use.recommend_folded(trained, {1: 5.0, 2: 0.5}, n=2, ratings=data)
    assert [r["movieId"] for r in json.loads(result.output)] == folded["movieId"].tolist()
    heading = run("recommend", saved, "--ratings", mine, "-n", 2).output.splitlines()[0]
    assert heading == (f"{mine}: a new user fitted to 2 ratings (lambda 1): the 2 movies "
                       "predicted highest of the rest")


def test_cfxl_similar(saved, trained, data):
    result = run("similar", saved, "--movie", 1, "-n", 2, "--min-ratings", 5)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "movie 1 (Film 1 (1951)): the 2 movies most similar, rated at least 5 times"
    want = use.similar(trained, 1, n=2, min_ratings=5, ratings=data)
    assert [int(line.split()[1]) for line in lines[2:]] == want["movieId"].tolist()


@pytest.mark.parametrize("args, says", [
    (["--user", 1, "--ratings", "x.csv"], "give --user ID"),
    ([], "give --user ID"),
    (["--user", 99999], "user id '99999' is unknown"),
    (["--user", 1, "-n", 0], "-n (how many movies) must be at least 1, not 0"),
])
def test_cfxl_recommend_mistakes_are_one_line(saved, args, says):
    result = run("recommend", saved, *args)
    assert result.exit_code == 1
    assert result.output.startswith("cfxl: error: ") and says in result.output
    assert len(result.output.splitlines()) == 1


def test_results_are_tables_of_python_values(trained, data):
    top = use.similar(trained, 1, n=2, min_ratings=0, ratings=data)
    assert isinstance(top, pd.DataFrame)
    assert list(top.columns) == ["rank", "movieId", "title", "genres", "similarity", "n_ratings"]
