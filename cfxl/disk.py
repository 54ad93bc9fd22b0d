"""What the operating system does with files, as cfxl.io needs it: a rename that never replaces,
which folder's disk is full, whether a process still runs."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import sys
from pathlib import Path

FULL = {errno.ENOSPC: "no space left on the disk of",
        getattr(errno, "EDQUOT", -1): "the disk quota is used up on"}
NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS)


def rename_no_replace(src: Path, dst: Path) -> None:
    """Rename src to dst in one step unless dst exists (FileExistsError): renameat2 with
    RENAME_NOREPLACE on Linux, else a hard link and unlinking src; on a disk without hard links
    (FAT), a last look and a plain rename."""
    renameat2 = _renameat2()
    if renameat2 is not None:
        at_cwd, no_replace = -100, 1
        if renameat2(at_cwd, os.fsencode(src), at_cwd, os.fsencode(dst), no_replace) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # the disk cannot: link
            raise OSError(code, os.strerror(code), str(dst))
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in NO_HARD_LINKS:
            raise
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


@functools.cache
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None  # a C library before glibc 2.28


def full_disk_error(e: BaseException) -> OSError | None:
    """The OSError that says a disk is full (ENOSPC, EDQUOT) in e, or in what e wraps or was
    raised while handling (XlsxWriter's FileCreateError holds one); None if there is none."""
    seen, todo = set(), [e]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in FULL:
            return e
        todo += [e.__cause__, e.__context__] + [a for a in e.args if isinstance(a, BaseException)]
    return None


def full_folder(error: OSError, folders: list[Path]) -> Path:
    """Which of folders is on the full disk: the failing file's, when the error names it; else
    the one whose disk has least room left (the partial files are still there to fill it)."""
    if error.filename:
        failed = Path(os.fsdecode(error.filename)).absolute()
        for folder in folders:
            if folder.absolute() in failed.parents:
                return folder
    return min(folders, key=_room)


def _room(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # Windows has no statvfs
        return sys.maxsize
    return st.f_bavail * st.f_frsize


def alive(pid: int) -> bool:
    """Whether a process with this id may still be running (and writing); when in doubt, yes."""
    if os.name != "posix" or pid <= 0:
        return True  # Windows' os.kill would end the process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's
    return True
