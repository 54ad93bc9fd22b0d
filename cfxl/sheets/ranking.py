"""What the recommend, similar and me sheets share: the movies and users sheets' columns, settings
cells, and the top-10 table ranked by formulas.

The top 10 are ranked by LARGE, and MATCH finds each one's row; a tie goes to the row further up
(the more rated movie: the movies sheet's order), found by MATCH in the rows below the previous
pick. No dynamic-array function anywhere.
"""

from __future__ import annotations

import numpy as np

from cfxl.records.types.recommend import Ranked, RecommendRecords
from cfxl.sheets.book import MAX_ROWS, Book
from cfxl.sheets.refs import area, cell, column, on_sheet
from cfxl.sheets.table import id_as_text

FIRST = 2  # as cfxl.sheets.model_sheets: note in row 0, header in row 1, data from row 2
FACTORS_ROW = FIRST + 7  # the chosen user's or movie's factors, below its settings
TOP_ROW = FACTORS_ROW + 2  # the top 10's header; the ranks in the rows below
TEXT = '""&'  # text of a looked-up cell: a title stays text, an empty genre shows empty, not 0
TOP_COLUMNS = ("rank", "score", "row", "movieId", "title", "genres", "n_ratings")
WIDTHS = {"rank": 5, "row": 6, "movieId": 9, "title": 40, "genres": 22, "n_ratings": 9}


def movie_col(name: str, has_bias: bool) -> int:
    """A column of the `movies` sheet (cfxl.sheets.model_sheets): movieId, index, title, genres,
    n_ratings, bias (when the model has biases), then f1..fk ('f' is f1's)."""
    names = ["movieId", "index", "title", "genres", "n_ratings"] + ["bias"] * has_bias + ["f"]
    return names.index(name)


def user_col(name: str, has_bias: bool) -> int:
    """A column of the `users` sheet: userId, index, n_ratings, bias, then f1..fk."""
    return (["userId", "index", "n_ratings"] + ["bias"] * has_bias + ["f"]).index(name)


def movies_area(name: str, rec: RecommendRecords, *, sheet: str = "movies", n: int | None = None) -> str:
    """A whole column of the movies (or users) sheet's shown rows, absolute."""
    rows = rec.n_movies if n is None else n
    col = (movie_col if sheet == "movies" else user_col)(name, rec.has_bias)
    return on_sheet(sheet, area(FIRST, col, FIRST + max(rows, 1) - 1, col, absolute="rc"))


def factor_row(rec: RecommendRecords, sheet: str, row: int) -> str:
    """The factors f1..fk of one row of the movies or users sheet (columns absolute)."""
    col = (movie_col if sheet == "movies" else user_col)("f", rec.has_bias)
    return on_sheet(sheet, f"${column(col)}{row + 1}:${column(col + rec.n_factors - 1)}{row + 1}")


def blank_formula(ws, row: int, col: int, formula: str, fmt) -> None:
    """A formula whose value is "" here (a rank past the end of the candidates): nothing to verify."""
    ws.write_formula(row, col, formula, fmt, "")


def settings(book: Book, ws, row: int, items) -> dict[str, str]:
    """Label / value rows in A:B from `row`: items (label, write(r, c)); {label: absolute ref}."""
    refs = {}
    for i, (label, write) in enumerate(items):
        book.text(ws, row + i, 0, label, "right")
        write(row + i, 1)
        refs[label] = cell(row + i, 1, absolute="rc")
    return refs


def write_ranking(book: Book, ws, rec: RecommendRecords, r0: int, c0: int, scores: str,
                  ranked: Ranked, *, score_name: str, fmt: str = "num", scale: float | None = None,
                  extra: tuple[str, str, np.ndarray, str] | None = None) -> None:
    """The top rec.top_n movies by the scores in the absolute area `scores` (a column of
    rec.n_movies rows, "" where a movie may not rank): rank, score, row (on the movies sheet),
    movieId, title, genres, n_ratings, and extra = (header, column area, values, format)."""
    heads = [score_name if h == "score" else h for h in TOP_COLUMNS] + ([extra[0]] if extra else [])
    for j, h in enumerate(heads):
        book.text(ws, r0, c0 + j, h, "head")
        ws.set_column(c0 + j, c0 + j, WIDTHS.get(h, 10))
    first, last = (f"INDEX({scores},{{}}+1)", f"INDEX({scores},{rec.n_movies})")
    for k in range(1, rec.top_n + 1):
        r = r0 + k
        v, at = cell(r, c0 + 1), cell(r, c0 + 2)
        prev_v, prev_at = cell(r - 1, c0 + 1), cell(r - 1, c0 + 2)
        pos = int(ranked.positions[k - 1]) if k <= len(ranked.positions) else None
        book.number(ws, r, c0, k, "int")
        score_f = f"=IFERROR(LARGE({scores},{k}),\"\")"
        if k == 1:
            row_f = f"=IFERROR(MATCH({v},{scores},0),\"\")"
        else:  # a tie with the pick above: the next such score below it
            below = f"{first.format(prev_at)}:{last}"
            row_f = (f"=IFERROR(IF({v}={prev_v},{prev_at}+MATCH({v},{below},0),"
                     f"MATCH({v},{scores},0)),\"\")")
        lookups = [(movies_area(name, rec), f) for name, f in
                   (("movieId", "id"), ("title", None), ("genres", None), ("n_ratings", "int"))]
        if extra:
            lookups.append((extra[1], extra[3]))
        if pos is None:
            blank_formula(ws, r, c0 + 1, score_f, book.fmt(fmt))
            blank_formula(ws, r, c0 + 2, row_f, book.fmt("int"))
            for j, (col, f) in enumerate(lookups):
                blank_formula(ws, r, c0 + 3 + j, f"=IF({at}=\"\",\"\",INDEX({col},{at}))", book.fmt(f))
            continue
        book.formula(ws, r, c0 + 1, score_f, ranked.scores[pos], fmt, scale=scale)
        book.formula(ws, r, c0 + 2, row_f, pos + 1, "int")
        values = [rec.movie_ids[pos], None, None, rec.counts[pos]] + ([extra[2][pos]] if extra else [])
        for j, ((col, f), value) in enumerate(zip(lookups, values)):
            text = j in (1, 2) or (j == 0 and id_as_text(value))
            formula = f"=IF({at}=\"\",\"\",{TEXT if text else ''}INDEX({col},{at}))"
            if text:
                ws.write_formula(r, c0 + 3 + j, formula, book.fmt(f), "" if value is None else str(value))
            else:
                book.formula(ws, r, c0 + 3 + j, formula, value, f)


def sigmoid(rec: RecommendRecords, res: str, lo: str, hi: str) -> str:
    """The model's output formula for a pre-sigmoid expression (EmbeddingDot: res itself)."""
    return f"{lo}+({hi}-{lo})/(1+EXP(-({res})))" if rec.has_bias else res


def shown_rows(n: int, max_rows: int | None = None) -> int:
    """How many of n rows a capped table shows (cfxl.sheets.table.capped under
    cfxl.sheets.model_sheets' cap, which defaults to a sheet's rows less ten)."""
    room = (MAX_ROWS - 10 if max_rows is None else max_rows) - FIRST
    return n if n <= room else room - 1
