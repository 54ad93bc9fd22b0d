"""What cfxl must never do silently: round long ids, export a model against a changed ratings
file, save a diverged run, write CSV tables whose text Excel would run; and bad input is told in
one printable line, exit 1."""

import csv

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from cfxl.cli import cli
from cfxl.proof.recalc import recalc
from cfxl.proof.verify import verify
from cfxl.records.model_tables import csv_safe
from cfxl.sheets.table import EXACT_IDS, Column, id_as_text, write_table
from cfxl.workbooks import write_workbook

BIG = 2**63 - 4096  # ids near 2**63: a double there holds only every 1024th integer
USERS = [BIG + u for u in range(30)]  # 30 users a double would collapse to 16 or fewer
MOVIES = [2**62 + 3 * m + 1 for m in range(20)]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def big_ids(tmp_path_factory):
    """A generic CSV: 30 users with ids near 2**63, each rating 12 of 20 movies with ids near 2**62."""
    rng = np.random.default_rng(11)
    rows = [f"{u},{MOVIES[m]},{rng.integers(1, 6)}" for u in USERS
            for m in rng.choice(len(MOVIES), 12, replace=False)]
    path = tmp_path_factory.mktemp("big_ids") / "big.csv"
    path.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    assert len({float(u) for u in USERS}) < len(USERS)  # as numbers, some of them are one
    return path


def column(ws, col: int, first: int, last: int | None = None) -> list:
    return [r[0] for r in ws.iter_rows(min_row=first, max_row=last, min_col=col, max_col=col,
                                       values_only=True) if r[0] is not None]


@pytest.mark.recompute
def test_ids_a_double_cannot_hold_are_text_and_the_lookups_still_work(big_ids, tmp_path, engine,
                                                                     seed):
    # untrained slice models: errors far from zero, so every cell is judged on its lookups alone
    book, tables = tmp_path / "big.xlsx", tmp_path / "tables"
    result = run("export", big_ids, "--epochs", 1, "--seed", seed, "--untrained", "-q",
                 "-o", book, "--csv-dir", tables)
    assert result.exit_code == 0, result.output
    report = verify(recalc(book, engine=engine))
    assert report.failures == [] and sum(c.checked for c in report.sheets.values()) > 1000
    assert {"movielens_emb", "movielens_1hot", "nn"} <= set(report.sheets)

    users, movies = {str(u) for u in USERS}, {str(m) for m in MOVIES}
    wb = load_workbook(book, read_only=True)
    assert set(column(wb["users"], 1, 3)) == users  # every id its own text: 30, not 16
    assert set(column(wb["movies"], 1, 3)) == movies
    predictions = wb["predictions"]
    assert set(column(predictions, 1, 3)) <= users and set(column(predictions, 2, 3)) <= movies
    emb = [r for r in wb["movielens_emb"].iter_rows(min_row=4, max_row=18, max_col=11,
                                                    values_only=True)]
    assert len({r[1] for r in emb}) == 15 and {r[1] for r in emb} <= users  # the user table
    assert {r[9] for r in emb} <= users and {r[10] for r in emb} <= movies  # the ratings
    dotprod = wb["dotprod"]
    grid_users = column(dotprod, 7, 4, 18)  # column G for 5 factors, the crosstab's users
    grid_movies = next(dotprod.iter_rows(min_row=3, max_row=3, min_col=8, max_col=22,
                                         values_only=True))
    assert len(set(grid_users)) == 15 and set(grid_users) <= users
    assert len(set(grid_movies)) == 15 and set(grid_movies) <= movies
    with open(tables / "users.csv", newline="") as f:
        assert {row["userId"] for row in csv.DictReader(f)} == users  # exact digits


def test_the_cf_sheets_show_long_ids_as_text(big_ids, tmp_path):
    book = tmp_path / "g.xlsx"
    result = run("graddesc", big_ids, "--steps", 1, "--trace-users", USERS[3], "-o", book)
    assert result.exit_code == 0, result.output
    ids = column(load_workbook(book, read_only=True)["cf_sgd"], 2, 6)
    assert ids and set(ids) == {str(USERS[3])}


@pytest.mark.parametrize("raw, text", [(EXACT_IDS - 1, False), (EXACT_IDS, True), (-EXACT_IDS, True),
                                       (np.int64(2**53 + 1), True), (np.int32(7), False),
                                       ("u7", True), (1.5, False)])
def test_an_id_is_text_from_16_digits_on(raw, text):
    assert id_as_text(raw) is text


def test_a_table_column_mixes_numbers_and_long_ids_exactly(tmp_path):
    table = pd.DataFrame({"movieId": np.array([5, 2**53 + 1, -(10**15)], dtype=np.int64),
                          "bias": [0.5, -0.25, 1.0]})
    columns = {"movieId": Column("int"), "bias": Column("num")}
    path = write_workbook(tmp_path / "t.xlsx",
                          lambda b: write_table(b, b.sheet("t", "note"), table, columns, row=1))
    rows = list(load_workbook(path, read_only=True)["t"].iter_rows(min_row=3, values_only=True))
    assert rows == [(5, 0.5), ("9007199254740993", -0.25), ("-1000000000000000", 1.0)]


HOSTILE = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(1)",
           "\tTab", "\rCR", "Plain (1999)"]


def test_csv_tables_neutralise_formula_like_text_only():
    table = pd.DataFrame({"movieId": [1, 2, 3, 4, 5, 6, 7, 8], "title": HOSTILE,
                          "bias": [-0.3, 0.1, -1e-5, 2.0, -2.0, 0.0, -0.5, 0.25]})
    safe = csv_safe(table)
    assert safe["title"].tolist() == ["'" + t for t in HOSTILE[:-1]] + ["Plain (1999)"]
    assert safe["bias"].tolist() == table["bias"].tolist() and safe["bias"].dtype == np.float64
    assert table["title"].tolist() == HOSTILE  # the tables themselves are left alone


def test_export_csv_dir_is_safe_to_open_and_the_workbook_keeps_its_text(tmp_path):
    data = tmp_path / "ml"
    data.mkdir()
    movies = list(range(1, len(HOSTILE) + 1))
    rows = [f"{u},{m},{(u + m) % 5 + 1}.0,0" for u in range(1, 21) for m in movies if (u + m) % 4]
    (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    with open(data / "movies.csv", "w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(
            [("movieId", "title", "genres")] + [(m, t, "Drama") for m, t in zip(movies, HOSTILE)])
    book, tables = tmp_path / "b.xlsx", tmp_path / "tables"
    result = run("export", data, "--epochs", 1, "--bs", 32, "-q", "-o", book, "--csv-dir", tables)
    assert result.exit_code == 0, result.output
    written = pd.read_csv(tables / "movies.csv", keep_default_na=False)
    by_id = dict(zip(written["movieId"], written["title"]))
    assert [by_id[m] for m in movies] == ["'" + t for t in HOSTILE[:-1]] + ["Plain (1999)"]
    assert written["bias"].dtype == np.float64 and (written["bias"] < 0).any()  # numbers stay
    sheet = load_workbook(book, read_only=True)["movies"]
    shown = {r[0]: r[2] for r in sheet.iter_rows(min_row=3, max_col=3, values_only=True)}
    # the workbook's cells are text already (XlsxWriter stores a carriage return as _x000D_,
    # which Excel and LibreOffice decode, openpyxl not)
    assert [shown[m] for m in movies] == [t.replace("\r", "_x000D_") for t in HOSTILE]


def test_a_model_is_not_exported_against_a_changed_ratings_file(tmp_path):
    path = tmp_path / "ratings.csv"
    lines = [f"{u},{m},{(u * 7 + m * 3) % 9 / 2 + 0.5},0" for u in range(1, 21)
             for m in range(1, 16) if (u + m) % 3]
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(lines) + "\n")
    model = tmp_path / "m.pt"
    assert run("train", path, "--epochs", 1, "--factors", 3, "-q", "-o", model).exit_code == 0
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(reversed(lines)) + "\n")
    book = tmp_path / "m.xlsx"
    refused = run("export", model, "-q", "-o", book)
    assert refused.exit_code == 1 and not book.exists()
    assert refused.output.startswith(f"cfxl: error: {model}: the ratings file it was trained on, "
                                     f"{path}, has changed since (SHA-256 ")
    assert refused.output.rstrip().endswith(
        "the validation split is recomputed by position, so its predictions could include "
        "ratings the model trained on. Train again (`cfxl export RATINGS`), or pass --force to "
        "use the changed file as it is")
    assert len(refused.output.splitlines()) == 1
    forced = run("export", model, "-q", "-o", book, "--force")
    assert forced.exit_code == 0, forced.output
    upper = tmp_path / "M.PT"
    model.rename(upper)  # an upper-case suffix is a model too, not a ratings zip
    assert run("export", upper, "-q", "-o", tmp_path / "u.xlsx", "--force").exit_code == 0


RATINGS = "userId,movieId,rating,timestamp\n" + "\n".join(
    f"{u},{m},{(u * 7 + m * 3) % 9 / 2 + 0.5},0" for u in range(1, 21) for m in range(1, 16)
    if (u + m) % 3) + "\n"


def test_a_diverged_run_exits_1_and_saves_nothing(tmp_path):
    path, out = tmp_path / "ratings.csv", tmp_path / "m.pt"
    path.write_text(RATINGS)
    result = run("train", path, "--lr", "1e6", "-q", "-o", out)  # the default: sigmoid range + Adam
    assert result.exit_code == 1 and not out.exists()
    error = result.output.splitlines()[-1]
    assert error.startswith("cfxl: error: training diverged in epoch ")
    assert error.endswith("try a smaller learning rate than 1e+06 (for example --lr 100000)")


def test_options_are_named_as_typed(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("user,item,stars\n1,2,3\n")
    result = run("data", "info", path, "--rating-col", "score")
    assert (result.exit_code, result.output) == (
        1, f"cfxl: error: {path}: --rating-col (rating_col): no column 'score' (columns: user, "
           "item, stars)\n")


def test_binary_input_never_reaches_the_terminal_raw(tmp_path):
    path = tmp_path / "blob.csv"
    path.write_bytes(b"\x1b]0;owned\x07\x1b[2J" * 200 + b",x\n1,2\n")
    result = run("data", "info", path)
    assert result.exit_code == 1 and result.output.rstrip("\n").isprintable()
    assert "\\x1b[2J" in result.output and len(result.output) < len(str(path)) + 450


def test_an_unreadable_movies_csv_is_one_line(tmp_path, monkeypatch):
    from cfxl.data import layouts

    (tmp_path / "ratings.csv").write_text(RATINGS)
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A (1999),Drama\n")
    real_open = open

    def guarded(path, *args, **kwargs):  # as chmod 000 does for a user other than root
        if str(path).endswith("movies.csv"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(layouts, "open", guarded, raising=False)
    result = run("export", tmp_path, "-q", "-o", tmp_path / "b.xlsx")
    assert (result.exit_code, result.output) == (
        1, f"cfxl: error: {tmp_path / 'movies.csv'}: cannot read it (Permission denied)\n")
    assert not (tmp_path / "b.xlsx").exists()


def test_a_title_too_long_for_a_cell_is_cut_with_one_note(tmp_path):
    (tmp_path / "ratings.csv").write_text(RATINGS)
    (tmp_path / "movies.csv").write_text(f"movieId,title,genres\n1,{'T' * 40_000},Drama\n")
    book = tmp_path / "b.xlsx"
    result = run("export", tmp_path, "--epochs", 1, "-q", "-o", book)
    assert result.exit_code == 0, result.output
    assert result.output.count("cut to fit") == 1
    assert f"note: {tmp_path / 'movies.csv'}: 1 title (or genres) longer than" in result.output
    titles = {r[0]: r[2] for r in load_workbook(book, read_only=True)["movies"].iter_rows(
        min_row=3, max_col=3, values_only=True)}
    assert len(titles[1]) == 32_767 and titles[1].endswith("T... [cut: 40,000 characters]")


@pytest.fixture(scope="module")
def wild_ids(tmp_path_factory):
    """A generic CSV whose text ids hold * ? ~, each beside an id its unescaped pattern would
    match first or instead (u*3 matches uz3, u?3 matches uz3, u~3 matches only u3)."""
    rng = np.random.default_rng(12)
    users = [f"u{c}{i}" for i in range(8) for c in "*z?~"] + [f"u{i}" for i in range(8)]
    movies = [f"m{c}{j}" for j in range(5) for c in "*z?~"] + [f"m{j}" for j in range(5)]
    rows = [f"{u},{movies[m]},{rng.integers(1, 6)}" for u in rng.permutation(users)
            for m in rng.choice(len(movies), 14, replace=False)]
    path = tmp_path_factory.mktemp("wild_ids") / "wild.csv"
    path.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.recompute
def test_text_ids_with_wildcards_are_looked_up_as_themselves(wild_ids, tmp_path, engine, seed):
    """MATCH and COUNTIF read * ? ~ in a text lookup value as wildcards: cfxl escapes them, so
    every lookup of the lesson and recommend sheets finds its own id (LibreOffice's recalculated
    cells equal torch's, the chosen user's row and rating count among them)."""
    book = tmp_path / "wild.xlsx"
    result = run("export", wild_ids, "--epochs", 1, "--seed", seed, "--untrained", "-q", "-o", book)
    assert result.exit_code == 0, result.output
    report = verify(recalc(book, engine=engine))
    assert report.failures == []
    assert {"movielens_emb", "nn", "recommend", "similar"} <= set(report.sheets)
    assert report.sheets["recommend"].checked > 0 and report.sheets["movielens_emb"].checked > 0
