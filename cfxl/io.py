"""Every file cfxl writes: checked before any work (ensure_writable, ensure_folder), then written
whole or not at all (atomic_write, together), never over a file it was not told to replace, a
full disk said in one line, and without litter on any exit.

Litter: a temp file beside its target, `.NAME.cfxl-<pid>-XXXXXXXX.tmp`, and a private folder for
a library's own temp files (XlsxWriter's), `cfxl-<pid>-XXXXXXXX` in the temp folder, are removed
on every exit Python sees: an error, Ctrl-C, SIGTERM (run_interruptible). A killed process
(SIGKILL, a power cut) cannot clean up: a later run removes what cfxl's naming says a process
that is gone left behind, when it writes into that folder or makes a private folder. Nothing of
another name is ever touched.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

from cfxl.disk import FULL, alive, full_disk_error, full_folder, rename_no_replace
from cfxl.errors import CfxlError

# cfxl's temp names: its name, the writing process's id and mkstemp's 8 random characters
TEMP_FILE = re.compile(r"\..+\.cfxl-(\d{1,7})-[a-z0-9_]{8}\.tmp")  # beside a target
TEMP_FOLDER = re.compile(r"cfxl-(\d{1,7})-[a-z0-9_]{8}")  # in the temp folder
_made: set[Path] = set()  # this process's temp files and folders (absolute), while they exist
_pending = contextvars.ContextVar("cfxl_pending", default=None)  # together()'s renames


def ensure_writable(path, *, force: bool = False, suffixes: tuple[str, ...] = ()) -> Path:
    """path, if a file can be written there: one of `suffixes` (any when none are given), in an
    existing writable folder, not a folder itself, and no file there unless force. Commands call
    it for every output before any data is read or model trained, so a mistake costs nothing."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise CfxlError(f"{path}: the name needs the suffix {' or '.join(suffixes)}")
    _check_folder(path.parent)
    if path.is_dir():
        raise CfxlError(f"{path} is a folder, not a file")
    if path.exists() and not force:
        raise CfxlError(f"{path} exists; pass --force to overwrite it")
    return path


def ensure_folder(folder, *, parents: bool = False) -> Path:
    """folder, if files can be written in it: a writable folder, or one that can be made in an
    existing writable folder (any missing folders above it too, with parents: a cache); not a
    file, nor in one."""
    folder = above = Path(folder)
    while parents and not above.exists() and above.parent != above:
        above = above.parent
    if above.exists() and not above.is_dir():
        raise CfxlError(f"{above} is a file, not a folder")
    _check_folder(above if above.is_dir() else above.parent)
    return folder


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise CfxlError(f"{folder}: no such folder")
    if not os.access(folder, os.W_OK):
        raise CfxlError(f"{folder}: folder is not writable")


def atomic_write(path, write, *, force: bool = False, scratch: Path | None = None) -> Path:
    """write(tmp) fills a temporary file beside path, which is then renamed into place: a reader
    sees the old file or the new one, never half of one, and a failure or interruption leaves
    nothing behind. Without force, a file that appeared at path meanwhile is kept (an error says
    so); a full disk is one line naming its folder, the target's or scratch's (the private folder
    write also used, from scratch_folder). Inside together(), the rename waits for its end.

    The checks are ensure_writable's; the file gets the mode the umask gives a new file."""
    path = ensure_writable(path, force=force)
    remove_stale(path.parent)
    tmp, folders = None, [path.parent] + ([Path(scratch).parent] if scratch else [])
    try:
        with _told_when_full(path, folders):
            fd, name = tempfile.mkstemp(prefix=f".{path.name[:120]}.cfxl-{os.getpid()}-",
                                        suffix=".tmp", dir=path.parent)  # 120: names end at 255
            tmp = Path(name).absolute()
            _made.add(tmp)
            os.close(fd)
            write(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; cfxl's files are not
        pending = _pending.get()
        if pending is None:
            _rename(tmp, path, force=force)
        else:
            pending.append((tmp, path, force))
            tmp = None  # together() renames it, or removes it
    finally:
        _remove(tmp)
    return path


@contextlib.contextmanager
def together():
    """The files atomic_write writes in this block stand or fall together: each is renamed into
    place at the end, once the last one was written whole, so a failure or an interruption on
    the way (a full disk, Ctrl-C) leaves none of them. Nested blocks are part of the outer one."""
    if _pending.get() is not None:
        yield
        return
    pending: list[tuple[Path, Path, bool]] = []
    token, renamed = _pending.set(pending), []
    try:
        yield
        for tmp, path, force in pending:
            new = not os.path.lexists(path)
            _rename(tmp, path, force=force)
            renamed.append((path, new))
    except BaseException:
        for path, new in renamed:  # what replaced a file (force) cannot be undone
            if new:
                path.unlink(missing_ok=True)
        raise
    finally:
        _pending.reset(token)
        for tmp, _, _ in pending:
            _remove(tmp)


@contextlib.contextmanager
def scratch_folder():
    """A private folder for a library's own temp files (XlsxWriter's, 20-30 files of up to 35 MB
    for a big workbook): `cfxl-<pid>-XXXXXXXX` in the temp folder ($TMPDIR), removed on every
    exit. Those that runs which are gone left behind are removed first."""
    root = Path(tempfile.gettempdir())
    remove_stale(root)
    with _told_when_full(root, [root]):
        folder = Path(tempfile.mkdtemp(prefix=f"cfxl-{os.getpid()}-", dir=root)).absolute()
    _made.add(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        _made.discard(folder)


def remove_stale(folder) -> None:
    """Remove cfxl's temp files and private folders in folder whose process is gone: what a run
    that was killed left. A name not of cfxl's making, another user's file, or one a live process
    may still be writing is left alone."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        file, dir_ = TEMP_FILE.fullmatch(entry.name), TEMP_FOLDER.fullmatch(entry.name)
        found = file or dir_
        if not found or Path(entry.path).absolute() in _made or _alive(int(found[1])):
            continue
        try:
            owner = entry.stat(follow_symlinks=False).st_uid
            if hasattr(os, "getuid") and owner != os.getuid():
                continue
            if file and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
            elif dir_ and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
        except OSError:
            continue


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier process with this id (a container's): this one's are in _made
    return alive(pid)


def run_interruptible(main, *args, **kwargs):
    """main(*args, **kwargs) with SIGTERM and SIGHUP raising SystemExit, as Ctrl-C raises
    KeyboardInterrupt, so `finally` blocks run: an interrupted write leaves no temp file or
    folder. A signal the parent set to be ignored (nohup) stays ignored."""
    def stop(signum, frame):
        signal.signal(signum, signal.SIG_IGN)  # a second one must not cut the cleaning short
        raise SystemExit(128 + signum)
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) == signal.SIG_DFL:
            previous[number] = signal.signal(number, stop)
    try:
        return main(*args, **kwargs)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _rename(tmp: Path, path: Path, *, force: bool) -> None:
    if force:
        os.replace(tmp, path)
        return
    try:
        rename_no_replace(tmp, path)
    except FileExistsError:
        raise CfxlError(f"{path} appeared while cfxl was writing it; it was left as it is, and "
                        "nothing was written") from None


@contextlib.contextmanager
def _told_when_full(path: Path, folders: list[Path]):
    """A full disk (ENOSPC, EDQUOT, or a library's error wrapping one: XlsxWriter's
    FileCreateError) while writing path, as one line naming the folder (of folders) it is in."""
    try:
        yield
    except Exception as e:
        error = full_disk_error(e)
        if error is None:
            raise
        folder = full_folder(error, folders)
        temp = folder == Path(tempfile.gettempdir())
        where = f"{folder}, the temp folder ($TMPDIR chooses another)" if temp else str(folder)
        raise CfxlError(f"{path}: {FULL[error.errno]} {where}; nothing was written") from None


def _remove(tmp: Path | None) -> None:
    if tmp is None:
        return
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    _made.discard(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
