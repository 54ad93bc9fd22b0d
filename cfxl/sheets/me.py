"""The me sheet: the reader rates the most rated movies and gets a user vector and a top 10, by formulas.

The fold-in is cfxl.engine.recommend.fold_in_factors written as formulas: ridge regression of
the model's pre-sigmoid score on the rated movies' factors (a blank rating's row of X is zero),
theta = (X'X + lambda I)^-1 X'y, with MMULT, MINVERSE and MUNIT in legacy array formulas.
With nothing typed theta is zero: the movie biases alone rank the movies.
"""

from __future__ import annotations

import numpy as np

from cfxl.records.types.recommend import RecommendRecords
from cfxl.sheets.book import Book
from cfxl.sheets.ranking import (FIRST, TEXT, blank_formula, factor_row, movie_col, settings,
                                 sigmoid, write_ranking)
from cfxl.sheets.refs import area, cell, column, on_sheet
from cfxl.sheets.table import id_as_text

X_COL = 6  # the first column of X; y (the target) just left of it, the rating left of that
RATING_COL, TARGET_COL = 4, 5
TOP_ROW = FIRST + 1  # the top 10's header, right of the settings
RATE_ROW = TOP_ROW + 14  # the first movie to rate, below the top 10


def write_me(book: Book, rec: RecommendRecords) -> None:
    """The me sheet: rate the most rated movies in the yellow column; the fitted user and their
    top 10 follow (cfxl_lambda: the ridge penalty; cfxl_margin: how far inside the rating range
    a rating at either end is kept, so its logit is finite)."""
    me, k = rec.me, rec.n_factors
    p = k + rec.has_bias
    ws = book.sheet("me", [
        "Your recommendations: type your ratings of any of these movies in the yellow column (leave "
        "the rest blank). Your factors (and bias) are fitted to them by ridge regression of the "
        "model's score before its sigmoid on the movies' factors, theta = (X'X + lambda I)^-1 X'y, "
        "below; your top 10 leaves out what you rated.",
        "With nothing typed theta is 0: the movies rank by their bias alone. A rating at the end of "
        "the range is kept margin inside it (the sigmoid never reaches the ends). Only the movies "
        "of the movies sheet are ranked."])
    ws.set_column(0, 0, 14)
    lo, hi = rec.y_range or (0.0, 0.0)
    r0, r1 = RATE_ROW, RATE_ROW + me.n - 1  # the movies to rate
    ratings = area(r0, RATING_COL, r1, RATING_COL, absolute="rc")
    items = [("lambda", lambda r, c: book.number(ws, r, c, me.lam, "hyper"))]
    if rec.has_bias:
        items += [("margin", lambda r, c: book.number(ws, r, c, me.margin, "num2")),  # not yellow:
                  # it moves nothing until a rating at an end of the range is typed
                  ("sigmoid range", lambda r, c: (book.number(ws, r, c, lo, "rating"),
                                                  book.number(ws, r, c + 1, hi, "rating")))]
    items.append(("ratings typed", lambda r, c: book.formula(
        ws, r, c, f"=COUNT({ratings})", float(np.sum(~np.isnan(me.rating))), "int")))
    refs = settings(book, ws, FIRST + 1, items)
    book.wb.define_name("cfxl_lambda", "=" + on_sheet(ws.name, refs["lambda"]))
    lo_ref = hi_ref = None
    if rec.has_bias:
        book.wb.define_name("cfxl_margin", "=" + on_sheet(ws.name, refs["margin"]))
        lo_ref = refs["sigmoid range"]
        hi_ref = cell(FIRST + 3, 2, absolute="rc")

    x_area = area(r0, X_COL, r1, X_COL + p - 1, absolute="rc")
    y_area = area(r0, TARGET_COL, r1, TARGET_COL, absolute="rc")
    fit = r1 + 2
    xty_row, theta_row, gram_row = fit + 1, fit + 2, fit + 4
    theta = area(theta_row, X_COL, theta_row, X_COL + k - 1, absolute="rc")
    theta_bias = cell(theta_row, X_COL + k, absolute="rc")
    table = gram_row + p + 1  # every shown movie's prediction for you
    candidates = area(table + 1, 2, table + rec.n_movies, 2, absolute="rc")

    book.text(ws, FIRST, 3, "your top 10", "section")
    write_ranking(book, ws, rec, TOP_ROW, 3, candidates, me.top, score_name="predicted",
                  scale=hi - lo or None)

    book.text(ws, r0 - 2, 0, "rate these movies", "section")
    heads = ["movieId", "title", "genres", "n_ratings", "your rating", "y"] + \
        [f"f{j + 1}" for j in range(k)] + ["1 (bias)"] * rec.has_bias
    for j, h in enumerate(heads):
        book.text(ws, r0 - 1, j, h, "head")
    for j, width in enumerate((9, 36, 20, 9, 10, 10)):
        ws.set_column(j, j, width)
    f0 = movie_col("f", rec.has_bias)
    for i in range(me.n):
        r, m = r0 + i, FIRST + i + 1  # m: the movies sheet's row, 1-based
        _movie_id(book, ws, r, 0, rec, i, m)
        for j, name in ((1, "title"), (2, "genres")):
            col = column(movie_col(name, rec.has_bias))
            ws.write_formula(r, j, f"={TEXT}{on_sheet('movies', f'${col}{m}')}", None, "")
        book.formula(ws, r, 3, "=" + on_sheet("movies", f"$E{m}"), rec.counts[i], "int")
        rated = not np.isnan(me.rating[i])
        you = cell(r, RATING_COL, absolute="c")
        if rated:
            book.number(ws, r, RATING_COL, me.rating[i], "start_input")
        else:
            ws.write_blank(r, RATING_COL, None, book.fmt("start_input"))
        if rec.has_bias:
            q = f"MIN(MAX({you},{lo_ref}+cfxl_margin),{hi_ref}-cfxl_margin)"
            bias = on_sheet("movies", f"$F{m}")
            y = f"=IF(ISNUMBER({you}),LN(({q}-{lo_ref})/({hi_ref}-{q}))-{bias},0)"
        else:
            y = f"=IF(ISNUMBER({you}),{you},0)"
        book.formula(ws, r, TARGET_COL, y, me.target[i], scale=abs(me.target[i]) + 1.0)
        for j in range(k):
            factor = on_sheet("movies", f"{column(f0 + j)}{m}")
            book.formula(ws, r, X_COL + j, f"=IF(ISNUMBER({you}),{factor},0)",
                         rec_factor(rec, me, i, j))
        if rec.has_bias:
            book.formula(ws, r, X_COL + k, f"=IF(ISNUMBER({you}),1,0)", float(rated), "int")

    book.text(ws, fit, 0, "the fit", "section")
    for r, label in ((xty_row, "X'y"), (theta_row, "theta: you"), (gram_row, "X'X + lambda I")):
        book.text(ws, r, TARGET_COL, label, "right")
    _array(book, ws, xty_row, xty_row, p, f"MMULT(TRANSPOSE({y_area}),{x_area})",
           me.xty[None, :], me.xty_size[None, :])
    gram = area(gram_row, X_COL, gram_row + p - 1, X_COL + p - 1, absolute="rc")
    _array(book, ws, gram_row, gram_row + p - 1, p,
           f"MMULT(TRANSPOSE({x_area}),{x_area})+cfxl_lambda*_xlfn.MUNIT({p})", me.gram, me.gram_size)
    xty = area(xty_row, X_COL, xty_row, X_COL + p - 1, absolute="rc")
    _array(book, ws, theta_row, theta_row, p, f"MMULT({xty},TRANSPOSE(MINVERSE({gram})))",
           me.theta[None, :], np.full((1, p), np.max(np.abs(me.theta), initial=0.0)))

    for j, h in enumerate(("movieId", "predicted", "unrated")):
        book.text(ws, table, j, h, "head")
    scale = hi - lo or None
    scores = me.top.scores
    for i in range(rec.n_movies):
        r, m = table + 1 + i, FIRST + i + 1
        _movie_id(book, ws, r, 0, rec, i, m)
        res = f"SUMPRODUCT({factor_row(rec, 'movies', m - 1)},{theta})"
        if rec.has_bias:
            res += f"+{theta_bias}+{on_sheet('movies', f'$F{m}')}"
        book.formula(ws, r, 1, "=" + sigmoid(rec, res, lo_ref, hi_ref), scores[i], scale=scale)
        if i < me.n:
            formula = f"=IF(ISNUMBER({cell(r0 + i, RATING_COL, absolute='rc')}),\"\",{cell(r, 1)})"
            if np.isnan(me.rating[i]):
                book.formula(ws, r, 2, formula, scores[i], scale=scale)
            else:
                blank_formula(ws, r, 2, formula, book.fmt("num"))
        else:
            book.formula(ws, r, 2, f"={cell(r, 1)}", scores[i], scale=scale)


def rec_factor(rec: RecommendRecords, me, i: int, j: int) -> float:
    """X[i, j] as the sheet shows it: movie i's factor j where rated, else 0."""
    return 0.0 if np.isnan(me.rating[i]) else float(me.factors[i, j])


def _movie_id(book: Book, ws, r: int, c: int, rec: RecommendRecords, i: int, m: int) -> None:
    """movieId of the movies sheet's 1-based row m, by reference."""
    ref = on_sheet("movies", f"$A{m}")
    if id_as_text(rec.movie_ids[i]):
        ws.write_formula(r, c, f"={ref}", book.fmt("id"), str(rec.movie_ids[i]))
    else:
        book.formula(ws, r, c, f"={ref}", rec.movie_ids[i], "id")


def _array(book: Book, ws, r0: int, r1: int, p: int, formula: str, values: np.ndarray,
           sizes: np.ndarray) -> None:
    """A legacy array formula over rows r0..r1 of X's p columns, each cell verified against
    values at the size of what it sums (sizes)."""
    book.array_formula(ws, r0, X_COL, r1, X_COL + p - 1, formula, values, "sci", check=False)
    for i in range(r1 - r0 + 1):
        for j in range(p):
            book.expect(ws.name, cell(r0 + i, X_COL + j), float(values[i, j]), float(sizes[i, j]))
