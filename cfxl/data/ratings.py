"""Ratings files in the MovieLens layouts (zipped or not), id <-> index maps, the split and the crosstab."""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cfxl.errors import DataError, UnknownIdError

from cfxl.data.layouts import find_ratings, read_columns, sniff
from cfxl.data.movies import TITLES_NAMES, read_titles




class IdMap:
    """Raw ids <-> contiguous indices 0..n-1 in order of first appearance, as the lesson's dict."""

    def __init__(self, ids, name: str, *, source: str = ""):
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iuOU" and ids.size:
            raise ValueError(f"{name} ids must be integers or strings, not {ids.dtype}")
        self.ids = ids.astype(np.int64 if ids.dtype.kind in "iu" or not ids.size else object)
        self.name, self.source = name, source  # source: the file named in unknown-id messages
        self._lookup = pd.Index(self.ids)
        if not self._lookup.is_unique:
            raise ValueError(f"{name} ids are not unique")

    @classmethod
    def from_values(cls, values, name: str, *, source: str = "") -> tuple[IdMap, np.ndarray]:
        """The map of a column of raw ids, and the column as int32 indices (vectorised)."""
        codes, uniques = pd.factorize(np.asarray(values), sort=False)
        return cls(uniques, name, source=source), codes.astype(np.int32)

    @classmethod
    def from_state(cls, state: list, name: str, *, source: str = "") -> IdMap:
        return cls(np.array(state, dtype=object if any(isinstance(s, str) for s in state) else None),
                   name, source=source)

    def to_state(self) -> list:
        """Plain ints or strs, so a checkpoint loads with torch.load(weights_only=True)."""
        return self.ids.tolist()

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other) -> bool:
        if not isinstance(other, IdMap):
            return NotImplemented
        return (self.name == other.name and self.ids.dtype == other.ids.dtype
                and np.array_equal(self.ids, other.ids))

    __hash__ = None

    def __repr__(self) -> str:
        return f"IdMap({self.name!r}, {len(self):,} ids)"

    def index(self, ids):
        """Index of a raw id (an int), or of each id in an array (int64 array)."""
        scalar = np.ndim(ids) == 0
        asked = np.atleast_1d(np.asarray(ids, dtype=object if scalar else None))
        if self.ids.dtype == object:
            found = self._lookup.get_indexer(asked.astype(str).astype(object))
        else:  # ids typed on a command line arrive as strings
            found = self._lookup.get_indexer(pd.to_numeric(pd.Series(asked), errors="coerce"))
        missing = np.flatnonzero(found < 0)
        if missing.size:
            origin = f" from {self.source}" if self.source else ""
            more = f" ({missing.size:,} of the {found.size:,} ids asked for are unknown)" if missing.size > 1 else ""
            raise UnknownIdError(
                f"{self.name} id {_plain(asked[missing[0]])!r} is unknown: the model was trained on "
                f"{len(self):,} {self.name}s{origin} and never saw this id; check the id column or "
                f"retrain with data that contains it{more}")
        return int(found[0]) if scalar else found.astype(np.int64)

    def id_of(self, index):
        """The raw id at an index (a python int or str), or at each index of an array."""
        idx = np.asarray(index)
        if idx.dtype.kind not in "iu":
            raise UnknownIdError(f"{self.name} index {_plain(index)!r} is not an integer")
        bad = (idx < 0) | (idx >= len(self))
        if bad.any():
            raise UnknownIdError(
                f"{self.name} index {_plain(idx[bad].flat[0] if idx.ndim else idx[()])!r} is out of range: "
                f"there are {len(self):,} {self.name}s, indices 0 to {len(self) - 1:,}")
        return _plain(self.ids[idx])


def _plain(value):
    """A numpy scalar as its python value, so messages read 5, not np.int64(5)."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True, eq=False)
class Ratings:
    """Ratings as index arrays in file order, with the id maps and titles that give them meaning."""

    source: Path  # the ratings file, or the zip it was read from
    users: IdMap
    movies: IdMap
    user_idx: np.ndarray  # (n,) int32
    movie_idx: np.ndarray  # (n,) int32
    rating: np.ndarray  # (n,) float32
    timestamp: np.ndarray | None = None  # (n,) int64 seconds since 1970, when the file has them
    titles: pd.DataFrame | None = None  # index raw movie id; columns title, genres ('|'-joined)
    dropped_duplicates: int = 0  # repeated (user, movie) pairs: only the last rating of each is kept
    layout: str = "csv"  # "csv" (MovieLens CSV), "u.data", "ratings.dat" or "generic"
    cut_titles: int = 0  # titles (and genres) longer than a spreadsheet cell, cut to fit

    def __len__(self) -> int:
        return len(self.rating)

    def __repr__(self) -> str:
        return (f"Ratings({len(self):,} ratings, {self.n_users:,} users, {self.n_movies:,} movies "
                f"from {self.source})")

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_movies(self) -> int:
        return len(self.movies)

    @property
    def rating_range(self) -> tuple[float, float]:
        return float(self.rating.min()), float(self.rating.max())

    def frame(self) -> pd.DataFrame:
        """userId, movieId, rating (and timestamp) with raw ids, in file order."""
        cols = {"userId": self.users.ids[self.user_idx], "movieId": self.movies.ids[self.movie_idx],
                "rating": self.rating, "timestamp": self.timestamp}
        return pd.DataFrame({k: v for k, v in cols.items() if v is not None})

    def title(self, movie_id) -> str:
        if self.titles is not None and movie_id in self.titles.index:
            return str(self.titles.at[movie_id, "title"])
        return f"movie {movie_id}"



def read_ratings(path=None, *, user_col=None, item_col=None, rating_col=None, rating_bounds=None) -> Ratings:
    """Read ratings in any MovieLens layout, zipped or not, or a CSV/TSV with named columns.

    path=None reads the embedded sample; rating_bounds=None means (0.5, 5.0) for the MovieLens
    layouts and any finite rating for other files.
    """
    if path is None:
        from cfxl.data.sample import RATINGS_CSV
        path = RATINGS_CSV
    src = find_ratings(Path(path).expanduser())
    try:
        layout = sniff(src, {"user": user_col, "item": item_col, "rating": rating_col}, rating_bounds)
        user, item, rating, timestamp = read_columns(src, layout)
        titles = read_titles(src.sibling(TITLES_NAMES[layout.kind])) if layout.kind in TITLES_NAMES else None
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise DataError(src.path, f"corrupt zip file ({e})") from None
    except OSError as e:  # one that can't be read in a folder that can (permissions, a folder)
        raise DataError(e.filename or src.label, f"cannot read it ({e.strerror or e})") from None
    users, user_idx = IdMap.from_values(user, "user", source=src.name)
    movies, movie_idx = IdMap.from_values(item, "movie", source=src.name)
    keep = _last_of_duplicates(user_idx, movie_idx, movies)
    if keep is not None:
        user_idx, movie_idx, rating = user_idx[keep], movie_idx[keep], rating[keep]
        timestamp = None if timestamp is None else timestamp[keep]
    return Ratings(Path(src.path), users, movies, user_idx, movie_idx, rating, timestamp, titles,
                   0 if keep is None else len(keep) - int(keep.sum()), layout.kind,
                   0 if titles is None else titles.attrs["cut"])




def _last_of_duplicates(user_idx: np.ndarray, movie_idx: np.ndarray, movies: IdMap) -> np.ndarray | None:
    """Mask keeping the last rating of each (user, movie) pair; None when no pair repeats."""
    rank = np.empty(len(movies), dtype=np.int64)
    rank[np.argsort(movies.ids, kind="stable")] = np.arange(len(movies))  # movie index -> id order
    key = user_idx.astype(np.int64) * len(movies) + rank[movie_idx]  # (n,) pair, in id order per user
    if np.all(key[1:] > key[:-1]):  # files sorted by user then movie, as MovieLens CSVs are: O(n)
        return None
    order = np.argsort(key, kind="stable")  # stable: a pair's ratings stay in file order, the last last
    key = key[order]
    repeated = key[1:] == key[:-1]  # (n-1,) the next rating in this order is of the same pair
    if not repeated.any():
        return None
    keep = np.ones(len(key), dtype=bool)
    keep[order[:-1][repeated]] = False
    return keep




def split(n: int, val_pct: float = 0.2, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): val is fastai's get_cv_idxs(n, val_pct=, seed=); train the rest, ascending."""
    if not 0 <= val_pct < 1:
        raise ValueError(f"val_pct must be in [0, 1), not {val_pct}")
    val = np.random.RandomState(seed).permutation(n)[: int(val_pct * n)].astype(np.int64)  # no global state
    is_train = np.ones(n, dtype=bool)
    is_train[val] = False
    return np.flatnonzero(is_train).astype(np.int64), val


def crosstab(ratings: Ratings, n_users: int = 15, n_movies: int = 15) -> pd.DataFrame:
    """The lesson's subset for Excel: the most active users against the most rated movies, NaN blank."""
    users = _most_counted(ratings.users, ratings.user_idx, n_users)  # indices, by ascending raw id
    movies = _most_counted(ratings.movies, ratings.movie_idx, n_movies)
    row_of, col_of = np.full(ratings.n_users, -1), np.full(ratings.n_movies, -1)
    row_of[users], col_of[movies] = np.arange(len(users)), np.arange(len(movies))
    rows, cols = row_of[ratings.user_idx], col_of[ratings.movie_idx]  # (n,) -1 outside the subset
    inside = (rows >= 0) & (cols >= 0)
    table = np.full((len(users), len(movies)), np.nan)  # (n_users, n_movies)
    table[rows[inside], cols[inside]] = ratings.rating[inside]
    return pd.DataFrame(table, index=pd.Index(ratings.users.ids[users], name="userId"),
                        columns=pd.Index(ratings.movies.ids[movies], name="movieId"))


def _most_counted(ids: IdMap, idx: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n ids seen most (ties: the smaller raw id first), ordered by raw id."""
    counts = pd.DataFrame({"id": ids.ids, "count": np.bincount(idx, minlength=len(ids))})
    top = counts.sort_values(["count", "id"], ascending=[False, True], kind="stable").head(n)
    return top.sort_values("id").index.to_numpy()


def file_sha256(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks, for a model's provenance."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
