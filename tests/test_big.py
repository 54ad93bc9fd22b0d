"""Large data in bounded memory: the ml-25m-shaped generator, the streamed value sheets (the same
cells as sheets kept in memory), the rated sheet kept within a sheet's rows, CSVs in pieces."""

import csv
import re
import zipfile

import numpy as np
import pandas as pd
import pytest

import cfxl.records.model_tables as model_tables_module
import cfxl.sheets.book as book_module
import cfxl.workbooks as workbooks_module
from cfxl.data.ratings import read_ratings
from cfxl.data.sample import big
from cfxl.engine.train import Config, fit
from cfxl.errors import CfxlError
from cfxl.proof.diff import diff, format_diff
from cfxl.records.model_tables import csv_safe, write_csv
from cfxl.sheets.book import Book, ExactWorksheet
from cfxl.records.recommend import recommend_records
from cfxl.sheets.ranking import FIRST, shown_rows
from cfxl.workbooks import SliceOptions, export_collab, plan, rated_users

SIZES = dict(n_users=300, n_movies=800, n_ratings=30_000)
STREAMED = ("users", "movies", "predictions", "rated", "_torch")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("big")
    return out, big.make_big(out, **SIZES, seed=3)


def test_the_generator_writes_the_counts_asked_for_in_movielens_layout(made):
    out, counts = made
    frame = pd.read_csv(out / "ratings.csv")
    assert list(frame.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert len(frame) == counts["ratings"] == SIZES["n_ratings"]
    assert sorted(frame["userId"].unique()) == list(range(1, SIZES["n_users"] + 1))
    assert frame.groupby("userId").size().min() >= 20  # the MovieLens rule
    assert set(np.unique(frame["rating"] * 2)) <= set(range(1, 11))  # half stars, 0.5 to 5
    assert not frame.duplicated(["userId", "movieId"]).any()
    pairs = frame[["userId", "movieId"]].to_numpy()
    assert (np.lexsort((pairs[:, 1], pairs[:, 0])) == np.arange(len(pairs))).all()  # by user, then movie
    movies = pd.read_csv(out / "movies.csv")
    assert list(movies.columns) == ["movieId", "title", "genres"]
    assert set(movies["movieId"]) == set(frame["movieId"]) and counts["movies"] == len(movies)
    assert movies["movieId"].is_monotonic_increasing


def test_cfxl_reads_what_the_generator_writes(made):
    out, _ = made
    ratings = read_ratings(out / "ratings.csv")
    assert (len(ratings), ratings.n_users, ratings.layout) == (SIZES["n_ratings"], SIZES["n_users"], "csv")
    assert ratings.titles is not None and ratings.dropped_duplicates == 0


def test_the_generator_is_deterministic_and_the_seed_matters(made, tmp_path):
    out, _ = made
    big.make_big(tmp_path / "again", **SIZES, seed=3)
    big.make_big(tmp_path / "other", **SIZES, seed=4)
    for name in ("ratings.csv", "movies.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()
    assert (tmp_path / "other" / "ratings.csv").read_bytes() != (out / "ratings.csv").read_bytes()


def test_the_generator_keeps_a_file_already_there_unless_forced(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "movies.csv").write_text("my own movies\n")
    with pytest.raises(CfxlError, match="movies.csv"):
        big.make_big(folder, **SIZES, seed=3)
    assert (folder / "movies.csv").read_text() == "my own movies\n"
    assert not (folder / "ratings.csv").exists()  # checked before anything is written
    assert sorted(p.name for p in folder.iterdir()) == ["movies.csv"]  # nothing left behind
    big.make_big(folder, **SIZES, seed=3, force=True)
    assert (folder / "movies.csv").read_text().startswith("movieId,title,genres")


def test_exact_counts_nudges_users_within_the_movielens_bounds():
    rng = np.random.default_rng(0)
    most = np.array([2000, 2000, 2000, 25])
    n = big.exact_counts(rng, np.array([20, 30, 1999, 500]), 2560, most)
    assert n.sum() == 2560 and n.min() >= 20 and (n <= most).all()
    with pytest.raises(ValueError, match="cannot be spread"):
        big.exact_counts(rng, np.array([20, 20]), 39, np.array([2000, 2000]))


@pytest.fixture(scope="module")
def trained():
    data = read_ratings()
    return fit(Config(n_factors=3, epochs=1, device="cpu"), data, progress=False), data


def export(folder, trained, *, max_rows=40):
    """The collab workbook and its CSV tables written in folder, named relative to it."""
    model, data = trained
    folder.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("SOURCE_DATE_EPOCH", "1767225600")  # the same date on both
        out = plan("collab.xlsx", csv_dir="tables")
        return folder / export_collab(out, model, data, max_rows=max_rows,
                                      slice_options=SliceOptions(n_users=5, n_movies=5, n_factors=2))


def test_streamed_sheets_hold_the_same_cells_as_sheets_kept_in_memory(tmp_path, trained, monkeypatch):
    streamed = export(tmp_path / "streamed", trained)
    monkeypatch.setattr(book_module, "StreamedWorksheet", ExactWorksheet)
    in_memory = export(tmp_path / "in_memory", trained)
    found = diff(in_memory, streamed, rtol=0, atol=0)
    assert not found, format_diff(found)
    # the streamed path was the one taken: XlsxWriter's constant_memory writes strings inline
    for path, inline in ((streamed, set(STREAMED)), (in_memory, set())):
        assert set(inline_string_sheets(path)) == inline


def inline_string_sheets(path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        names = re.findall(r'<sheet name="([^"]+)" sheetId="(\d+)"', zf.read("xl/workbook.xml").decode())
        return [name for name, i in names
                if b't="inlineStr"' in zf.read(f"xl/worksheets/sheet{i}.xml")]


def test_a_streamed_sheet_refuses_a_row_it_has_written_already(tmp_path):
    book = Book(tmp_path / "b.xlsx")
    ws = book.sheet("long", "note", streamed=True)
    ws.write_number(5, 0, 1.0)
    ws.write_number(5, 3, 2.0)  # the same row, any column: fine
    with pytest.raises(ValueError, match="row 5 was written already"):
        ws.write_number(4, 0, 3.0)
    book.close()


def test_the_recommend_sheets_offer_the_users_whose_ratings_fit_on_rated(tmp_path, trained, monkeypatch):
    model, data = trained
    n_movies, n_users = shown_rows(len(model.movies), 40), shown_rows(len(model.users), 40)
    assert rated_users(model, data, n_movies, n_users) == n_users  # they fit a sheet: all of them
    monkeypatch.setattr(workbooks_module, "MAX_ROWS", 300)  # a sheet of 300 rows, as if
    room = 300 - FIRST
    fit_users = rated_users(model, data, n_movies, n_users)
    assert 0 < fit_users < n_users
    path = export(tmp_path, trained, max_rows=40)
    rated = pd.read_excel(path, sheet_name="rated", header=FIRST - 1)
    shown = recommend_records(model, data, n_movies=n_movies, n_users=fit_users).rated
    more = recommend_records(model, data, n_movies=n_movies, n_users=fit_users + 1).rated
    assert len(rated) == len(shown) <= room < len(more)  # the most users whose ratings fit
    assert set(rated["userId"]) <= set(model.users.ids[:fit_users].tolist())


def test_csv_tables_written_in_pieces_equal_one_written_whole(tmp_path, monkeypatch):
    table = pd.DataFrame({"id": np.arange(23), "title": ["=x", "+1", "a,b", "line\rbreak"] * 5 + ["z"] * 3,
                          "bias": np.linspace(-1, 1, 23)})
    csv_safe(table).to_csv(tmp_path / "whole.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
    monkeypatch.setattr(model_tables_module, "CSV_CHUNK", 5)
    write_csv(table, tmp_path / "pieces.csv")
    write_csv(table.iloc[:0], tmp_path / "empty.csv")
    assert (tmp_path / "pieces.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert (tmp_path / "empty.csv").read_text() == '"id","title","bias"\n'
