"""The recommend and similar sheets, and the `rated` table they read: recommendations as live formulas.

Every movie the `movies` sheet shows gets a formula row here, in that sheet's order: the chosen
user's predicted rating (dot product plus biases through the sigmoid range, as the model
computes it) or the chosen movie's cosine similarity. The top 10 are ranked by LARGE, and MATCH
finds each one's row; a tie goes to the row further up (the more rated movie), found by MATCH
in the rows below the previous pick (cfxl.sheets.ranking).
"""

from __future__ import annotations

import numpy as np

from cfxl.records.types.recommend import RecommendRecords
from cfxl.sheets.book import Book
from cfxl.sheets.me import write_me
from cfxl.sheets.ranking import (FACTORS_ROW, FIRST, TEXT, TOP_ROW, blank_formula, factor_row,
                                 movie_col, movies_area, settings, sigmoid, user_col,
                                 write_ranking)
from cfxl.sheets.refs import area, cell, exact_key, on_sheet, text_ids
from cfxl.sheets.table import Column, id_as_text, write_id, write_table

RATED = "rated"
OWN_COL = 9  # the user's own best rated, right of their recommendations


def write_recommend_sheets(book: Book, rec: RecommendRecords) -> None:
    """The sheets that use the model: rated, recommend, similar and me (cfxl.sheets.me)."""
    write_rated(book, rec)
    write_recommend(book, rec)
    write_similar(book, rec)
    write_me(book, rec)


def write_rated(book: Book, rec: RecommendRecords) -> None:
    """The `rated` sheet: the shown users' ratings of the shown movies, each user's together."""
    ws = book.sheet(RATED, "Every rating the users on the users sheet gave the movies on the movies "
                           "sheet (training and validation ratings), each user's together: the "
                           "recommend sheet leaves a user's rated movies out of their top 10 and "
                           "shows their own best rated. Values from the data.", streamed=True)
    columns = {"userId": Column("id", 9), "movieId": Column("id", 9), "rating": Column("rating", 8)}
    write_table(book, ws, rec.rated, columns, row=FIRST - 1)
    ws.freeze_panes(FIRST, 0)


def rated_area(rec: RecommendRecords, col: int) -> str:
    return on_sheet(RATED, area(FIRST, col, FIRST + max(len(rec.rated), 1) - 1, col, absolute="rc"))


def write_recommend(book: Book, rec: RecommendRecords) -> None:
    """The recommend sheet: a user chosen in cfxl_user, every shown movie's predicted rating for
    them, their best 10 unrated movies and their own best rated, live."""
    u, f_col = rec.user, 1
    ws = book.sheet("recommend", [
        "Recommendations for one user, live: choose a userId in the yellow cell (cfxl_user; the list "
        "is the users sheet's). Each movie's predicted rating below is the model's own formula over "
        "the users and movies sheets' factors and biases; the best 10 the user has not rated are "
        "ranked by LARGE, ties to the more rated movie; beside them the user's own best rated.",
        f"Only the {rec.n_movies:,} movies of the movies sheet (the most rated) and its users."])
    ws.set_column(0, 0, 16)
    users_ids = movies_area("userId", rec, sheet="users", n=rec.n_users)
    user_key = exact_key("cfxl_user", text_ids([u.user_id]))  # ids: all text or all numbers
    movie_text = text_ids(rec.movie_ids)
    lo, hi = rec.y_range or (0.0, 0.0)
    refs = settings(book, ws, FIRST, [
        ("userId", lambda r, c: write_id(book, ws, r, c, u.user_id, "hyper")),
        ("row on users", lambda r, c: book.formula(ws, r, c, f"=MATCH({user_key},{users_ids},0)",
                                                   u.row + 1, "int")),
        ("ratings on rated", lambda r, c: book.formula(
            ws, r, c, f"=COUNTIF({rated_area(rec, 0)},{user_key})", float(np.sum(~np.isnan(u.rating))),
            "int")),
        ("first on rated", lambda r, c: _first_rated(book, ws, r, c, rec)),
    ] + ([("bias", lambda r, c: book.formula(
            ws, r, c, f"=INDEX({movies_area('bias', rec, sheet='users', n=rec.n_users)},$B$4)",
            u.bias)),
          ("sigmoid range", lambda r, c: (book.number(ws, r, c, lo, "rating"),
                                          book.number(ws, r, c + 1, hi, "rating")))]
         if rec.has_bias else []))
    book.wb.define_name("cfxl_user", "=" + on_sheet(ws.name, refs["userId"]))
    ws.data_validation(FIRST, 1, FIRST, 1, {"validate": "list", "source": "=" + users_ids,
                                            "error_message": "a userId of the users sheet"})
    hi_ref = cell(FIRST + 5, 2, absolute="rc")
    fr = FACTORS_ROW
    _chosen_factors(book, ws, fr, f_col, "users", user_col("f", rec.has_bias), rec.n_users, u.vector)
    vec = area(fr, f_col, fr, f_col + rec.n_factors - 1, absolute="rc")

    top, table = TOP_ROW, TOP_ROW + rec.top_n + 3
    n, last = rec.n_movies, table + rec.n_movies
    for j, h in enumerate(("movieId", "predicted", "your rating", "unrated")):
        book.text(ws, table, j, h, "head")
    scores, predicted, yours = (area(table + 1, c, last, c, absolute="rc") for c in (3, 1, 2))
    book.text(ws, top - 1, 0, "best unrated", "section")
    write_ranking(book, ws, rec, top, 0, scores, u.top, score_name="predicted", scale=hi - lo or None)
    book.text(ws, top - 1, OWN_COL, "the user's own best rated", "section")
    write_ranking(book, ws, rec, top, OWN_COL, yours, u.own, score_name="rating", fmt="rating",
                  extra=("predicted", predicted, u.top.scores, "num"))
    first_rated = (f"INDEX({rated_area(rec, 1)},$B$6):INDEX({rated_area(rec, 1)},$B$6+$B$5-1)")
    for i in range(n):
        r, m = table + 1 + i, FIRST + i
        _movie_id(book, ws, r, m, rec.movie_ids[i])
        res = f"SUMPRODUCT({factor_row(rec, 'movies', m)},{vec})"
        if rec.has_bias:
            res += f"+{on_sheet('movies', f'$F{m + 1}')}+$B$7"
        book.formula(ws, r, 1, "=" + sigmoid(rec, res, "$B$8", hi_ref), u.top.scores[i], scale=hi - lo or None)
        ref = on_sheet("movies", f"$A{m + 1}")
        key = exact_key(ref, movie_text)
        rating = f"=IFERROR(INDEX({rated_area(rec, 2)},$B$6-1+MATCH({key},{first_rated},0)),\"\")"
        pred, yours_cell = cell(r, 1), cell(r, 2)
        if np.isnan(u.rating[i]):
            blank_formula(ws, r, 2, rating, book.fmt("rating"))
            book.formula(ws, r, 3, f"=IF({yours_cell}=\"\",{pred},\"\")", u.top.scores[i])
        else:
            book.formula(ws, r, 2, rating, u.rating[i], "rating")
            blank_formula(ws, r, 3, f"=IF({yours_cell}=\"\",{pred},\"\")", book.fmt("num"))
    ws.freeze_panes(FIRST + 1, 1)


def _first_rated(book: Book, ws, r: int, c: int, rec: RecommendRecords) -> None:
    """The user's first row on `rated` (1-based in its data), 0 when the user rated none."""
    rows = np.flatnonzero(_same_id(rec.rated["userId"].to_numpy(), rec.user.user_id))
    key = exact_key("cfxl_user", text_ids([rec.user.user_id]))
    book.formula(ws, r, c, f"=IFERROR(MATCH({key},{rated_area(rec, 0)},0),0)",
                 rows[0] + 1 if len(rows) else 0, "int")


def _same_id(ids: np.ndarray, one) -> np.ndarray:
    return np.array([i == one for i in ids.tolist()], dtype=bool)


def write_similar(book: Book, rec: RecommendRecords) -> None:
    """The similar sheet: a movie chosen in cfxl_movie, every shown movie's cosine similarity with
    it, and the 10 most similar among those rated at least cfxl_min_ratings times, live."""
    mv, f_col = rec.movie, 1
    ws = book.sheet("similar", [
        "Movies like one movie, live: choose a movieId in the yellow cell (cfxl_movie; the list is "
        "the movies sheet's) and the fewest ratings a neighbour needs (cfxl_min_ratings: rarely "
        "rated movies keep factors near their random start). Similarity is the cosine of the angle "
        "between two movies' factor vectors: 1 the same direction, 0 unrelated, -1 opposite.",
        f"Only the {rec.n_movies:,} movies of the movies sheet (the most rated)."])
    ws.set_column(0, 0, 16)
    ids = movies_area("movieId", rec)
    movie_key = exact_key("cfxl_movie", text_ids(rec.movie_ids))
    fr = FACTORS_ROW
    vec = area(fr, f_col, fr, f_col + rec.n_factors - 1, absolute="rc")
    refs = settings(book, ws, FIRST, [
        ("movieId", lambda r, c: write_id(book, ws, r, c, mv.movie_id, "hyper")),
        ("row on movies", lambda r, c: book.formula(ws, r, c, f"=MATCH({movie_key},{ids},0)",
                                                    mv.row + 1, "int")),
        ("title", lambda r, c: ws.write_formula(r, c, f"={TEXT}INDEX({movies_area('title', rec)},$B$4)",
                                                None, "")),
        ("min ratings", lambda r, c: book.number(ws, r, c, mv.min_ratings, "hyper")),
        ("length", lambda r, c: book.formula(ws, r, c, f"=SQRT(SUMSQ({vec}))", mv.norms[mv.row])),
    ])
    book.wb.define_name("cfxl_movie", "=" + on_sheet(ws.name, refs["movieId"]))
    book.wb.define_name("cfxl_min_ratings", "=" + on_sheet(ws.name, refs["min ratings"]))
    ws.data_validation(FIRST, 1, FIRST, 1, {"validate": "list", "source": "=" + ids,
                                            "error_message": "a movieId of the movies sheet"})
    ws.data_validation(FIRST + 3, 1, FIRST + 3, 1, {"validate": "integer", "criteria": ">=",
                                                    "value": 0})
    _chosen_factors(book, ws, fr, f_col, "movies", movie_col("f", rec.has_bias), rec.n_movies,
                mv.vector)

    top, table = TOP_ROW, TOP_ROW + rec.top_n + 3
    last = table + rec.n_movies
    for j, h in enumerate(("movieId", "length", "similarity", "neighbour")):
        book.text(ws, table, j, h, "head")
    book.text(ws, top - 1, 0, "most similar", "section")
    write_ranking(book, ws, rec, top, 0, area(table + 1, 3, last, 3, absolute="rc"), mv.top,
                  score_name="similarity", scale=1.0)
    counts = movies_area("n_ratings", rec)
    for i in range(rec.n_movies):
        r, m = table + 1 + i, FIRST + i
        _movie_id(book, ws, r, m, rec.movie_ids[i])
        book.formula(ws, r, 1, f"=SQRT(SUMSQ({factor_row(rec, 'movies', m)}))", mv.norms[i])
        cos = mv.top.scores[i]
        book.formula(ws, r, 2, f"=SUMPRODUCT({factor_row(rec, 'movies', m)},{vec})/({cell(r, 1)}*$B$7)",
                     cos, scale=1.0)
        count = f"INDEX({counts},{i + 1})"
        formula = f"=IF(AND({count}>=cfxl_min_ratings,{i + 1}<>$B$4),{cell(r, 2)},\"\")"
        if rec.counts[i] >= mv.min_ratings and i != mv.row:
            book.formula(ws, r, 3, formula, cos, scale=1.0)
        else:
            blank_formula(ws, r, 3, formula, book.fmt("num"))
    ws.freeze_panes(FIRST + 1, 1)


def _chosen_factors(book: Book, ws, row: int, col: int, sheet: str, first_col: int, n: int,
                vector) -> None:
    """The chosen user's (movie's) factors, f1..fk, looked up from `sheet`'s factor columns by
    the row number in B4 (the chosen id's MATCH)."""
    book.text(ws, row, 0, "factors", "right")
    for j, value in enumerate(vector):
        book.text(ws, row - 1, col + j, f"f{j + 1}", "head")
        column = on_sheet(sheet, area(FIRST, first_col + j, FIRST + n - 1, first_col + j,
                                      absolute="rc"))
        book.formula(ws, row, col + j, f"=INDEX({column},$B$4)", value)


def _movie_id(book: Book, ws, row: int, movie_row: int, movie_id) -> None:
    """Column A of a per-movie table: the movies sheet's id at movie_row, as a link (text ids
    of 16 digits and more stay text, as the movies sheet writes them)."""
    ref = on_sheet("movies", f"$A{movie_row + 1}")
    if id_as_text(movie_id):
        ws.write_formula(row, 0, f"={ref}", book.fmt("id"), str(movie_id))
    else:
        book.formula(ws, row, 0, f"={ref}", movie_id, "id")
