"""The recommend, similar and me sheets recomputed by LibreOffice: for the user, movie and ratings
a reader picks or types, their top 10 are the library's (cfxl.engine.recommend) to 1e-12, the
fold-in is the library's fold_in to 1e-9, and hostile titles stay text."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest
from openpyxl.utils import get_column_letter
from test_udfs import small_ratings
from tolerance import assert_close

from cfxl.data.ratings import read_ratings
from cfxl.engine import recommend as use
from cfxl.engine.train import Config, fit
from cfxl.proof.recalc import recalc
from cfxl.proof.verify import verify
from cfxl.records.model_tables import model_tables
from cfxl.records.recommend import recommend_records
from cfxl.sheets import me as me_sheet
from cfxl.sheets.model_sheets import write_model_sheets
from cfxl.sheets.ranking import FIRST, TOP_ROW
from cfxl.sheets.recommend import OWN_COL, write_recommend_sheets

pytestmark = pytest.mark.recompute

HOSTILE = ["=1+1", "+SUM(1,2)", "-2", "@cmd", "=HYPERLINK(\"http://x\",\"click\")"]
F32 = 2.0 ** -20  # torch's float32 forward against float64: a few float32 roundings


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = small_ratings(tmp_path_factory.mktemp("data") / "small", users=30, movies=40)
    movies = pd.read_csv(path.parent / "movies.csv")
    movies["title"] = [HOSTILE[i % len(HOSTILE)] + f" {i}" if i % 2 else t
                       for i, t in enumerate(movies["title"])]
    movies.to_csv(path.parent / "movies.csv", index=False)
    return read_ratings(path)


@pytest.fixture(scope="module")
def trained(data, seed):
    return fit(Config(n_factors=3, epochs=3, bs=64, seed=seed, device="cpu"), data, progress=False)


@pytest.fixture(scope="module")
def build(trained, data):
    tables = model_tables(trained, data)
    rec = recommend_records(trained, data, n_movies=len(trained.movies), n_users=len(trained.users))
    return lambda book: (write_model_sheets(book, tables), write_recommend_sheets(book, rec))


def top(values: dict, col: int, n: int = 10, *, row: int = TOP_ROW) -> dict[str, list]:
    """The top-10 table at (row, col), 0-based header: {header: column of values}."""
    heads = ["rank", "score", "row", "movieId", "title", "genres", "n_ratings"]
    return {h: [values.get(f"{get_column_letter(col + 1 + j)}{row + 2 + i}") for i in range(n)]
            for j, h in enumerate(heads)}


def edited(book, tmp_path, save_exactly, edits: dict[tuple[str, str], object]):
    wb = openpyxl.load_workbook(book)
    for (sheet, ref), value in edits.items():
        wb[sheet][ref].value = value
    return save_exactly(wb, tmp_path / "edited.xlsx")


def test_libreoffice_gives_every_new_cell_torchs_value(book, engine):
    report = verify(book, engine=engine)
    assert report.ok, report.failures[:3]
    for sheet in ("recommend", "similar", "me"):
        assert report.sheets[sheet].checked > 100


def test_the_choices_are_named_cells_with_drop_downs(book):
    wb = openpyxl.load_workbook(book)
    names = {n: wb.defined_names[n].attr_text for n in
             ("cfxl_user", "cfxl_movie", "cfxl_min_ratings", "cfxl_lambda", "cfxl_margin")}
    assert names == {"cfxl_user": "recommend!$B$3", "cfxl_movie": "similar!$B$3",
                     "cfxl_min_ratings": "similar!$B$6", "cfxl_lambda": "me!$B$4",
                     "cfxl_margin": "me!$B$5"}
    lists = {sheet: [dv.formula1 for dv in wb[sheet].data_validations.dataValidation if dv.type == "list"]
             for sheet in ("recommend", "similar")}
    assert lists == {"recommend": ["users!$A$3:$A$32"], "similar": ["movies!$A$3:$A$42"]}


@pytest.mark.parametrize("user", [1, 12, 30])
def test_a_chosen_user_gets_the_librarys_top_10(book, engine, save_exactly, tmp_path, trained, data, user):
    values = recalc(edited(book, tmp_path, save_exactly, {("recommend", "B3"): user}),
                    engine=engine).values["recommend"]
    got, want = top(values, 0), use.recommend(trained, user, ratings=data)
    lo, hi = trained.y_range
    assert got["movieId"] == [float(m) for m in want["movieId"]]
    assert_close(got["score"], want["predicted"], scale=hi - lo)
    assert_close(got["score"], trained.predict(np.full(10, user), want["movieId"].to_numpy()),
                 scale=hi - lo, rtol=F32)
    assert got["title"] == want["title"].tolist()  # hostile titles come back as their text
    assert any(t.startswith(tuple(HOSTILE)) for t in got["title"])
    assert got["n_ratings"] == [float(n) for n in want["n_ratings"]]

    own = top(values, OWN_COL)
    frame = data.frame()
    mine = frame[frame["userId"] == user]
    counts = use.movie_counts(trained, data)
    idx = trained.movies.index(mine["movieId"].to_numpy())
    scores = np.zeros(len(trained.movies))
    scores[idx] = mine["rating"].to_numpy()
    allowed = np.zeros(len(scores), bool)
    allowed[idx] = True
    best = use.rank(scores, counts, allowed, 10)  # by rating; ties as the movies sheet orders
    assert own["movieId"][:len(best)] == [float(m) for m in trained.movies.ids[best]]
    assert own["score"][:len(best)] == scores[best].tolist()


@pytest.mark.parametrize("movie, min_ratings", [(1, 0), (7, 15), (40, 18)])
def test_a_chosen_movie_gets_the_librarys_neighbours(book, engine, save_exactly, tmp_path, trained,
                                                     data, movie, min_ratings):
    path = edited(book, tmp_path, save_exactly,
                  {("similar", "B3"): movie, ("similar", "B6"): min_ratings})
    got = top(recalc(path, engine=engine).values["similar"], 0)
    want = use.similar(trained, movie, min_ratings=min_ratings, ratings=data)
    n = len(want)
    assert got["movieId"][:n] == [float(m) for m in want["movieId"]]
    assert_close(got["score"][:n], want["similarity"], scale=1.0)
    assert got["title"][:n] == want["title"].tolist()
    assert got["score"][n:] == [""] * (10 - n)  # fewer candidates than 10: blank ranks


@pytest.mark.parametrize("typed, lam", [({0: 5.0, 3: 0.5, 7: 4.0}, 1.0),
                                        ({i: 0.5 + (i % 10) / 2 for i in range(25)}, 0.3)])
def test_ratings_typed_on_me_give_the_librarys_fold_in(book, engine, save_exactly, tmp_path, trained,
                                                       data, typed, lam):
    order = use.rank(np.zeros(len(trained.movies)), use.movie_counts(trained, data),
                     np.ones(len(trained.movies), bool), len(trained.movies))  # the movies sheet's
    rows = {("me", f"E{me_sheet.RATE_ROW + 1 + i}"): r for i, r in typed.items()}
    path = edited(book, tmp_path, save_exactly, rows | {("me", "B4"): lam})
    values = recalc(path, engine=engine).values["me"]
    rated = {int(trained.movies.ids[order[i]]): r for i, r in typed.items()}
    vector, bias = use.fold_in(trained, rated, lam=lam)
    k = len(vector)
    theta_row = me_sheet.RATE_ROW + 25 + 3  # 0-based: the rated rows, a gap, the title, X'y
    theta = [values[f"{get_column_letter(me_sheet.X_COL + 1 + j)}{theta_row + 1}"] for j in range(k + 1)]
    assert_close(theta, np.append(vector, bias), scale=np.max(np.abs(vector)), rtol=1e-9)
    got = top(values, 3, row=me_sheet.TOP_ROW)
    want = use.recommend_folded(trained, rated, lam=lam, ratings=data)
    lo, hi = trained.y_range
    assert got["movieId"][:len(want)] == [float(m) for m in want["movieId"]]
    assert_close(got["score"][:len(want)], want["predicted"], scale=hi - lo, rtol=1e-9)
    assert not set(got["movieId"]) & {float(m) for m in rated}


def test_the_sheets_follow_the_movies_sheets_rows(recomputed, trained):
    movies, rec = recomputed.values["movies"], recomputed.values["recommend"]
    table = TOP_ROW + 10 + 3  # the per-movie table's header, 0-based
    ids = [movies[f"A{FIRST + 1 + i}"] for i in range(len(trained.movies))]
    assert [rec[f"A{table + 2 + i}"] for i in range(len(ids))] == ids


def test_embedding_dot_without_biases_or_sigmoid(engine, save_exactly, tmp_path, data, seed):
    from cfxl.workbooks import write_workbook

    dot = fit(Config(model="dot", n_factors=3, epochs=3, bs=64, seed=seed, device="cpu"), data,
              progress=False)
    rec = recommend_records(dot, data, n_movies=len(dot.movies), n_users=len(dot.users))
    tables = model_tables(dot, data)
    path = write_workbook(tmp_path / "dot.xlsx", lambda book: (write_model_sheets(book, tables),
                                                               write_recommend_sheets(book, rec)))
    report = verify(path, engine=engine)
    assert report.ok and report.sheets["me"].checked > 100, report.failures[:3]
    values = recalc(edited(path, tmp_path, save_exactly, {("recommend", "B3"): 5}),
                    engine=engine).values["recommend"]
    want = use.recommend(dot, 5, ratings=data)
    got = top(values, 0)
    assert got["movieId"] == [float(m) for m in want["movieId"]]
    assert_close(got["score"], want["predicted"], scale=np.max(np.abs(want["predicted"])))
