"""Fetch a MovieLens zip from GroupLens once, verify it, and unpack it into a cache folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from cfxl.errors import CfxlError
from cfxl.io import atomic_write, ensure_folder

BASE_URL = "https://files.grouplens.org/datasets/movielens"
CHUNK = 1 << 20  # bytes per read: large enough to stream fast, small enough for a smooth bar
TIMEOUT_S = 60  # per blocking socket operation, not for the whole download
MARKER = ".cfxl-download.json"  # written last: its presence means the unpacked folder is complete


@dataclass(frozen=True)
class Dataset:
    """A published MovieLens zip: where its ratings file sits inside, and its MD5 when published."""

    name: str
    ratings: str  # path of the ratings file inside the zip
    md5: str | None  # the "latest" sets change over time and have no published sum


DATASETS = {d.name: d for d in (
    Dataset("ml-latest-small", "ml-latest-small/ratings.csv", None),
    Dataset("ml-100k", "ml-100k/u.data", "0e33842e24a9c977be4e0107933c0723"),
    Dataset("ml-1m", "ml-1m/ratings.dat", "c4d9eecfca2ab87c1945afe126590906"),
    Dataset("ml-25m", "ml-25m/ratings.csv", "6b51fb2759a8657d3bfcbfc42b592ada"),
)}


def download(name: str, *, cache_dir=None, base_url: str | None = None, force: bool = False,
             progress: bool | None = None) -> Path:
    """The unpacked folder holding the data set's ratings file; downloads only when not cached.

    The verified zip stays in the cache beside the folder, so a lost folder is unpacked again offline.

    cache_dir defaults to $CFXL_CACHE or ~/.cache/cfxl, base_url to $CFXL_DOWNLOAD_URL or GroupLens;
    progress=None shows a bar only when stderr is a terminal.
    """
    if name not in DATASETS:
        raise CfxlError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    dataset = DATASETS[name]
    cache = Path(cache_dir or os.environ.get("CFXL_CACHE") or Path.home() / ".cache" / "cfxl").expanduser()
    folder = ensure_folder(cache, parents=True) / name
    ratings = folder / _strip_top(dataset.ratings)
    if not force and (folder / MARKER).is_file() and ratings.is_file():
        return ratings.parent
    if not force and folder.exists() and not (folder / MARKER).is_file():  # not cfxl's to replace
        raise CfxlError(f"{folder} exists and cfxl did not unpack it; move it away, or pass "
                        "--force to replace it")
    archive = cache / f"{name}.zip"  # kept: its presence means it passed the MD5 check
    url = f"{(base_url or os.environ.get('CFXL_DOWNLOAD_URL') or BASE_URL).rstrip('/')}/{name}.zip"
    if force or not archive.is_file():
        cache.mkdir(parents=True, exist_ok=True)

        def fetch_verified(part: Path) -> None:
            md5 = _fetch(url, part, sys.stderr.isatty() if progress is None else progress)
            if dataset.md5 is not None and md5 != dataset.md5:
                raise CfxlError(f"{url}: checksum mismatch: expected MD5 {dataset.md5}, got {md5}; "
                                "the download is corrupt or changed upstream, and was deleted")
        atomic_write(archive, fetch_verified, force=True)
    try:
        _unpack(archive, dataset, folder)
    except CfxlError:
        archive.unlink(missing_ok=True)  # a bad zip must not pass for a verified one next time
        raise
    marker = json.dumps({"name": name, "url": url}) + "\n"
    atomic_write(folder / MARKER, lambda tmp: tmp.write_text(marker), force=True)
    return ratings.parent


def _fetch(url: str, dest: Path, progress: bool) -> str:
    """Stream url into dest in chunks, with an optional progress bar; returns the MD5."""
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name,
                      disable=not progress) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        e.close()  # it holds the error page's socket
        raise CfxlError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise CfxlError(f"cannot download {url}: {e.reason}") from None
    except OSError as e:  # timeouts, resets, a full disk
        raise CfxlError(f"cannot download {url}: {e}") from None
    return digest.hexdigest()


def _unpack(archive: Path, dataset: Dataset, folder: Path) -> None:
    """Check the zip's CRCs and contents, then unpack it, less its top folder, into folder."""
    staging = folder.with_name(f".{folder.name}.unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise CfxlError(f"{archive}: the zip is corrupt (bad CRC in {bad}); it was deleted")
            if dataset.ratings not in zf.namelist():
                raise CfxlError(f"{archive}: the zip has no {dataset.ratings}")
            for info in zf.infolist():
                target = staging / _member_path(info.filename, archive)
                if info.is_dir():  # folders are made as the files in them are written
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    except zipfile.BadZipFile as e:
        raise CfxlError(f"{archive}: not a valid zip file ({e}); it was deleted") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _member_path(name: str, archive: Path) -> PurePosixPath:
    """Where a member goes, relative to the folder; refuses absolute paths and '..' (traversal)."""
    clean = name.replace("\\", "/")
    parts = PurePosixPath(clean).parts
    if not parts or parts[0] == "/" or ".." in parts or ":" in parts[0]:
        raise CfxlError(f"{archive}: refusing to unpack {name!r}: it points outside the folder")
    return _strip_top(clean)


def _strip_top(name: str) -> PurePosixPath:
    """Drop the top folder that every MovieLens zip has (ml-100k/u.data -> u.data)."""
    parts = PurePosixPath(name).parts
    return PurePosixPath(*parts[1:] if len(parts) > 1 else parts)
