"""The one way cfxl writes files: checked before any work, then written whole or not at all."""

import os
from pathlib import Path

import pytest

from cfxl.errors import CfxlError
from cfxl.io import atomic_write, ensure_writable


def test_a_writable_path_is_returned(tmp_path):
    assert ensure_writable(str(tmp_path / "b.xlsx"), suffixes=(".xlsx", ".xlsm")) == tmp_path / "b.xlsx"
    (tmp_path / "b.xlsx").write_text("mine")
    assert ensure_writable(tmp_path / "b.xlsx", force=True) == tmp_path / "b.xlsx"


@pytest.mark.parametrize("name, message", [
    ("b.csv", "{tmp}/b.csv: the name needs the suffix .xlsx or .xlsm"),
    ("no/b.xlsx", "{tmp}/no: no such folder"),
    ("here.xlsx", "{tmp}/here.xlsx is a folder, not a file"),
    ("mine.xlsx", "{tmp}/mine.xlsx exists; pass --force to overwrite it"),
])
def test_what_cannot_be_written_is_named(tmp_path, name, message):
    (tmp_path / "here.xlsx").mkdir()
    (tmp_path / "mine.xlsx").write_text("mine")
    with pytest.raises(CfxlError) as err:
        ensure_writable(tmp_path / name, suffixes=(".xlsx", ".xlsm"))
    assert str(err.value) == message.format(tmp=tmp_path)


def test_a_read_only_folder_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root may write anywhere: say the folder refuses as others see it
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != folder)
    with pytest.raises(CfxlError, match=f"^{folder}: folder is not writable$"):
        ensure_writable(folder / "b.xlsx")


def test_atomic_write_fills_a_file_with_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "t.txt", lambda tmp: tmp.write_text("new"))
    finally:
        os.umask(old)
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_a_failed_write_leaves_the_old_file_and_nothing_else(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fail, force=True)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.txt"]
    with pytest.raises(CfxlError, match="exists; pass --force"):
        atomic_write(path, lambda tmp: tmp.write_text("new"))
    atomic_write(path, lambda tmp: tmp.write_text("new"), force=True)
    assert path.read_text() == "new"
