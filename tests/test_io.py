"""The one way cfxl writes files: checked before any work, then written whole or not at all, never
over a file that appeared meanwhile, without litter, and a full disk told in one line."""

import errno
import os
import signal
import subprocess
import sys
import tempfile

import pytest
import xlsxwriter.exceptions

from cfxl import disk, io
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


def test_a_read_only_folder_is_named(tmp_path, read_only):
    folder = tmp_path / "ro"
    folder.mkdir()
    read_only(folder)
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


# ------------------------------------------------------------------ no clobbering at the rename


def other_process_writes(path, text="theirs"):
    """A write function that, while cfxl writes, has another program create path."""
    def write(tmp):
        tmp.write_text("cfxl's")
        path.write_text(text)
    return write


@pytest.fixture(params=["renameat2", "link", "no hard links"])
def rename_way(request, monkeypatch):
    """Each way atomic_write renames without replacing: renameat2(RENAME_NOREPLACE) (Linux),
    a hard link, or on a disk without hard links (FAT) a last look before a plain rename."""
    if request.param == "renameat2":
        if disk._renameat2() is None:
            pytest.skip("this C library has no renameat2 (Linux, glibc 2.28 or later)")
    else:
        monkeypatch.setattr(disk, "_renameat2", lambda: None)
    if request.param == "no hard links":
        def no_link(src, dst):
            raise PermissionError(errno.EPERM, "Operation not permitted", str(src))
        monkeypatch.setattr(os, "link", no_link)
    return request.param


def test_a_file_that_appeared_while_writing_is_kept(tmp_path, rename_way):
    path = tmp_path / "b.txt"
    with pytest.raises(CfxlError) as err:
        atomic_write(path, other_process_writes(path))
    assert str(err.value) == f"{path} appeared while cfxl was writing it; it was left as it is, " \
                             "and nothing was written"
    assert path.read_text() == "theirs" and [p.name for p in tmp_path.iterdir()] == ["b.txt"]
    assert atomic_write(tmp_path / "c.txt", lambda tmp: tmp.write_text("new")).read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt", "c.txt"]


def test_with_force_a_file_that_appeared_is_replaced(tmp_path):
    path = tmp_path / "b.txt"
    atomic_write(path, other_process_writes(path), force=True)
    assert path.read_text() == "cfxl's" and [p.name for p in tmp_path.iterdir()] == ["b.txt"]


def test_the_temp_file_beside_the_target_carries_cfxls_name_and_pid(tmp_path):
    seen = []
    atomic_write(tmp_path / "b.xlsx", lambda tmp: seen.append(tmp.name) or tmp.write_text(""))
    assert io.TEMP_FILE.fullmatch(seen[0]) and seen[0].startswith(f".b.xlsx.cfxl-{os.getpid()}-")


# ------------------------------------------------------------------ together: all or none


def test_files_written_together_appear_together_or_not_at_all(tmp_path):
    a, b, c = (tmp_path / f"{n}.csv" for n in "abc")
    c.write_text("old")

    def fail(tmp):
        raise KeyboardInterrupt  # Ctrl-C on the third file
    with pytest.raises(KeyboardInterrupt), io.together():
        atomic_write(a, lambda tmp: tmp.write_text("a"))
        atomic_write(b, lambda tmp: tmp.write_text("b"))
        assert not a.exists() and not b.exists()  # renamed at the end only
        atomic_write(c, fail, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"] and c.read_text() == "old"
    with io.together():
        atomic_write(a, lambda tmp: tmp.write_text("a"))
        atomic_write(c, lambda tmp: tmp.write_text("c"), force=True)
    assert (a.read_text(), c.read_text()) == ("a", "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "c.csv"]


def test_a_clash_at_the_end_of_together_undoes_the_new_files(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    with pytest.raises(CfxlError, match="b.csv appeared while cfxl was writing it"), io.together():
        atomic_write(a, lambda tmp: tmp.write_text("a"))
        atomic_write(b, other_process_writes(b))
    assert [p.name for p in tmp_path.iterdir()] == ["b.csv"] and b.read_text() == "theirs"


# ------------------------------------------------------------------ litter


@pytest.fixture
def dead_pid():
    """The id of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_stale_temp_files_are_removed_and_nothing_else(tmp_path, dead_pid, live_pid):
    stale = [f".b.xlsx.cfxl-{dead_pid}-a1b2c3d4.tmp", f".m.pt.cfxl-{dead_pid}-zz_9zz_9.tmp"]
    kept = [f".b.xlsx.cfxl-{live_pid}-a1b2c3d4.tmp",  # its process may still be writing
            f".b.xlsx.{dead_pid}-a1b2c3d4.tmp", f"b.xlsx.cfxl-{dead_pid}-a1b2c3d4.tmp",
            f".b.xlsx.cfxl-{dead_pid}-a1b2.tmp", f".b.xlsx.cfxl-{dead_pid}-a1b2c3d4.tmp.bak",
            "notes.txt", ".b.xlsx.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / f".d.cfxl-{dead_pid}-a1b2c3d4.tmp").mkdir()  # a folder of that name: not cfxl's
    atomic_write(tmp_path / "new.txt", lambda tmp: tmp.write_text("new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        kept + ["new.txt", f".d.cfxl-{dead_pid}-a1b2c3d4.tmp"])


def test_the_private_temp_folder_is_removed_on_every_exit(tmp_path, monkeypatch, dead_pid):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale, kept = tmp_path / f"cfxl-{dead_pid}-abcdefgh", tmp_path / "cfxl-libreoffice-abcdefgh"
    for folder in (stale, kept):
        folder.mkdir()
        (folder / "tmp1234abcd").write_text("x")
    (tmp_path / f"cfxl-{dead_pid}-a1b2c3d4").write_text("a file")  # not a folder: not cfxl's
    with io.scratch_folder() as folder:
        assert io.TEMP_FOLDER.fullmatch(folder.name) and folder.parent == tmp_path
        assert folder.name.startswith(f"cfxl-{os.getpid()}-") and not stale.exists()
        io.remove_stale(tmp_path)  # another run's cleaning leaves a live one alone
        assert folder.is_dir()
    for interruption in (RuntimeError, KeyboardInterrupt, SystemExit):
        with pytest.raises(interruption), io.scratch_folder() as folder:
            (folder / "part").write_text("x")
            raise interruption
        assert not folder.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"cfxl-{dead_pid}-a1b2c3d4", "cfxl-libreoffice-abcdefgh"]


def test_a_signal_to_stop_unwinds_and_an_ignored_one_stays_ignored(monkeypatch):
    def main(value):
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        with pytest.raises(SystemExit) as stop:
            handler(signal.SIGTERM, None)
        assert stop.value.code == 128 + signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN  # a second one waits for the end
        return value
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
    try:
        assert io.run_interruptible(main, 7) == 7
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGHUP, hup)


# ------------------------------------------------------------------ a full disk


def enospc(tmp):
    tmp.write_bytes(b"half a file")
    raise OSError(errno.ENOSPC, "No space left on device")


def xlsxwriter_full(tmp):
    tmp.write_bytes(b"half a workbook")
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as e:
        raise xlsxwriter.exceptions.FileCreateError(e)  # what Workbook.close raises


def torch_full(tmp):
    try:
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")


@pytest.mark.parametrize("write, says", [(enospc, "no space left on the disk of"),
                                         (xlsxwriter_full, "no space left on the disk of"),
                                         (torch_full, "the disk quota is used up on")])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, write, says):
    path = tmp_path / "b.xlsx"
    with pytest.raises(CfxlError) as err:
        atomic_write(path, write)
    assert str(err.value) == f"{path}: {says} {tmp_path}; nothing was written"
    assert list(tmp_path.iterdir()) == []


def test_other_errors_pass_through(tmp_path):
    def broken(tmp):
        raise OSError(errno.EIO, "Input/output error")
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write(tmp_path / "b.txt", broken)
    assert list(tmp_path.iterdir()) == []


def test_ensure_folder_names_what_is_wrong(tmp_path):
    (tmp_path / "file").write_text("")
    assert io.ensure_folder(tmp_path / "new") == tmp_path / "new"
    assert io.ensure_folder(tmp_path / "a" / "b", parents=True) == tmp_path / "a" / "b"
    for folder, parents, message in [
            ("file", False, "{tmp}/file is a file, not a folder"),
            ("file/sub", True, "{tmp}/file is a file, not a folder"),
            ("a/b", False, "{tmp}/a: no such folder")]:
        with pytest.raises(CfxlError) as err:
            io.ensure_folder(tmp_path / folder, parents=parents)
        assert str(err.value) == message.format(tmp=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_files_waiting_in_together_are_not_taken_for_stale(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative target, as a user types it
    with io.together():
        atomic_write("a.csv", lambda tmp: tmp.write_text("a"))
        waiting = [p.name for p in tmp_path.iterdir()]
        atomic_write("b.csv", lambda tmp: tmp.write_text("b"))  # cleans the folder first
        assert all((tmp_path / name).exists() for name in waiting)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv"]
