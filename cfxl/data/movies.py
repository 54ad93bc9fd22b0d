"""The movie files beside the ratings: titles and genres from movies.csv, u.item or movies.dat,
cut to what a spreadsheet cell holds."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd

from cfxl.data.layouts import Source, not_utf8
from cfxl.errors import DataError

TITLES_NAMES = {"csv": "movies.csv", "u.data": "u.item", "ratings.dat": "movies.dat"}  # by layout
U_ITEM_GENRES = ("unknown|Action|Adventure|Animation|Children's|Comedy|Crime|Documentary|Drama|Fantasy|"
                 "Film-Noir|Horror|Musical|Mystery|Romance|Sci-Fi|Thriller|War|Western").split("|")
CELL_CHARS = 32_767  # a spreadsheet cell's limit: longer titles are cut, saying so at their end


def cut_to_cells(text: pd.Series) -> tuple[pd.Series, int]:
    """Text longer than a spreadsheet cell holds, cut to fit and ending in a note that says so;
    and how many were cut."""
    long = text.str.len() > CELL_CHARS
    if not long.any():
        return text, 0

    def cut(t: str) -> str:
        note = f"... [cut: {len(t):,} characters]"
        return t[:CELL_CHARS - len(note)] + note
    return text.where(~long, text[long].map(cut)), int(long.sum())


def read_titles(src: Source | None) -> pd.DataFrame | None:
    """Titles and '|'-joined genres ('' when unknown) by raw movie id: movies.csv, u.item or
    movies.dat. Text longer than a cell holds is cut (cut_to_cells); attrs["cut"] counts it,
    attrs["source"] names the file."""
    if src is None:
        return None
    try:
        with src.open() as f:
            if src.name == "movies.csv":
                df = pd.read_csv(f, dtype={"title": str, "genres": str}, keep_default_na=False)
                ids, titles, genres = df["movieId"], df["title"], df.get("genres", pd.Series([""] * len(df)))
            elif src.name == "u.item":  # id|title|release|video|url|19 genre flags, latin-1
                df = pd.read_csv(f, sep="|", header=None, encoding="latin-1", quoting=csv.QUOTE_NONE,
                                 dtype={1: str}, keep_default_na=False)
                flags = df.iloc[:, 1 - len(U_ITEM_GENRES):].to_numpy(bool)  # (n, 18): all but "unknown"
                joined = np.where(flags, np.array([g + "|" for g in U_ITEM_GENRES[1:]], dtype=object), "")
                ids, titles, genres = df[0], df[1], pd.Series(joined.sum(axis=1).astype(str)).str.rstrip("|")
            else:  # movies.dat: MovieID::Title::Genres, latin-1; titles may hold ':'
                lines = pd.Series(f.read().decode("latin-1").splitlines())
                parts = lines.str.extract(r"^(\d+)::(.*)::([^:]*)$")
                bad = np.flatnonzero(parts[0].isna() & (lines.str.strip() != ""))
                if bad.size:
                    raise DataError(src.label, "expected MovieID::Title::Genres", line=int(bad[0]) + 1)
                parts = parts.dropna()
                ids, titles, genres = parts[0].astype(np.int64), parts[1], parts[2]
        genres = genres.replace("(no genres listed)", "")  # MovieLens' word for unknown
        out = pd.DataFrame({"title": titles.to_numpy(), "genres": genres.to_numpy()},
                           index=pd.Index(ids.to_numpy(np.int64), name="movieId"))
    except UnicodeDecodeError:
        raise not_utf8(src) from None
    except (ValueError, KeyError, IndexError) as e:
        raise DataError(src.label, f"cannot read the titles ({str(e).strip()[:200]})") from None
    out = out[~out.index.duplicated()]
    cuts = 0
    for column in ("title", "genres"):
        out[column], n = cut_to_cells(out[column].astype(str))
        cuts += n
    out.attrs.update(cut=cuts, source=src.label)
    return out
