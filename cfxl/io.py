"""Every file cfxl writes: checked before any work (ensure_writable), then written whole or not at
all (atomic_write): workbooks, model files, CSV tables, snapshots, downloads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cfxl.errors import CfxlError


def ensure_writable(path, *, force: bool = False, suffixes: tuple[str, ...] = ()) -> Path:
    """path, if a file can be written there: one of `suffixes` (any when none are given), in an
    existing writable folder, not a folder itself, and no file there unless force. Commands call
    it for every output before any data is read or model trained, so a mistake costs nothing."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise CfxlError(f"{path}: the name needs the suffix {' or '.join(suffixes)}")
    folder = path.parent
    if not folder.is_dir():
        raise CfxlError(f"{folder}: no such folder")
    if not os.access(folder, os.W_OK):
        raise CfxlError(f"{folder}: folder is not writable")
    if path.is_dir():
        raise CfxlError(f"{path} is a folder, not a file")
    if path.exists() and not force:
        raise CfxlError(f"{path} exists; pass --force to overwrite it")
    return path


def atomic_write(path, write, *, force: bool = False) -> Path:
    """write(tmp) fills a temporary file beside path, which is then renamed into place: a reader
    sees the old file or the new one, never half of one, and a failure leaves nothing behind.

    The checks are ensure_writable's; the file gets the mode the umask gives a new file."""
    path = ensure_writable(path, force=force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; cfxl's files are not
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
