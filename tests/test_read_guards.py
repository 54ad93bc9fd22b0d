"""Hostile files read as one located, printable line: bad bytes by line, unreadable files,
binary junk, ids past 64 bits, model files given as ratings, titles too long for a cell."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_data import read_error

import cfxl
from cfxl.data import layouts
from cfxl.data.ratings import read_ratings
from cfxl.errors import DataError

HEADER = "userId,movieId,rating,timestamp\n"
CSV = HEADER + "15,302,3.0,881250949\n7,242,5.0,875747190\n15,242,4.0,883603013\n"
MOVIES_CSV = ('movieId,title,genres\n302,"Café, The (1997)",Crime|Film-Noir\n242,Kolya (1996),Comedy\n'
              "51,Legends (1994),(no genres listed)\n")


def message(excinfo) -> str:
    return str(excinfo.value)


def test_a_bad_byte_is_located_by_line_not_by_buffer_position(tmp_path, ml_files):
    body = HEADER + "1,2,3.0,5\n" * 2000  # far past the first buffer the parser decodes
    content = body.encode() + b"1,3,4.0,6\n17,3,4.0,7 caf\xe9\n"
    err = read_error(tmp_path, ml_files, "ratings.csv", content)
    assert str(err) == (f"{tmp_path / 'ratings.csv'}, line 2003: not UTF-8 text: byte 0xe9 at "
                        "character 15 (invalid continuation byte); save the file as UTF-8")
    assert err.line == 2003


def test_a_bad_byte_in_movies_csv_is_located(tmp_path, ml_files):
    ml_files(tmp_path, {"ratings.csv": CSV, "movies.csv": MOVIES_CSV.encode() + b"7,Ol\xe9 (1999),\n"})
    with pytest.raises(DataError) as excinfo:
        read_ratings(tmp_path / "ratings.csv")
    assert message(excinfo) == (f"{tmp_path / 'movies.csv'}, line 5: not UTF-8 text: byte 0xe9 at "
                                "character 5 (invalid continuation byte); save the file as UTF-8")


@pytest.mark.parametrize("unreadable", ["ratings.csv", "movies.csv"])
def test_an_unreadable_file_in_a_readable_folder_is_one_line(tmp_path, ml_files, monkeypatch,
                                                             unreadable):
    ml_files(tmp_path, {"ratings.csv": CSV, "movies.csv": MOVIES_CSV})
    real_open = open

    def guarded(path, *args, **kwargs):  # as chmod 000 does for a user other than root
        if Path(path).name == unreadable:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(layouts, "open", guarded, raising=False)
    with pytest.raises(DataError) as excinfo:
        read_ratings(tmp_path)
    assert message(excinfo) == f"{tmp_path / unreadable}: cannot read it (Permission denied)"


def test_a_folder_named_like_the_ratings_file_is_one_line(tmp_path):
    (tmp_path / "ml" / "ratings.csv").mkdir(parents=True)
    with pytest.raises(DataError) as excinfo:
        read_ratings(tmp_path / "ml")
    assert message(excinfo) == f"{tmp_path / 'ml' / 'ratings.csv'}: cannot read it (Is a directory)"


def test_binary_input_is_escaped_and_cut_short_in_messages(tmp_path, ml_files):
    junk = b"\x1b[2J" + bytes(c for c in range(1, 32) if c not in b"\t\n\r") + b"\x7f"
    err = read_error(tmp_path, ml_files, "blob.bin", junk * 40 + b",x\n1,2\n")
    assert str(err) == (f"{tmp_path / 'blob.bin'}: no user column among \\x1b[2J\\x01\\x02\\x03"
                        "\\x04\\x05..., x; name it with --user-col (user_col)")
    err = read_error(tmp_path, ml_files, "ratings.csv", HEADER + "1,2,3.0,5\n1,3," + "\x1b" * 500 + ",6\n")
    escaped = "\\x1b" * 40
    assert str(err) == (f"{tmp_path / 'ratings.csv'}, line 3, column 'rating': rating "
                        f"'{escaped}'... (500 characters) is not a number")


def test_ids_past_int64_are_read_as_text_not_wrapped(tmp_path, ml_files):
    ml_files(tmp_path, {"mine.csv": "user,item,rating\n18446744073709551615,1,3\n9223372036854775808,1,4\n"
                                    "5,2,1\n"})
    r = read_ratings(tmp_path / "mine.csv")
    assert r.users.to_state() == ["18446744073709551615", "9223372036854775808", "5"]
    assert r.movies.to_state() == [1, 2]


def test_a_model_file_is_not_taken_for_ratings(tmp_path, ml_zip):
    model = ml_zip(tmp_path / "MODEL.PT", {"m/data.pkl": "x"})  # a torch file is a zip
    with pytest.raises(DataError) as excinfo:
        read_ratings(model)
    assert message(excinfo) == f"{model}: a model file (.pt), not ratings: `cfxl export MODEL.pt` writes its workbook"


def test_titles_longer_than_a_cell_are_cut_with_a_note(tmp_path, ml_files):
    from cfxl.data.movies import CELL_CHARS
    from cfxl.report import duplicates_note

    long = "L" * 40_000
    ml_files(tmp_path, {"ratings.csv": CSV, "movies.csv": MOVIES_CSV + f"377,{long},Drama\n"})
    r = read_ratings(tmp_path / "ratings.csv")
    title = r.title(377)
    assert len(title) == CELL_CHARS and title.endswith("L... [cut: 40,000 characters]")
    assert title.startswith("L" * 32_000) and r.title(242) == "Kolya (1996)"
    assert r.cut_titles == 1
    assert duplicates_note(r) == (f"note: {tmp_path / 'movies.csv'}: 1 title (or genres) longer "
                                  "than a spreadsheet cell's 32,767 characters cut to fit, each "
                                  "ending in '... [cut: N characters]'")


@pytest.mark.parametrize("unreadable", ["ratings.csv", "movies.csv"])
def test_a_file_without_read_permission_is_one_line(unreadable):
    """The real thing: chmod 000, read by a user other than root (root reads anything, so as
    root the reading process drops to nobody after its imports)."""
    with tempfile.TemporaryDirectory(prefix="cfxl-perm-") as folder:  # /tmp: nobody may enter
        folder = Path(folder)
        folder.chmod(0o755)
        (folder / "ratings.csv").write_text(CSV)
        (folder / "movies.csv").write_text(MOVIES_CSV)
        (folder / unreadable).chmod(0)
        script = ("import os, sys\nfrom cfxl.data.ratings import read_ratings\nfrom cfxl.errors import "
                  "DataError\nif os.geteuid() == 0:\n    os.setgid(65534)\n    os.setuid(65534)\n"
                  "try:\n    read_ratings(sys.argv[1])\nexcept DataError as e:\n    print(e)\n")
        done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True,
                              text=True, timeout=120, cwd=Path(cfxl.__file__).parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == f"{folder / unreadable}: cannot read it (Permission denied)\n"
