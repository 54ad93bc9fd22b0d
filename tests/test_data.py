"""cfxl.data.ratings: every ratings layout, id maps, the split, the crosstab and each bad input's message."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import cfxl
from cfxl.data import layouts
from cfxl.data.ratings import IdMap, crosstab, file_sha256, read_ratings, split
from cfxl.errors import DataError, UnknownIdError

# The same five ratings in every layout: (user, movie, rating, timestamp).
ROWS = [(15, 302, 3, 881250949), (7, 242, 5, 875747190), (15, 242, 4, 883603013),
        (22, 377, 1, 878887116), (7, 51, 2, 880606923)]
EXPECTED = pd.DataFrame({"userId": np.array([r[0] for r in ROWS], dtype=np.int64),
                         "movieId": np.array([r[1] for r in ROWS], dtype=np.int64),
                         "rating": np.array([r[2] for r in ROWS], dtype=np.float32),
                         "timestamp": np.array([r[3] for r in ROWS], dtype=np.int64)})
CSV = "userId,movieId,rating,timestamp\n" + "".join(f"{u},{m},{r}.0,{t}\n" for u, m, r, t in ROWS)
U_DATA = "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in ROWS)
RATINGS_DAT = "".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in ROWS)

MOVIES_CSV = ('movieId,title,genres\n302,"Café, The (1997)",Crime|Film-Noir\n242,Kolya (1996),Comedy\n'
              "51,Legends (1994),(no genres listed)\n")


def u_item_line(movie: int, title: str, genres: set[str]) -> str:
    names = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
             "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
             "Romance", "Sci-Fi", "Thriller", "War", "Western"]
    flags = "|".join("1" if n in genres else "0" for n in names)
    return f"{movie}|{title}|01-Jan-1997||http://us.imdb.com/M/title-exact?x|{flags}\n"


U_ITEM = (u_item_line(302, "Café (1997)", {"Crime", "Film-Noir"}) + u_item_line(242, "Kolya (1996)", {"Comedy"})
          + u_item_line(51, "Legends (1994)", {"unknown"})).encode("latin-1")
MOVIES_DAT = ("302::Café: L.A. Noir (1997)::Crime|Film-Noir\n242::Kolya (1996)::Comedy\n"
              "51::Legends (1994)::\n").encode("latin-1")

LAYOUTS = {  # layout -> ratings file, its text, titles file, its bytes, the title of movie 302
    "csv": ("ratings.csv", CSV, "movies.csv", MOVIES_CSV.encode(), "Café, The (1997)"),
    "u.data": ("u.data", U_DATA, "u.item", U_ITEM, "Café (1997)"),
    "ratings.dat": ("ratings.dat", RATINGS_DAT, "movies.dat", MOVIES_DAT, "Café: L.A. Noir (1997)"),
}
HEADER = "userId,movieId,rating,timestamp\n"


def check_expected(r, layout: str, title: str):
    assert r.layout == layout
    assert_frame_equal(r.frame(), EXPECTED)
    assert r.users.ids.tolist() == [15, 7, 22]  # first appearance, as the lesson's dict
    assert r.movies.ids.tolist() == [302, 242, 377, 51]
    assert r.user_idx.tolist() == [0, 1, 0, 2, 1] and r.movie_idx.tolist() == [0, 1, 1, 2, 3]
    assert (r.user_idx.dtype, r.movie_idx.dtype, r.rating.dtype) == (np.int32, np.int32, np.float32)
    assert (len(r), r.n_users, r.n_movies, r.rating_range, r.dropped_duplicates) == (5, 3, 4, (1.0, 5.0), 0)
    assert r.title(302) == title and r.title(242) == "Kolya (1996)"
    assert r.title(377) == "movie 377"  # rated but not in the titles file
    assert r.titles.loc[302, "genres"] == "Crime|Film-Noir"
    assert r.titles.loc[51, "genres"] == ""  # unknown genres read as ''


def message(excinfo) -> str:
    return str(excinfo.value)


# ---- layouts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_reads_each_movielens_layout_with_its_titles(tmp_path, ml_files, layout):
    rname, rtext, tname, tbytes, title = LAYOUTS[layout]
    ml_files(tmp_path, {rname: rtext, tname: tbytes})
    r = read_ratings(tmp_path / rname)
    check_expected(r, layout, title)
    assert r.source == tmp_path / rname


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("folder", ["ml-x/", ""])
def test_reads_each_layout_from_a_zip(tmp_path, ml_zip, layout, folder):
    rname, rtext, tname, tbytes, title = LAYOUTS[layout]
    archive = ml_zip(tmp_path / "ml.zip", {f"{folder}README.txt": "read me",
                                           f"{folder}{rname}": rtext, f"{folder}{tname}": tbytes})
    r = read_ratings(archive)
    check_expected(r, layout, title)
    assert r.source == archive


def test_zip_is_recognised_by_content_not_extension(tmp_path, ml_zip):
    archive = ml_zip(tmp_path / "download.bin", {"ml-100k/u.data": U_DATA})
    assert_frame_equal(read_ratings(archive).frame(), EXPECTED)


def test_reads_a_directory_holding_the_ratings_file(tmp_path, ml_files):
    ml_files(tmp_path, {"ml-100k/u.data": U_DATA, "ml-100k/u.item": U_ITEM, "notes/other.csv": "a,b\n1,2\n"})
    r = read_ratings(tmp_path)
    check_expected(r, "u.data", "Café (1997)")
    assert r.source == tmp_path / "ml-100k" / "u.data"


@pytest.mark.parametrize("name, text, layout", [("u1.base", U_DATA, "u.data"),
                                                ("ratings.txt", RATINGS_DAT, "ratings.dat"),
                                                ("mine.txt", CSV, "csv")])
def test_layout_is_detected_from_content_whatever_the_name(tmp_path, ml_files, name, text, layout):
    ml_files(tmp_path, {name: text})
    r = read_ratings(tmp_path / name)
    assert r.layout == layout and r.titles is None
    assert_frame_equal(r.frame(), EXPECTED)


def test_generic_csv_with_columns_named_by_options(tmp_path, ml_files):
    ml_files(tmp_path, {"mine.csv": "who,what,how_much,when\nann,x1,10,2020\nbob,x1,7.5,2021\nann,x2,0,2022\n"})
    r = read_ratings(tmp_path / "mine.csv", user_col="who", item_col="WHAT", rating_col="how_much")
    assert r.layout == "generic" and r.timestamp is None and r.titles is None
    assert r.users.to_state() == ["ann", "bob"] and r.movies.to_state() == ["x1", "x2"]
    assert r.rating.tolist() == [10.0, 7.5, 0.0]  # no MovieLens bounds for other files
    assert r.frame()["userId"].tolist() == ["ann", "bob", "ann"]


@pytest.mark.parametrize("header, sep", [("user_id,item_id,score,timestamp", ","),
                                         ("UID\tMovie\tStars\tTime", "\t"),
                                         ("User;Item;Rating;ts", ";")])
def test_generic_csv_columns_are_inferred(tmp_path, ml_files, header, sep):
    body = "".join(sep.join(map(str, row)) + "\n" for row in ROWS)
    ml_files(tmp_path, {"mine.txt": header + "\n" + body})
    r = read_ratings(tmp_path / "mine.txt")
    assert r.layout == "generic"
    assert_frame_equal(r.frame(), EXPECTED)


def test_headerless_generic_csv_is_user_item_rating(tmp_path, ml_files):
    ml_files(tmp_path, {"plain.csv": "1,10,4.5\n2,10,3\n"})
    r = read_ratings(tmp_path / "plain.csv")
    assert r.layout == "generic" and r.timestamp is None
    assert r.frame().values.tolist() == [[1, 10, 4.5], [2, 10, 3.0]]


def test_duplicates_keep_the_last_rating_and_are_counted(tmp_path, ml_files):
    rows = [(1, 10, 2.0, 1), (2, 10, 3.0, 2), (1, 10, 4.5, 3), (1, 20, 1.0, 4), (1, 10, 5.0, 5)]
    ml_files(tmp_path, {"ratings.csv": HEADER + "".join(f"{u},{m},{r},{t}\n" for u, m, r, t in rows)})
    r = read_ratings(tmp_path / "ratings.csv")
    assert r.dropped_duplicates == 2
    assert r.frame().values.tolist() == [[2, 10, 3.0, 2], [1, 20, 1.0, 4], [1, 10, 5.0, 5]]
    assert r.users.ids.tolist() == [1, 2]  # order of first appearance in the file, dropped rows too


def test_embedded_sample_needs_no_path():
    sample = Path(cfxl.__file__).parent / "data" / "sample" / "ratings.csv"
    r = read_ratings()
    assert Path(r.source).resolve() == sample.resolve()
    assert r.layout == "csv" and len(r) > 1000 and r.n_users > 10


# ---- bad input: one line naming the file, and the line and column where known ----------------


def read_error(tmp_path, ml_files, name, content, **options) -> DataError:
    ml_files(tmp_path, {name: content})
    with pytest.raises(DataError) as excinfo:
        read_ratings(tmp_path / name, **options)
    assert "\n" not in str(excinfo.value)
    return excinfo.value


@pytest.mark.parametrize("content, line, column, text", [
    (HEADER + "1,2,3.0,5\n1,3,abc,6\n", 3, "rating", "rating 'abc' is not a number"),
    (HEADER + "1,2,3.0,5\n\n1,3,abc,6\n", 4, "rating", "rating 'abc' is not a number"),  # blank lines count
    (HEADER + "1,2,3.0,5\n1,3,,6\n", 3, "rating", "the rating is empty"),
    (HEADER + "1,2,3.0,5\n1,3,NaN,6\n", 3, "rating", "rating 'NaN' is not a number"),
    (HEADER + "1,2,3.0,5\n1,3,inf,6\n", 3, "rating", "rating 'inf' is not a finite number"),
    (HEADER + "1,2,3.0,5\n1,3,4,6\n1,4,5.5,7\n", 4, "rating", "rating 5.5 is outside the allowed range 0.5 to 5"),
    (HEADER + "1,2,0,5\n", 2, "rating", "rating 0 is outside the allowed range 0.5 to 5"),
    (HEADER + "1,2,3.0,5\nu7,3,4.0,6\n", 3, "userId", "user id 'u7' is not a whole number"),
    (HEADER + "1,2,3.0,5\n1,,4.0,6\n", 3, "movieId", "the movie id is empty"),
    (HEADER + "1,2,3.0,5\n1,3,4.0,yesterday\n", 3, "timestamp", "timestamp 'yesterday' is not a whole number"),
])
def test_bad_values_in_a_movielens_csv_are_located(tmp_path, ml_files, content, line, column, text):
    err = read_error(tmp_path, ml_files, "ratings.csv", content)
    assert str(err) == f"{tmp_path / 'ratings.csv'}, line {line}, column {column!r}: {text}"
    assert (err.line, err.column) == (line, column)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bad, text", [("x", "rating 'x' is not a number"), ("9", "rating 9 is outside the allowed "
                                       "range 0.5 to 5"), ("", "the rating is empty")])
@pytest.mark.parametrize("at", [2, 150, 199])
def test_bad_value_is_located_across_blocks_and_blank_lines(tmp_path, ml_files, monkeypatch, layout, bad, text, at):
    monkeypatch.setattr(layouts, "CHUNK_BYTES", 64)  # many blocks, cut in the middle of lines
    sep = {"csv": ",", "u.data": "\t", "ratings.dat": "::"}[layout]
    lines = [HEADER.strip()] if layout == "csv" else []
    for i in range(200):
        lines += [""] * (i % 13 == 5)  # blank lines count in line numbers
        lines.append(sep.join([str(i % 7 + 1), str(i + 1), bad if i == at else str(i % 5 + 1), str(1000 + i)]))
    name = LAYOUTS[layout][0]
    err = read_error(tmp_path, ml_files, name, "\n".join(lines) + "\n")
    line = 1 + next(n for n, t in enumerate(lines) if t.split(sep)[1:2] == [str(at + 1)])
    assert str(err) == f"{tmp_path / name}, line {line}, column 'rating': {text}"
    ml_files(tmp_path, {name: "\n".join(lines).replace(sep + bad + sep, sep + "3" + sep) + "\n"})
    assert len(read_ratings(tmp_path / name)) == 200  # and blank lines alone are no fault


def test_bad_values_in_headerless_layouts_are_located(tmp_path, ml_files):
    err = read_error(tmp_path, ml_files, "u.data", "1\t2\t3\t5\n1\t3\t7\t6\n")
    assert str(err) == f"{tmp_path / 'u.data'}, line 2, column 'rating': rating 7 is outside the allowed range 0.5 to 5"
    err = read_error(tmp_path, ml_files, "ratings.dat", "1::2::3::5\n1::3::4::6\n::4::x::7\n")
    assert str(err) == f"{tmp_path / 'ratings.dat'}, line 3, column 'user': the user id is empty"


def test_bad_value_inside_a_zip_names_the_member(tmp_path, ml_zip):
    archive = ml_zip(tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": "1::2::3::5\n1::3::four::6\n"})
    with pytest.raises(DataError) as excinfo:
        read_ratings(archive)
    assert message(excinfo) == f"{archive}:ml-1m/ratings.dat, line 2, column 'rating': rating 'four' is not a number"


def test_rating_bounds_can_be_set(tmp_path, ml_files):
    err = read_error(tmp_path, ml_files, "mine.csv", "user,item,rating\na,b,3\na,c,10\n", rating_bounds=(1, 5))
    assert str(err).endswith("line 3, column 'rating': rating 10 is outside the allowed range 1 to 5")
    ml_files(tmp_path, {"ratings.csv": HEADER + "1,2,0,5\n"})
    assert read_ratings(tmp_path / "ratings.csv", rating_bounds=(0, 10)).rating.tolist() == [0.0]


def test_empty_id_in_a_generic_csv(tmp_path, ml_files):
    err = read_error(tmp_path, ml_files, "mine.tsv", "user_id\tiid\tstars\na\tx\t4.0\nb\t\t7\n")
    assert str(err) == f"{tmp_path / 'mine.tsv'}, line 3, column 'iid': the movie id is empty"


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as excinfo:
        read_ratings(tmp_path / "nope.csv")
    assert message(excinfo) == f"{tmp_path / 'nope.csv'}: no such file or directory"


@pytest.mark.parametrize("content, text", [("", "the file is empty: no ratings"),
                                           ("\n  \n", "the file is empty: no ratings"),
                                           (HEADER, "no ratings: the file has a header but no rows")])
def test_empty_files(tmp_path, ml_files, content, text):
    assert str(read_error(tmp_path, ml_files, "ratings.csv", content)) == f"{tmp_path / 'ratings.csv'}: {text}"


def test_missing_columns_say_which_exist(tmp_path, ml_files):
    err = read_error(tmp_path, ml_files, "mine.csv", "person,film,when\n1,2,3\n")
    assert str(err) == (f"{tmp_path / 'mine.csv'}: no user column among person, film, when; name it "
                        "with --user-col (user_col)")
    err = read_error(tmp_path, ml_files, "mine.csv", "user,item,stars\n1,2,3\n", rating_col="score")
    assert str(err) == (f"{tmp_path / 'mine.csv'}: --rating-col (rating_col): no column 'score' "
                        "(columns: user, item, stars)")


def test_column_options_on_a_headerless_file(tmp_path, ml_files):
    err = read_error(tmp_path, ml_files, "u.data", U_DATA, user_col="user")
    assert str(err) == (f"{tmp_path / 'u.data'}: this file has no header row, so --user-col, "
                        "--item-col and --rating-col (user_col, item_col, rating_col) can't choose "
                        "its columns; they are user, item, rating[, timestamp]")


def test_a_line_with_too_many_fields(tmp_path, ml_files):
    err = read_error(tmp_path, ml_files, "ratings.csv", HEADER + "1,2,3.0,5\n\n1,3,4.0,6,7\n")
    assert str(err) == f"{tmp_path / 'ratings.csv'}, line 4: expected 4 fields, saw 5"


def test_unparseable_csv(tmp_path, ml_files):
    err = read_error(tmp_path, ml_files, "ratings.csv", HEADER + '1,2,3.0,5\n1,"3,4.0,6\n')
    assert str(err).startswith(f"{tmp_path / 'ratings.csv'}: cannot parse the file: ")


def test_text_that_is_not_utf8(tmp_path, ml_files):
    err = read_error(tmp_path, ml_files, "mine.csv", b"user,item,rating\n\xe9mile,1,2\n")
    assert str(err) == (f"{tmp_path / 'mine.csv'}, line 2: not UTF-8 text: byte 0xe9 at character 1 "
                        "(invalid continuation byte); save the file as UTF-8")


def test_zip_problems(tmp_path, ml_files, ml_zip):
    ml_files(tmp_path, {"fake.zip": "userId,movieId\n"})
    with pytest.raises(DataError) as excinfo:
        read_ratings(tmp_path / "fake.zip")
    assert message(excinfo) == f"{tmp_path / 'fake.zip'}: not a zip file, or a corrupt one (no zip directory found)"

    archive = ml_zip(tmp_path / "other.zip", {"stuff/readme.txt": "hi", "stuff/tags.csv": "a\n"})
    with pytest.raises(DataError) as excinfo:
        read_ratings(archive)
    assert message(excinfo) == (f"{archive}: no ratings file (ratings.csv, u.data, ratings.dat) in this zip; "
                                "it holds: stuff/readme.txt, stuff/tags.csv")

    archive = ml_zip(tmp_path / "broken.zip", {"ml-1m/ratings.dat": "1::10::4::5\n" * 2000})
    data = bytearray(archive.read_bytes())
    data[60:70] = b"\xff" * 10  # inside the deflated ratings
    archive.write_bytes(bytes(data))
    with pytest.raises(DataError) as excinfo:
        read_ratings(archive)
    assert message(excinfo).startswith(f"{archive}: corrupt zip file (")


def test_directory_without_ratings(tmp_path, ml_files):
    ml_files(tmp_path, {"movies.csv": MOVIES_CSV})
    with pytest.raises(DataError) as excinfo:
        read_ratings(tmp_path)
    assert message(excinfo) == f"{tmp_path}: no ratings file (ratings.csv, u.data, ratings.dat) in this directory"


def test_bad_titles_file_is_located(tmp_path, ml_files):
    ml_files(tmp_path, {"ratings.dat": RATINGS_DAT, "movies.dat": b"302::Cafe (1997)::Crime\nnot a movie\n"})
    with pytest.raises(DataError) as excinfo:
        read_ratings(tmp_path / "ratings.dat")
    assert message(excinfo) == f"{tmp_path / 'movies.dat'}, line 2: expected MovieID::Title::Genres"


# ---- IdMap ------------------------------------------------------------------------------------


def test_idmap_is_in_order_of_first_appearance():
    ids, codes = IdMap.from_values(np.array([50, 3, 50, 9, 3]), "movie")
    assert ids.ids.tolist() == [50, 3, 9] and codes.tolist() == [0, 1, 0, 2, 1] and codes.dtype == np.int32
    lesson = {o: i for i, o in enumerate(pd.Series([50, 3, 50, 9, 3]).unique())}
    assert {int(o): ids.index(o) for o in lesson} == lesson
    assert len(ids) == 3 and repr(ids) == "IdMap('movie', 3 ids)"


def test_idmap_state_round_trip_through_torch_weights_only(tmp_path):
    torch = pytest.importorskip("torch")
    ints, _ = IdMap.from_values(np.array([7, 1, 7, 4], dtype=np.int32), "user")
    strs, _ = IdMap.from_values(np.array(["b", "a", "b"], dtype=object), "movie")
    assert ints.to_state() == [7, 1, 4] and all(type(i) is int for i in ints.to_state())
    assert strs.to_state() == ["b", "a"]
    torch.save({"users": ints.to_state(), "movies": strs.to_state()}, tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert IdMap.from_state(state["users"], "user") == ints
    assert IdMap.from_state(state["movies"], "movie") == strs
    assert IdMap.from_state([7, 1, 4], "movie") != ints  # another name
    assert IdMap.from_state([1, 7, 4], "user") != ints  # another order
    assert len(IdMap.from_state([], "user")) == 0


def test_idmap_lookups_are_scalar_or_vectorised():
    movies = IdMap([302, 242, 51], "movie")
    assert movies.index(242) == 1 and type(movies.index(242)) is int
    assert movies.index(np.int32(51)) == 2
    assert movies.index("302") == 0  # ids typed on a command line
    found = movies.index(np.array([51, 302, 51]))
    assert found.dtype == np.int64 and found.tolist() == [2, 0, 2]
    assert movies.id_of(1) == 242 and type(movies.id_of(1)) is int
    assert movies.id_of(np.array([2, 0])).tolist() == [51, 302]
    names = IdMap(np.array(["x", "y"], dtype=object), "user")
    assert names.index("y") == 1 and names.id_of(0) == "x" and names.index(["y", "x"]).tolist() == [1, 0]


def test_unknown_ids_say_why():
    movies = IdMap.from_values(np.arange(1, 1683), "movie", source="u.data")[0]
    with pytest.raises(UnknownIdError) as excinfo:
        movies.index(1999)
    assert message(excinfo) == ("movie id 1999 is unknown: the model was trained on 1,682 movies from u.data "
                                "and never saw this id; check the id column or retrain with data that contains it")
    with pytest.raises(UnknownIdError) as excinfo:
        movies.index([5, 0, 1999])
    assert message(excinfo).startswith("movie id 0 is unknown")
    assert message(excinfo).endswith("(2 of the 3 ids asked for are unknown)")
    with pytest.raises(KeyError):  # UnknownIdError is a KeyError too
        IdMap(["a"], "user").index("b")
    with pytest.raises(UnknownIdError) as excinfo:
        movies.id_of(1682)
    assert message(excinfo) == "movie index 1682 is out of range: there are 1,682 movies, indices 0 to 1,681"
    with pytest.raises(UnknownIdError, match="movie index -1 is out of range"):
        movies.id_of(np.array([3, -1]))


# ---- split, crosstab, sha256 --------------------------------------------------------------


@pytest.mark.parametrize("n, val_pct, seed", [(1000, 0.2, 42), (7, 0.3, 0), (100_836, 0.2, 42)])
def test_split_is_fastais_get_cv_idxs(n, val_pct, seed):
    before = np.random.get_state()[1].copy()
    train, val = split(n, val_pct, seed)
    assert np.array_equal(np.random.get_state()[1], before)  # no global state touched
    np.random.seed(seed)  # fastai's recipe, verbatim
    idxs = np.random.permutation(n)
    assert np.array_equal(val, idxs[:int(val_pct * n)])
    assert train.dtype == val.dtype == np.int64
    assert np.array_equal(train, np.setdiff1d(np.arange(n), val))  # the rest, ascending
    assert np.array_equal(split(n, val_pct, seed)[1], val)


def crosstab_ratings(tmp_path, ml_files):
    rows = [(9, 100, 1.0), (9, 200, 2.0), (9, 500, 3.0), (9, 300, 3.5), (4, 500, 4.0), (4, 300, 4.5),
            (4, 600, 5.0), (7, 100, 3.5), (7, 500, 2.5), (7, 700, 0.5), (2, 800, 1.5)]
    ml_files(tmp_path, {"ratings.csv": "userId,movieId,rating\n" + "".join(f"{u},{m},{r}\n" for u, m, r in rows)})
    return read_ratings(tmp_path / "ratings.csv")


def test_crosstab_takes_the_most_active_users_and_most_rated_movies(tmp_path, ml_files):
    r = crosstab_ratings(tmp_path, ml_files)
    # users: 9 rated 4, 4 and 7 rated 3 (tie: 4 wins); movies: 500 rated 3, 100 and 300 twice (100 wins)
    expected = pd.DataFrame([[np.nan, 4.0], [1.0, 3.0]], index=pd.Index([4, 9], name="userId"),
                            columns=pd.Index([100, 500], name="movieId"))
    assert_frame_equal(crosstab(r, n_users=2, n_movies=2), expected)


def test_crosstab_matches_a_pivot_of_the_frame(tmp_path, ml_files):
    r = crosstab_ratings(tmp_path, ml_files)
    table = crosstab(r)  # 15 x 15 asked, 4 users and 7 movies there
    assert table.shape == (4, 7) and int(table.isna().sum().sum()) == 4 * 7 - len(r)
    pivot = r.frame().pivot(index="userId", columns="movieId", values="rating").astype(float)
    assert_frame_equal(table, pivot, check_names=True)


def test_file_sha256_reads_in_chunks(tmp_path):
    data = np.random.default_rng(0).bytes(2_500_000)  # more than two 1 MiB chunks
    (tmp_path / "f.bin").write_bytes(data)
    assert file_sha256(tmp_path / "f.bin") == hashlib.sha256(data).hexdigest()


def test_frame_round_trips_through_csv(tmp_path, ml_files):
    ml_files(tmp_path, {"ratings.csv": CSV})
    buffer = io.StringIO()
    read_ratings(tmp_path / "ratings.csv").frame().to_csv(buffer, index=False)
    assert buffer.getvalue().replace(".0,", ",") == CSV.replace(".0,", ",")
