"""The user's files are sacred, for every command that writes one: an output is checked before
any work, an existing file is replaced only with --force (or when cfxl can tell it is its own),
a killed run leaves nothing a later run does not clean, and a full disk is one line."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cfxl import io
from cfxl.cli import cli
from cfxl.errors import CfxlError
from cfxl.sheets.book import written_by_cfxl
from cfxl.workbooks import DEMO_BOOKS, demo_outputs, write_workbook

RATINGS = "userId,movieId,rating\n" + "".join(
    f"{u},{m},{(u * 7 + m * 3) % 9 / 2 + 0.5}\n" for u in range(1, 13) for m in range(1, 11)
    if (u + m) % 3)
QUICK = ["--epochs", "1", "--bs", "4096", "--factors", "3", "-q"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def tree(folder: Path) -> dict[str, bytes | None]:
    """Everything under folder, name -> content (None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A small workbook cfxl wrote, to take a snapshot of, outside the folders tests look at."""
    def build(b):
        b.number(b.sheet("s", "a note"), 1, 0, 1.5)
    return write_workbook(tmp_path_factory.mktemp("book") / "b.xlsx", build)


# every command that writes a file: its arguments ({out}: the output, {dir}: its folder, {work}:
# the folder above), the output's name when it is right, and a name with the wrong suffix (None:
# any name will do)
WRITERS = {
    "train -o": (["train", *QUICK, "-o", "{out}"], "m.pt", "m.xlsx"),
    "export -o": (["export", *QUICK, "-o", "{out}"], "b.xlsx", "b.pt"),
    "export .xlsm module": (["export", *QUICK, "-o", "{dir}/b.xlsm"], "b.py", None),
    "export .xlsm model": (["export", *QUICK, "-o", "{dir}/b.xlsm"], "b.pt", None),
    "export --csv-dir": (["export", *QUICK, "-o", "{work}/b.xlsx", "--csv-dir", "{dir}"],
                         "movies.csv", None),
    "graddesc -o": (["graddesc", "--steps", "2", "-o", "{out}"], "g.xlsx", "g.txt"),
    "graddesc .xlsm module": (["graddesc", "--steps", "2", "-o", "{dir}/g.xlsm"], "g.py", None),
    "unroll -o": (["unroll", "--steps", "2", "-o", "{out}"], "u.xlsx", "u.pt"),
    "demo --out-dir": (["demo", "--quick", "-q", "--out-dir", "{dir}"], "collab_filter.xlsx",
                       None),
    "snapshot -o": (["snapshot", "{book}", "-o", "{out}"], "b.txt", None),
}


def writer_args(name: str, folder: Path, output: str, book: Path) -> list[str]:
    args, _, _ = WRITERS[name]
    work = folder.parents[1] if folder.name == "deeper" else folder.parent
    return [a.format(out=folder / output, dir=folder, work=work, book=book) for a in args]


@pytest.fixture
def place(tmp_path):
    """tmp_path/work/out: the folder each output goes to (csv-dir's parent, work, holds the book)."""
    folder = tmp_path / "work" / "out"
    folder.mkdir(parents=True)
    return folder


@pytest.mark.parametrize("name", WRITERS)
def test_an_existing_file_is_refused_untouched_and_nothing_written(no_work, place, book, name):
    _, output, _ = WRITERS[name]
    (place / output).write_text("precious")
    before = tree(place.parent)
    result = run(*writer_args(name, place, output, book))
    target = place / output
    expected = f"{target} exists and cfxl did not write it; move it away, or pass --force to " \
               "overwrite it" if name.startswith("demo") else \
               f"{target} exists; pass --force to overwrite it"
    assert (result.exit_code, result.output) == (1, f"cfxl: error: {expected}\n")
    assert tree(place.parent) == before


@pytest.mark.parametrize("name", WRITERS)
def test_a_folder_where_the_file_goes_is_refused(no_work, place, book, name):
    _, output, _ = WRITERS[name]
    (place / output).mkdir()
    before = tree(place.parent)
    result = run(*writer_args(name, place, output, book))
    assert (result.exit_code, result.output) == (1, f"cfxl: error: {place / output} is a folder, "
                                                    "not a file\n")
    assert tree(place.parent) == before


@pytest.mark.parametrize("name", WRITERS)
def test_a_missing_folder_is_refused(no_work, place, book, name):
    """One behaviour for all: a file goes into an existing folder; a folder option (--out-dir,
    --csv-dir) names one that is made, inside an existing folder."""
    _, output, _ = WRITERS[name]
    missing = place / "missing" / "deeper"
    result = run(*writer_args(name, missing, output, book))
    named = missing.parent if name in ("export --csv-dir", "demo --out-dir") else missing
    assert (result.exit_code, result.output) == (1, f"cfxl: error: {named}: no such folder\n")
    assert tree(place) == {}


@pytest.mark.parametrize("name", WRITERS)
def test_a_read_only_folder_is_refused(no_work, place, book, name, read_only):
    _, output, _ = WRITERS[name]
    read_only(place)
    result = run(*writer_args(name, place, output, book))
    assert (result.exit_code, result.output) == (1, f"cfxl: error: {place}: folder is not "
                                                    "writable\n")
    assert tree(place) == {}


@pytest.mark.parametrize("name", [n for n, (_, _, wrong) in WRITERS.items() if wrong])
def test_the_wrong_suffix_is_refused(no_work, place, book, name):
    _, right, wrong = WRITERS[name]
    suffixes = ".pt" if right.endswith(".pt") else ".xlsx or .xlsm"
    result = run(*writer_args(name, place, wrong, book))
    assert (result.exit_code, result.output) == (
        1, f"cfxl: error: {place / wrong}: the name needs the suffix {suffixes}\n")
    assert tree(place) == {}


@pytest.mark.parametrize("name", ["csv-dir", "out-dir"])
def test_a_folder_option_naming_a_file_is_refused(no_work, place, name):
    (place / "f").write_text("mine")
    args = ["export", "-o", place / "b.xlsx", "--csv-dir"] if name == "csv-dir" else \
        ["demo", "--out-dir"]
    result = run(*args, place / "f")
    assert (result.exit_code, result.output) == (1, f"cfxl: error: {place}/f is a file, not a "
                                                    "folder\n")
    assert tree(place) == {"f": b"mine"}


# ------------------------------------------------------------------ demo: its own workbooks


def test_demo_rewrites_only_the_workbooks_cfxl_wrote(tmp_path):
    import openpyxl
    ours = write_workbook(tmp_path / "collab_filter.xlsx", lambda b: b.sheet("s", "a note"))
    lesson = tmp_path / "graddesc.xlsx"
    openpyxl.Workbook().save(lesson)  # the lesson's own workbook of that name, say
    assert written_by_cfxl(ours) and not written_by_cfxl(lesson)
    with pytest.raises(CfxlError) as err:
        demo_outputs(tmp_path)
    assert str(err.value) == f"{lesson} exists and cfxl did not write it; move it away, or pass " \
                             "--force to overwrite it"
    assert [o.force for o in demo_outputs(tmp_path, force=True)] == [True, True, True]
    lesson.unlink()
    assert [o.force for o in demo_outputs(tmp_path)] == [True, False, False]  # its own, new, new
    assert [o.book.name for o in demo_outputs(tmp_path / "new")] == list(DEMO_BOOKS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collab_filter.xlsx"]  # made later


# ------------------------------------------------------------------ press: a file in place


@pytest.fixture(scope="module")
def collab_xlsm(tmp_path_factory):
    """A collab macro workbook (cfxl export --xlsm) trained on a little data, kept pristine."""
    folder = tmp_path_factory.mktemp("collab")
    (folder / "ratings.csv").write_text(RATINGS)
    result = run("export", folder / "ratings.csv", *QUICK, "-o", folder / "c.xlsm")
    assert result.exit_code == 0, result.output
    return folder / "c.xlsm"


def test_press_refuses_a_workbook_cfxl_did_not_write(place):
    import openpyxl
    plain = place / "plain.xlsm"
    openpyxl.Workbook().save(plain)
    before = tree(place)
    result = run("press", plain, "reset")
    assert result.exit_code == 1 and "not written as a cfxl macro workbook" in result.output
    assert tree(place) == before


@pytest.mark.parametrize("book, message", [
    ("d.xlsm", "{place}/d.xlsm is a folder, not a file"),
    ("missing/b.xlsm", "{place}/missing: no such folder"),
    ("b.csv", "{place}/b.csv: the name needs the suffix .xlsx or .xlsm"),
    ("junk.xlsm", "{place}/junk.xlsm: not a workbook (BadZipFile)"),
])
def test_press_names_what_it_cannot_rewrite(place, book, message):
    (place / "d.xlsm").mkdir()
    (place / "junk.xlsm").write_text("not a zip")
    (place / "b.csv").write_text("a,b\n")
    before = tree(place)
    result = run("press", place / book, "reset")
    assert (result.exit_code, result.output) == (1, f"cfxl: error: {message.format(place=place)}\n")
    assert tree(place) == before


def test_press_checks_its_folder_before_any_work(collab_xlsm, place, monkeypatch, read_only):
    book = place / "c.xlsm"
    book.write_bytes(collab_xlsm.read_bytes())
    monkeypatch.setattr("cfxl.excel.actions.fit", lambda *a, **k: pytest.fail("trained"))
    read_only(place)
    result = run("press", book, "train")
    assert (result.exit_code, result.output) == (1, f"cfxl: error: {place}: folder is not "
                                                    "writable\n")
    assert book.read_bytes() == collab_xlsm.read_bytes()


@pytest.mark.parametrize("theirs", ["c.pt", "c_data/ratings.csv"])
def test_press_train_replaces_only_its_own_model_and_data(collab_xlsm, place, monkeypatch, theirs):
    book = place / "c.xlsm"
    book.write_bytes(collab_xlsm.read_bytes())
    (place / theirs).parent.mkdir(exist_ok=True)
    (place / theirs).write_text("theirs")
    before = tree(place)
    monkeypatch.setattr("cfxl.excel.actions.fit", lambda *a, **k: pytest.fail("trained"))
    result = run("press", book, "train")
    message = f"{place}/c.pt exists and is not a cfxl model file; move it away, or name " \
              "another model_file on the config sheet" if theirs == "c.pt" else \
              f"{place}/c_data holds ratings or movies that cfxl did not write; move them " \
              "away: the Train button writes the ratings sheet there"
    assert (result.exit_code, result.output) == (1, f"cfxl: error: {message}\n")
    assert tree(place) == before


def test_press_train_rewrites_its_own_model_and_data(collab_xlsm, tmp_path):
    book = tmp_path / "c.xlsm"
    book.write_bytes(collab_xlsm.read_bytes())
    (tmp_path / "c.pt").write_bytes((collab_xlsm.parent / "c.pt").read_bytes())
    for _ in range(2):  # the second time, the model and the folder are its own
        result = run("press", book, "train")
        assert (result.exit_code, result.output) == (0, f"train: wrote {book}\n")
    assert sorted(p.name for p in (tmp_path / "c_data").iterdir()) == [
        ".cfxl", "movies.csv", "ratings.csv"]
    assert written_by_cfxl(book)  # the mark outlives a press


# ------------------------------------------------------------------ data download: a cache


@pytest.fixture
def served(tmp_path, monkeypatch, ml_zip):
    """ml-latest-small, served from a file: URL (it has no published checksum)."""
    www = tmp_path / "www"
    www.mkdir()
    ml_zip(www / "ml-latest-small.zip", {"ml-latest-small/ratings.csv": RATINGS})
    monkeypatch.setenv("CFXL_DOWNLOAD_URL", www.as_uri())


@pytest.mark.parametrize("cache, message", [
    ("f", "{tmp}/f is a file, not a folder"),
    ("f/cache", "{tmp}/f is a file, not a folder"),
    ("ro/cache", "{tmp}/ro: folder is not writable"),
    ("mine", "{tmp}/mine/ml-latest-small exists and cfxl did not unpack it; move it away, or "
             "pass --force to replace it"),
])
def test_download_checks_its_cache_before_downloading(served, tmp_path, monkeypatch, cache,
                                                      message, read_only):
    (tmp_path / "f").write_text("mine")
    (tmp_path / "ro").mkdir()
    (tmp_path / "mine" / "ml-latest-small").mkdir(parents=True)
    (tmp_path / "mine" / "ml-latest-small" / "notes.txt").write_text("mine")
    read_only(tmp_path / "ro")
    monkeypatch.setattr("cfxl.data.download._fetch", lambda *a: pytest.fail("downloaded"))
    before = tree(tmp_path)
    result = run("data", "download", "ml-latest-small", "--cache-dir", tmp_path / cache)
    assert (result.exit_code, result.output) == (1, f"cfxl: error: {message.format(tmp=tmp_path)}\n")
    assert tree(tmp_path) == before


def test_download_makes_its_cache_and_keeps_what_it_unpacked(served, tmp_path):
    cache = tmp_path / "a" / "cache"  # a cache's missing folders are made
    result = run("data", "download", "ml-latest-small", "--cache-dir", cache)
    assert (result.exit_code, result.output) == (0, f"{cache}/ml-latest-small\n")
    assert run("data", "download", "ml-latest-small", "--cache-dir", cache, "--force").exit_code == 0
    assert sorted(p.name for p in cache.iterdir()) == ["ml-latest-small", "ml-latest-small.zip"]


# ------------------------------------------------------------------ killed mid-write

# The CLI in a child process, paused inside XlsxWriter's save once its temp files are written (the
# moment a kill leaves most litter), after it says so in a file: a real signal, at a known moment.
CHILD = """
import sys, time
from pathlib import Path
import xlsxwriter.packager

ready, argv = Path(sys.argv[1]), sys.argv[2:]
original = xlsxwriter.packager.Packager._create_package

def paused(self):
    parts = original(self)
    ready.write_text("writing")
    time.sleep(120)
    return parts

xlsxwriter.packager.Packager._create_package = paused
sys.argv = ["cfxl", *argv]
from cfxl.cli import main
main()
"""


def write_and_kill(tmp_path, sig) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """`cfxl unroll -o out/u.xlsx` in a child, sent sig while it writes; (its end, out, temp)."""
    out, temp, ready = tmp_path / "out", tmp_path / "temp", tmp_path / "ready"
    out.mkdir()
    temp.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ready), "unroll", "--steps", "5", "-o", str(out / "u.xlsx")],
        env={**os.environ, "TMPDIR": str(temp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the child never started writing"
        time.sleep(0.02)
    assert [p.name for p in out.iterdir()][0].startswith(f".u.xlsx.cfxl-{child.pid}-")
    assert len(list(next(temp.iterdir()).iterdir())) >= 10  # XlsxWriter's parts of the workbook
    child.send_signal(sig)
    stdout, stderr = child.communicate(timeout=60)
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr), out, temp


@pytest.mark.parametrize("sig, code, says", [(signal.SIGTERM, 128 + signal.SIGTERM, ""),
                                             (signal.SIGINT, 1, "\nAborted!\n")])
def test_a_stopped_write_leaves_nothing(tmp_path, sig, code, says):
    done, out, temp = write_and_kill(tmp_path, sig)
    assert (done.returncode, done.stderr) == (code, says)
    assert list(out.iterdir()) == [] and list(temp.iterdir()) == []


def test_what_a_killed_write_leaves_the_next_run_removes(tmp_path, monkeypatch):
    done, out, temp = write_and_kill(tmp_path, signal.SIGKILL)
    assert done.returncode == -signal.SIGKILL
    (left,), (folder,) = out.iterdir(), temp.iterdir()
    assert io.TEMP_FILE.fullmatch(left.name) and io.TEMP_FOLDER.fullmatch(folder.name)
    assert left.name.startswith(".u.xlsx.cfxl-") and not (out / "u.xlsx").exists()
    others = [out / ".u.xlsx.tmp", out / "u.xlsx.bak", temp / "cfxl-notes", temp / "tmpabcdefgh"]
    for other in others:
        other.write_text("not cfxl's")
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    write_workbook(out / "next.xlsx", lambda b: b.sheet("s", "a note"))
    assert sorted(p.name for p in out.iterdir()) == [".u.xlsx.tmp", "next.xlsx", "u.xlsx.bak"]
    assert sorted(p.name for p in temp.iterdir()) == ["cfxl-notes", "tmpabcdefgh"]


# ------------------------------------------------------------------ a full disk, for real


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs at tmp_path/tiny: a disk that fills up (root, or a user allowed to mount)."""
    disk = tmp_path / "tiny"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small disk here ({done.stderr.strip()}); "
                    "tests/test_io.py simulates full disks")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def error_lines(output: str) -> list[str]:
    """The error the command ended with, and any other error line: after the lines that say
    what it read and what it writes, one line and the last."""
    lines = output.splitlines()
    errors = [line for line in lines if line.startswith("cfxl: error:")]
    assert lines[-1:] == errors[-1:], output
    return errors


def test_a_full_target_disk_is_one_line_and_leaves_nothing(tiny_disk):
    target = tiny_disk / "u.xlsx"
    result = CliRunner().invoke(cli, ["unroll", "--steps", "5", "-o", str(target)])
    assert (result.exit_code, error_lines(result.output)) == (
        1, [f"cfxl: error: {target}: no space left on the disk of {tiny_disk}; nothing was written"])
    assert list(tiny_disk.iterdir()) == []


def test_a_full_temp_disk_is_one_line_and_leaves_nothing(tiny_disk, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tiny_disk))
    target = tmp_path / "u.xlsx"
    result = CliRunner().invoke(cli, ["unroll", "--steps", "5", "-o", str(target)])
    assert (result.exit_code, error_lines(result.output)) == (
        1, [f"cfxl: error: {target}: no space left on the disk of {tiny_disk}, the temp folder "
            "($TMPDIR chooses another); nothing was written"])
    assert list(tiny_disk.iterdir()) == [] and not target.exists()


def many_numbers(book):
    ws = book.sheet("s", "a note")
    for i in range(1, 5000):
        book.number(ws, i, 0, i / 7)


@pytest.mark.parametrize("writer", ["train -o", "snapshot -o", "export --csv-dir"])
def test_every_writer_tells_a_full_disk_in_one_line(tiny_disk, tmp_path, writer):
    (tmp_path / "ratings.csv").write_text(RATINGS)
    big = write_workbook(tmp_path / "big.xlsx", many_numbers)  # its snapshot is 100 kB
    args, target = {  # each output more than the disk holds
        "train -o": (["train", tmp_path / "ratings.csv", "--factors", "2000", "--epochs", "1",
                      "-q", "-o", tiny_disk / "m.pt"], "m.pt"),
        "snapshot -o": (["snapshot", big, "-o", tiny_disk / "s.txt"], "s.txt"),
        "export --csv-dir": (["export", *QUICK, "-o", tmp_path / "b.xlsx", "--csv-dir",
                              tiny_disk / "t"], "t/movies.csv"),
    }[writer]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    folder = (tiny_disk / target).parent
    assert (result.exit_code, result.output.splitlines()[-1:]) == (1, [
        f"cfxl: error: {tiny_disk / target}: no space left on the disk of {folder}; nothing was "
        "written"])
    assert [p for p in tiny_disk.rglob("*") if p.is_file()] == []
    assert not (tmp_path / "b.xlsx").exists()  # export's workbook goes with its tables
