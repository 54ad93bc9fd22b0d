"""The MovieLens file layouts: finding the ratings file (in a folder or zip), sniffing its
layout, reading its columns with the C parser, and locating bad values and bad bytes."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from cfxl.errors import DataError, printable, shown

RATINGS_NAMES = ("ratings.csv", "u.data", "ratings.dat")  # searched for in this order
MOVIELENS_BOUNDS = (0.5, 5.0)  # half stars; ml-100k and ml-1m's whole stars 1-5 lie within
GUESSES = {  # names a generic CSV may give its columns, lower-case without '_', '-' or ' '
    "user": ("userid", "user", "uid", "username", "users"),
    "item": ("movieid", "itemid", "movie", "item", "iid", "mid", "filmid", "film"),
    "rating": ("rating", "ratings", "score", "stars", "rate"),
    "timestamp": ("timestamp", "time", "ts", "unixtime")}
CHUNK_BYTES = 1 << 25  # bytes per block when hunting for the line of a bad value: bounded memory
OPTIONS = {role: f"--{role}-col ({role}_col)" for role in ("user", "item", "rating")}  # CLI (Python)


@dataclass(frozen=True)
class Source:
    """A file on disk, or a member of a zip (read in place, never unpacked)."""

    path: Path
    member: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    @property
    def name(self) -> str:
        return PurePosixPath(self.member or self.path.name).name

    @contextmanager
    def open(self):
        if self.member is None:
            with open(self.path, "rb") as f:
                yield f
        else:
            with zipfile.ZipFile(self.path) as zf, zf.open(self.member) as f:
                yield f

    def sibling(self, name: str) -> Source | None:
        if self.member is None:
            return Source(self.path.with_name(name)) if self.path.with_name(name).is_file() else None
        other = str(PurePosixPath(self.member).with_name(name))
        with zipfile.ZipFile(self.path) as zf:
            return Source(self.path, other) if other in zf.namelist() else None


@dataclass(frozen=True)
class Layout:
    """How to parse a ratings file: which columns hold what, and which ratings are allowed."""

    kind: str  # as Ratings.layout
    sep: str
    cols: dict  # role ("user", "item", "rating", "timestamp") -> position of its column
    header: tuple  # the names in the header row; () when there is none
    n_fields: int  # fields in a line, so a short or blank first line can't change the count
    bounds: tuple[float, float] | None

    def read(self, f, skiprows: int, **kw) -> pd.DataFrame:
        """The columns in cols, labelled by position, by the C parser."""
        used = list(self.cols.values())  # usecols costs time: only when there are columns to leave out
        return pd.read_csv(f, sep=self.sep, header=None, skiprows=skiprows, names=range(self.n_fields),
                           usecols=used if len(used) < self.n_fields else None, engine="c", **kw)

    def column(self, role: str) -> str:
        return self.header[self.cols[role]] if self.header else role


def find_ratings(path: Path) -> Source:
    """The ratings file at path: the file itself, or the shallowest one inside a directory or zip."""
    wanted = ", ".join(RATINGS_NAMES)
    if not path.exists():
        raise DataError(path, "no such file or directory")
    if path.suffix.lower() == ".pt" and path.is_file():
        raise DataError(path, "a model file (.pt), not ratings: `cfxl export MODEL.pt` writes "
                              "its workbook")
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for name in RATINGS_NAMES for p in path.rglob(name)]
    elif zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(path, f"corrupt zip file ({e})") from None
    elif path.suffix.lower() == ".zip":
        raise DataError(path, "not a zip file, or a corrupt one (no zip directory found)")
    else:
        return Source(path)
    for name in RATINGS_NAMES:
        found = sorted((n for n in names if PurePosixPath(n).name == name), key=lambda n: (n.count("/"), n))
        if found:
            return Source(path / found[0]) if path.is_dir() else Source(path, found[0])
    if path.is_dir():
        raise DataError(path, f"no ratings file ({wanted}) in this directory")
    listing = _names(names, 8)
    raise DataError(path, f"no ratings file ({wanted}) in this zip; it holds: {listing or 'nothing'}")


def sniff(src: Source, given: dict, bounds) -> Layout:
    """The layout of a ratings file, from its first line."""
    with src.open() as f:
        head = f.read(1 << 16)
    if not head.strip():
        raise DataError(src.label, "the file is empty: no ratings")
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = re.split(r"\r\n?|\n", text, maxsplit=1)[0]  # the C parser's line ends, not splitlines'
    sep = ":" if "::" in first else max(",\t;|", key=first.count) if any(c in first for c in ",\t;|") else ","
    fields = next(csv.reader([first], delimiter=sep))
    headerless = all(map(_is_number, fields))
    kind = ("ratings.dat" if sep == ":" else "u.data" if headerless and sep == "\t" and len(fields) == 4
            else "csv" if fields[:3] == ["userId", "movieId", "rating"] else "generic")
    bounds = bounds or (None if kind == "generic" else MOVIELENS_BOUNDS)
    if headerless or kind == "ratings.dat":
        if any(g is not None for g in given.values()):
            raise DataError(src.label, "this file has no header row, so --user-col, --item-col "
                                       "and --rating-col (user_col, item_col, rating_col) can't "
                                       "choose its columns; they are user, item, rating[, timestamp]")
        step = 2 if sep == ":" else 1  # '::' read as ':' leaves an empty field between values
        roles = ("user", "item", "rating", "timestamp")[:3 if kind == "generic" else 4]
        cols = dict(zip(roles, range(0, 8, step)))
        return Layout(kind, sep, cols, (), max(len(fields), max(cols.values()) + 1), bounds)
    cols = {role: _pick_column(src, fields, role, given[role]) for role in ("user", "item", "rating")}
    stamp = _pick_column(src, fields, "timestamp", None)
    if stamp is not None and stamp not in cols.values():
        cols["timestamp"] = stamp
    if len(set(cols.values())) < len(cols):
        raise DataError(src.label, f"the same column is named for two roles: {cols}")
    cols = {role: fields.index(name) for role, name in cols.items()}
    return Layout(kind, sep, cols, tuple(fields), len(fields), bounds)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pick_column(src: Source, fields: list[str], role: str, given) -> str | None:
    """The header name for a role: the one given (any case), else a common name for it."""
    if given is not None:
        found = [f for f in fields if f == given] or [f for f in fields if f.lower() == str(given).lower()]
        if not found:
            raise DataError(src.label, f"{OPTIONS[role]}: no column {shown(given)} (columns: "
                                       f"{_names(fields)})")
        return found[0]
    plain = {f.lower().replace("_", "").replace("-", "").replace(" ", ""): f for f in reversed(fields)}
    found = [plain[g] for g in GUESSES[role] if g in plain]
    if found or role == "timestamp":
        return found[0] if found else None
    raise DataError(src.label, f"no {role} column among {_names(fields)}; name it with {OPTIONS[role]}")


def _names(names: list[str], most: int = 10) -> str:
    """Column or member names for a message: the first few, each escaped and cut short."""
    cut = ", ".join(printable(n, 30) for n in names[:most])
    return cut + (f", ... ({len(names):,} in all)" if len(names) > most else "")


def read_columns(src: Source, layout: Layout):
    """user, item, rating, timestamp arrays, read by the C parser with compact dtypes."""
    cols = layout.cols
    dtype = {p: np.float32 if role == "rating" else np.int64 if role == "timestamp" else np.int32
             for role, p in cols.items() if role == "rating" or layout.kind != "generic"}
    try:
        with src.open() as f:  # only empty fields are missing: "NA" may be somebody's id
            df = layout.read(f, int(bool(layout.header)), dtype=dtype, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise DataError(src.label, "no ratings: the file has a header but no rows") from None
    except pd.errors.ParserError as e:
        where = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if where:
            raise DataError(src.label, f"expected {where[1]} fields, saw {where[3]}", line=int(where[2])) from None
        raise DataError(src.label, f"cannot parse the file: {str(e).strip()}") from None
    except UnicodeDecodeError:
        raise not_utf8(src) from None
    except (ValueError, OverflowError):
        raise _locate_problem(src, layout) from None
    if len(df) == 0:
        raise DataError(src.label, "no ratings: the file has a header but no rows")
    rating = df[cols["rating"]].to_numpy(np.float32)
    lo, hi = layout.bounds or (-np.inf, np.inf)
    user, item = _ids(df[cols["user"]]), _ids(df[cols["item"]])
    if user is None or item is None or not np.all(np.isfinite(rating) & (rating >= lo) & (rating <= hi)):
        raise _locate_problem(src, layout)
    stamp = df.get(cols.get("timestamp"))  # a generic file's may be dates, or absent: then None
    return user, item, rating, stamp.to_numpy(np.int64) if stamp is not None and stamp.dtype.kind in "iu" else None


def _ids(column: pd.Series) -> np.ndarray | None:
    """Ids as int32 (int64 if too big for it) or as str objects (also whole numbers past int64,
    which would wrap round); None if one is missing."""
    values = column.to_numpy()
    if values.dtype.kind in "iu" and (values.size == 0 or values.max() < 2**63):
        fits = values.size == 0 or -2**31 <= values.min() <= values.max() < 2**31
        return values.astype(np.int32 if fits else np.int64, copy=False)
    return None if column.isna().any() else values.astype(str).astype(object)


def _locate_problem(src: Source, layout: Layout) -> DataError:
    """The first bad value and its line: blocks of whole lines are parsed typed, a suspect one as text."""
    typed = {p: np.float64 for role, p in layout.cols.items() if role == "rating" or layout.kind != "generic"}
    for line, block in _blocks(src):
        skip = int(line == 1 and bool(layout.header))
        try:
            suspect = _suspect(layout.read(io.BytesIO(block), skip, dtype=typed, keep_default_na=False,
                                           na_values=[""], skip_blank_lines=False), layout)
        except ValueError:  # text where a number belongs
            suspect = True
        if suspect:
            try:
                text = layout.read(io.BytesIO(block), skip, dtype=str, keep_default_na=False,
                                   skip_blank_lines=False)
            except ValueError:  # nothing after the header, or unparseable: nothing to point at here
                continue
            found = _first_problem(text.fillna(""), layout)
            if found is not None:
                row, role, message = found
                return DataError(src.label, message, line=line + skip + row, column=layout.column(role))
    return DataError(src.label, "cannot read the ratings (no single bad value found)")


def _blocks(src: Source):
    """(number of its first line, bytes) of consecutive blocks of whole lines, CHUNK_BYTES or so each."""
    line, rest = 1, b""
    with src.open() as f:
        for data in iter(lambda: f.read(CHUNK_BYTES), b""):
            data = rest + data
            cut = data.rfind(b"\n") + 1
            block, rest = data[:cut], data[cut:]
            if block:
                yield line, block
                line += block.count(b"\n")
    if rest:
        yield line, rest


def _suspect(chunk: pd.DataFrame, layout: Layout) -> bool:
    """Whether a typed chunk may hold a bad value: a gap, a rating out of bounds, a fractional id."""
    lo, hi = layout.bounds or (-np.inf, np.inf)
    bad = np.zeros(len(chunk), dtype=bool)
    for role, p in layout.cols.items():
        x = chunk[p]
        if role == "rating":  # NaN fails every comparison
            bad |= ~((x >= lo) & (x <= hi) & np.isfinite(x)).to_numpy()
        elif layout.kind != "generic":  # MovieLens ids and timestamps are whole, ids within 32 bits
            bad |= ((x != np.round(x)) | ((x.abs() >= 2**31) & (role != "timestamp"))).to_numpy()
        elif role != "timestamp":
            bad |= x.isna().to_numpy()
    return bool(np.any(bad & ~chunk.isna().all(axis=1).to_numpy()))  # blank lines are no fault


def _first_problem(chunk: pd.DataFrame, layout: Layout):
    """(row, role, message) of the first bad value in a chunk of text columns, or None."""
    text = {role: chunk[p] for role, p in layout.cols.items()}
    blank = np.logical_and.reduce([(t == "").to_numpy() for t in text.values()])  # blank lines
    strict = layout.kind != "generic"  # MovieLens ids and timestamps are whole numbers
    lo, hi = layout.bounds or (-np.inf, np.inf)
    found = []
    for role, values in text.items():
        empty = (values == "").to_numpy() & ~blank
        x = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
        whole = np.isfinite(x) & (x == np.round(x))
        what = {"user": "user id", "item": "movie id"}.get(role, role)
        if role == "rating":  # {q}: the value quoted, {v}: a number as written (both cut short)
            checks = [(empty, "the rating is empty"),
                      (~empty & ~blank & np.isnan(x), "rating {q} is not a number"),
                      (np.isinf(x), "rating {q} is not a finite number"),
                      (np.isfinite(x) & ((x < lo) | (x > hi)),
                       f"rating {{v}} is outside the allowed range {lo:g} to {hi:g}")]
        elif role == "timestamp":
            checks = [(~blank & ~whole, "timestamp {q} is not a whole number")] if strict else []
        else:
            checks = [(empty, f"the {what} is empty")] + ([
                (~empty & ~blank & ~whole, f"{what} {{q}} is not a whole number"),
                (whole & (np.abs(x) >= 2**31), f"{what} {{v}} does not fit in 32 bits")] if strict else [])
        for bad, message in checks:
            rows = np.flatnonzero(bad)
            if rows.size:
                value = values.iloc[rows[0]]
                plain = value if len(value) <= 40 else shown(value)
                found.append((int(rows[0]), role, message.format(q=shown(value), v=plain)))
    return min(found, key=lambda f: f[0]) if found else None


def not_utf8(src: Source) -> DataError:
    """Where the first byte that is not UTF-8 is, by line and character (the decoder's own
    position counts from wherever the parser's buffer began)."""
    for line, block in _blocks(src):  # whole lines: a newline is never inside a UTF-8 character
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as e:
            start = block.rfind(b"\n", 0, e.start) + 1
            at = len(block[start:e.start].decode("utf-8")) + 1
            return DataError(src.label, f"not UTF-8 text: byte 0x{block[e.start]:02x} at character "
                                        f"{at} ({e.reason}); save the file as UTF-8",
                             line=line + block.count(b"\n", 0, e.start))
    return DataError(src.label, "not UTF-8 text; save the file as UTF-8")
