"""The lesson's long-format sheets, live: one row per rating of the slice.

`movielens_emb` (embeddings looked up with MATCH and INDEX), `movielens_1hot` (the same lookups
as one-hot matrix products, MMULT array formulas) and `nn` (EmbeddingNet's forward pass).

All three share the left-hand layout of the lesson's `movielens_emb`: a user embedding table
(A idx, B userId, C.. factors) from row 4 and a movie table below it; the ratings start in
column J (N on `nn`, whose weight blocks sit below the tables) at row 4, one per row, with a
`valid` column (1: held out). The two movielens sheets are views of `dotprod`'s model: their
tables are formulas pointing at its parameter cells, so Solver there (or an edit) moves them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfxl.records.types.lesson import LessonRecords
from cfxl.sheets.book import Book
from cfxl.sheets.grid import GridLayout, fit_note, rating_scale, runs_of, write_id
from cfxl.sheets.refs import area, cell, exact_key, on_sheet, text_ids
from cfxl.sheets.styles import error_scale

HEAD_ROW = 2  # row 3: column headers; row 2 holds the group titles above them
FIRST = 3     # row 4: the first rating and the first user of the tables


@dataclass(frozen=True)
class Tables:
    """Where the embedding tables went: absolute references for MATCH, INDEX and MMULT."""

    user_ids: str   # $B$4:$B$18
    users: str      # $C$4:$G$18, (n_users, n_factors)
    movie_ids: str  # $B$22:$B$36
    movies: str     # $C$22:$G$36
    next_row: int   # the first free row below them


def write_tables(book: Book, ws, rec: LessonRecords, u_weight: np.ndarray, i_weight: np.ndarray,
                 *, titles: bool, source: str | None = None) -> Tables:
    """The user and movie embedding tables, one row per id: editable numbers, or with source
    (a crosstab sheet's name, `dotprod`) formulas pointing at its parameter cells."""
    k = rec.n_factors
    L = GridLayout(*rec.slice.shape, k, False)
    linked = {"user": lambda i, f: (L.pred_row + i, L.uf_col + f),  # dotprod: a row per user
              "movie": lambda i, f: (L.mf_row + f, L.grid_col + i)}  # and a column per movie
    refs = []
    top = FIRST
    for what, ids, weights in (("user", rec.slice.user_ids, u_weight), ("movie", rec.slice.movie_ids, i_weight)):
        book.text(ws, top - 2, 0, f"{what} embeddings ({what}s' factors)", "group")
        for c, label in enumerate(["idx", f"{what}Id"] + [f"factor {f + 1}" for f in range(k)]):
            book.text(ws, top - 1, c, label, "head")
        if titles and what == "movie":
            book.text(ws, top - 1, 2 + k, "title", "head")
        for i, raw_id in enumerate(ids):
            book.number(ws, top + i, 0, i + 1, "int")
            write_id(book, ws, top + i, 1, raw_id)
            for f in range(k):
                if source is None:
                    book.number(ws, top + i, 2 + f, weights[i, f], "num_in")
                else:
                    ref = on_sheet(source, cell(*linked[what](i, f)))
                    book.formula(ws, top + i, 2 + f, f"={ref}", weights[i, f])
            if titles and what == "movie":
                book.text(ws, top + i, 2 + k, rec.slice.titles[i])
        bottom = top + len(ids) - 1
        refs += [area(top, 1, bottom, 1, absolute="rc"), area(top, 2, bottom, 1 + k, absolute="rc")]
        top = bottom + 4  # a blank row, the group title, the header
    ws.set_column(0, 0, 5)
    ws.set_column(1, 1 + k, 8)
    if titles:
        ws.set_column(2 + k, 2 + k, 30)
    return Tables(*refs, next_row=top - 2)


def write_ratings(book: Book, ws, rec: LessonRecords, c0: int) -> None:
    """userId, movieId, rating of each rated cell, from row 4 in columns c0.. (as the lesson's
    I:K), and valid: 1 for a rating held out for validation (grey), 0 for a training one."""
    s = rec.slice
    book.text(ws, HEAD_ROW - 1, c0, "original data", "group")
    for d, label in enumerate(("userId", "movieId", "rating", "valid")):
        book.text(ws, HEAD_ROW, c0 + d, label, "head")
    for n, (i, j) in enumerate(zip(s.rows, s.cols)):
        write_id(book, ws, FIRST + n, c0, s.user_ids[i])
        write_id(book, ws, FIRST + n, c0 + 1, s.movie_ids[j])
        book.number(ws, FIRST + n, c0 + 2, s.ratings[i, j], "held_out" if s.valid[i, j] else "rating")
        book.number(ws, FIRST + n, c0 + 3, int(s.valid[i, j]), "int")
    rating_scale(ws, runs_of(~s.long_valid, FIRST, c0 + 2), s.y_range)


def write_fit(book: Book, ws, rec: LessonRecords, c0: int, rating_col: int, prediction, g,
              pred_scale: np.ndarray | None = None, objective: tuple[str, object] | None = None
              ) -> None:
    """Columns c0.. : the prediction (prediction(row) its formula, pred_scale the size of the
    terms it sums), the error (prediction - rating) and its square; beside them train and valid
    RMSE (SUMIF over the valid column) with torch's values, and with objective (the sum of
    squared parameters as a formula, the fit) the wd cell and train MSE + wd * that sum."""
    s = rec.slice
    for d, label in ((0, "prediction"), (1, "error"), (2, "error^2"), (5, "this sheet"),
                     (6, "torch")):
        book.text(ws, HEAD_ROW, c0 + d, label, "head")
    last = FIRST + len(g.pred) - 1
    y = s.long_ratings
    operands = np.abs(y) + np.abs(g.pred)  # (n,) what prediction - rating cancels
    for n in range(len(g.pred)):
        r = FIRST + n
        book.formula(ws, r, c0, prediction(r), g.pred[n],
                     scale=None if pred_scale is None else pred_scale[n])
        book.formula(ws, r, c0 + 1, f"={cell(r, c0)}-{cell(r, rating_col)}", g.err[n],
                     scale=operands[n])
        book.formula(ws, r, c0 + 2, f"={cell(r, c0 + 1)}^2", g.sq_err[n],
                     scale=2 * abs(g.err[n]) * operands[n])
    rating_scale(ws, area(FIRST, c0, last, c0), s.y_range)
    lo, hi = s.y_range
    ws.conditional_format(area(FIRST, c0 + 1, last, c0 + 1), error_scale(hi - lo))
    valid = area(FIRST, rating_col + 1, last, rating_col + 1, absolute="rc")
    sq = area(FIRST, c0 + 2, last, c0 + 2, absolute="rc")
    rows = {"train RMSE": FIRST, "valid RMSE": FIRST + 1, "wd": FIRST + 2, "objective": FIRST + 3}
    for label, r in list(rows.items())[:4 if objective else 2]:
        book.text(ws, r, c0 + 4, label, "right")
    for label, flag, value in (("train RMSE", 0, g.train_rmse), ("valid RMSE", 1, g.valid_rmse)):
        if not np.isfinite(value):
            book.text(ws, rows[label], c0 + 5, "none held out")
            continue
        book.formula(ws, rows[label], c0 + 5,
                     f"=SQRT(SUMIF({valid},{flag},{sq})/COUNTIF({valid},{flag}))", value, "loss")
        book.number(ws, rows[label], c0 + 6, value, "torch")
    if objective:
        sumsq, fit = objective
        book.number(ws, rows["wd"], c0 + 5, fit.weight_decay, "hyper")
        wd = cell(rows["wd"], c0 + 5, absolute="rc")
        book.formula(ws, rows["objective"], c0 + 5,
                     f"=SUMIF({valid},0,{sq})/COUNTIF({valid},0)+{wd}*({sumsq})", g.objective,
                     "loss")
        book.number(ws, rows["objective"], c0 + 6, g.objective, "torch")
    ws.set_column(c0, c0 + 2, 10)
    ws.set_column(c0 + 3, c0 + 3, 2)
    ws.set_column(c0 + 4, c0 + 4, 12)
    ws.set_column(c0 + 5, c0 + 6, 10)
    ws.freeze_panes(FIRST, 0)


def write_lookup(book: Book, ws, rec: LessonRecords, c0: int, id_col: int, ids: str,
                 table: str, values: np.ndarray, positions: np.ndarray, what: str) -> None:
    """A MATCH column (the row of each id in its table) at c0, then the looked-up embedding
    (INDEX by that row and the factor number in row 3) in the next n_factors columns."""
    k = values.shape[1]
    text = text_ids(rec.slice.user_ids if what == "user" else rec.slice.movie_ids)
    book.text(ws, HEAD_ROW - 1, c0 + 1, f"{what} embedding", "group")
    book.text(ws, HEAD_ROW, c0, f"{what} idx", "head")
    for f in range(k):
        book.number(ws, HEAD_ROW, c0 + 1 + f, f + 1, "id")
    for n in range(len(values)):
        r = FIRST + n
        book.formula(ws, r, c0, f"=MATCH({exact_key(cell(r, id_col), text)},{ids},0)",
                     positions[n] + 1, "int",
                     check=False)  # not torch's: the ids' positions, checked through the lookups
        for f in range(k):
            book.formula(ws, r, c0 + 1 + f, f"=INDEX({table},{cell(r, c0, absolute='c')},"
                                            f"{cell(HEAD_ROW, c0 + 1 + f, absolute='r')})",
                         values[n, f])
    ws.set_column(c0, c0, 9)
    ws.set_column(c0 + 1, c0 + k, 8)


def _dot_terms(g) -> np.ndarray:
    """(n,) the size of the terms each dot-product prediction sums, sum |user_f * movie_f|."""
    return (np.abs(g.user_emb) * np.abs(g.movie_emb)).sum(1)


def _dot_sheet(book: Book, rec: LessonRecords, name: str, note: str) -> tuple[object, Tables, int]:
    """A long sheet of the dotprod model: its note, its embedding tables (formulas pointing at
    dotprod's parameters) with the titles and the ratings; returns the sheet, the tables and
    the ratings' first column."""
    ws = book.sheet(name, "EmbeddingDot, the dotprod sheet's model: the tables are its factors "
                          "(formulas; edit them, or run Solver, on dotprod). " + note)
    t = write_tables(book, ws, rec, rec.dot.u_weight, rec.dot.i_weight, titles=True,
                     source="dotprod")
    c0 = 4 + rec.n_factors  # after the title column and a spacer: J for 5 factors
    write_ratings(book, ws, rec, c0)
    return ws, t, c0


def write_emb_sheet(book: Book, rec: LessonRecords) -> None:
    """`movielens_emb`: the dotprod model again, as embedding lookups over the ratings."""
    k, g = rec.n_factors, rec.long
    ws, t, c0 = _dot_sheet(book, rec, "movielens_emb", (
        "Each rating looks up its user's and movie's embedding (MATCH, INDEX) and predicts "
        "their SUMPRODUCT."))
    uc, mc = c0 + 4, c0 + 5 + k
    write_lookup(book, ws, rec, uc, c0, t.user_ids, t.users, g.user_emb, rec.slice.rows, "user")
    write_lookup(book, ws, rec, mc, c0 + 1, t.movie_ids, t.movies, g.movie_emb, rec.slice.cols, "movie")
    write_fit(book, ws, rec, mc + 1 + k, c0 + 2,
              lambda r: f"=SUMPRODUCT({area(r, uc + 1, r, uc + k)},{area(r, mc + 1, r, mc + k)})",
              g, _dot_terms(g))


def write_onehot_sheet(book: Book, rec: LessonRecords) -> None:
    """`movielens_1hot`: an embedding lookup is a one-hot row times the embedding table."""
    k, g = rec.n_factors, rec.long
    ws, t, c0 = _dot_sheet(book, rec, "movielens_1hot", (
        "Each rating's one-hot user and movie rows times the embedding tables (MMULT array "
        "formulas) give the same embeddings as a lookup; prediction = their SUMPRODUCT."))
    last = FIRST + len(rec.slice.rows) - 1
    col = c0 + 4
    blocks = []  # (first column of the one-hot block, width)
    for what, id_col, ids, onehot in (("user", c0, rec.slice.user_ids, g.user_onehot),
                                      ("movie", c0 + 1, rec.slice.movie_ids, g.movie_onehot)):
        book.text(ws, HEAD_ROW - 1, col, f"{what} one-hot (1 where the {what}Id is this column's)",
                  "group")
        for j, raw_id in enumerate(ids):
            write_id(book, ws, HEAD_ROW, col + j, raw_id)
            for n in range(len(onehot)):
                r = FIRST + n
                book.formula(ws, r, col + j, f"=IF({cell(r, id_col, absolute='c')}="
                                             f"{cell(HEAD_ROW, col + j, absolute='r')},1,0)",
                             onehot[n, j], "onehot")
        block = area(FIRST, col, last, col + len(ids) - 1)
        ws.conditional_format(block, {"type": "cell", "criteria": "==", "value": 1,
                                      "format": book.fmt("hot")})
        ws.set_column(col, col + len(ids) - 1, 5)
        blocks.append(block)
        col += len(ids)
    acts = []
    for what, block, table, values in (("user", blocks[0], t.users, g.user_act),
                                       ("movie", blocks[1], t.movies, g.movie_act)):
        book.text(ws, HEAD_ROW - 1, col, f"{what} one-hot x {what} table", "group")
        for f in range(k):
            book.text(ws, HEAD_ROW, col + f, f"factor {f + 1}", "head")
        book.array_formula(ws, FIRST, col, last, col + k - 1, f"=MMULT({block},{table})", values)
        ws.set_column(col, col + k - 1, 8)
        acts.append(col)
        col += k
    write_fit(book, ws, rec, col, c0 + 2,
              lambda r: f"=SUMPRODUCT({area(r, acts[0], r, acts[0] + k - 1)},"
                        f"{area(r, acts[1], r, acts[1] + k - 1)})",
              g, _dot_terms(g))


def write_net_sheet(book: Book, rec: LessonRecords) -> None:
    """`nn`: EmbeddingNet at inference (dropout off), its weights in labelled blocks on the left."""
    k, nh, g = rec.n_factors, rec.nh, rec.net
    state = (f"as initialised by torch (seed {rec.seed})" if rec.untrained else
             f"trained by torch in float64 ({fit_note(g.fit, int(rec.slice.train.sum()))})")
    ws = book.sheet("nn", f"EmbeddingNet {state}; dropout off, as at inference. "
                          "x = [user embedding, movie embedding]; hidden = MAX(0, x . lin1 row + "
                          "bias); prediction = sigmoid(hidden . lin2 + bias) * (hi - lo) + lo. "
                          "Edit any yellow embedding or weight.")
    t = write_tables(book, ws, rec, g.u_weight, g.i_weight, titles=False)
    w = _write_weights(book, ws, rec, t.next_row)
    c0 = max(2 + k, 2 + 2 * k, 2 + nh) + 1  # right of the weight blocks and a spacer: N
    write_ratings(book, ws, rec, c0)
    uc, mc, xc = c0 + 4, c0 + 5, c0 + 6  # user idx, movie idx, x
    hc = xc + 2 * k                       # hidden units
    zc = hc + nh                          # lin2's output, before the sigmoid
    for c, label in ((uc, "user idx"), (mc, "movie idx"), (zc, "z")):
        book.text(ws, HEAD_ROW, c, label, "head")
    book.text(ws, HEAD_ROW - 1, xc, "x = [user embedding, movie embedding]", "group")
    book.text(ws, HEAD_ROW - 1, hc, "hidden = relu(lin1(x))", "group")
    book.text(ws, HEAD_ROW - 1, zc, "z = lin2(hidden)", "group")
    for f in range(2 * k):
        book.text(ws, HEAD_ROW, xc + f, _x_name(f, k), "head")
    for h in range(nh):
        book.text(ws, HEAD_ROW, hc + h, f"h{h + 1}", "head")
    # what each sum cancels (cfxl.proof.verify's scale): a unit near zero keeps few digits
    hidden_terms = np.abs(g.x) @ np.abs(g.lin1_weight).T + np.abs(g.lin1_bias)  # (n, nh)
    z_terms = np.abs(g.hidden) @ np.abs(g.lin2_weight) + abs(g.lin2_bias)  # (n,)
    sl = rec.slice
    lookups = ((uc, c0, t.user_ids, sl.rows, text_ids(sl.user_ids)),
               (mc, c0 + 1, t.movie_ids, sl.cols, text_ids(sl.movie_ids)))
    for n in range(len(sl.rows)):
        r = FIRST + n
        for c, id_col, ids, pos, text in lookups:
            book.formula(ws, r, c, f"=MATCH({exact_key(cell(r, id_col), text)},{ids},0)", pos[n] + 1,
                         "int", check=False)  # not torch's: the ids' positions, checked through x
        for f in range(2 * k):
            table, at = (t.users, uc) if f < k else (t.movies, mc)
            book.formula(ws, r, xc + f, f"=INDEX({table},{cell(r, at, absolute='c')},{f % k + 1})",
                         g.x[n, f])
        x = area(r, xc, r, xc + 2 * k - 1, absolute="c")
        for h in range(nh):
            book.formula(ws, r, hc + h, f"=MAX(0,SUMPRODUCT({x},{w.lin1_rows[h]})+{w.lin1_bias[h]})",
                         g.hidden[n, h], scale=hidden_terms[n, h])
        book.formula(ws, r, zc, f"=SUMPRODUCT({area(r, hc, r, hc + nh - 1)},{w.lin2})+{w.lin2_bias}",
                     g.z[n], scale=z_terms[n])
    sumsq = "+".join(f"SUMSQ({a})" for a in (t.users, t.movies, w.lin1_block, w.lin2_block))
    write_fit(book, ws, rec, zc + 1, c0 + 2,
              lambda r: f"=1/(1+EXP(-{cell(r, zc)}))*({w.hi}-{w.lo})+{w.lo}",
              g, objective=(sumsq, g.fit))
    ws.set_column(c0 - 1, c0 - 1, 2)
    ws.set_column(uc, mc, 9)
    ws.set_column(xc, zc, 8)


@dataclass(frozen=True)
class NetWeights:
    """Absolute references to the net's weight cells, for the forward-pass formulas."""

    lin1_rows: list[str]  # hidden unit h's weights: a row of 2 * n_factors cells
    lin1_bias: list[str]
    lin2: str             # a row of nh cells
    lin2_bias: str
    lo: str
    hi: str
    lin1_block: str       # every lin1 weight and bias, for the weight decay's sum of squares
    lin2_block: str


def _x_name(f: int, k: int) -> str:
    return f"u{f + 1}" if f < k else f"m{f - k + 1}"


def _write_weights(book: Book, ws, rec: LessonRecords, top: int) -> NetWeights:
    """lin1 (a row per hidden unit, its bias beside), lin2 and the sigmoid range, from row top."""
    k, nh, g = rec.n_factors, rec.nh, rec.net
    book.text(ws, top, 0, "lin1: one row of weights per hidden unit, then its bias", "group")
    book.text(ws, top + 1, 0, "unit", "head")
    for f in range(2 * k):
        book.text(ws, top + 1, 1 + f, _x_name(f, k), "head")
    book.text(ws, top + 1, 1 + 2 * k, "bias", "head")
    rows, biases = [], []
    for h in range(nh):
        r = top + 2 + h
        book.text(ws, r, 0, f"h{h + 1}", "right")
        for f in range(2 * k):
            book.number(ws, r, 1 + f, g.lin1_weight[h, f], "num_in")
        book.number(ws, r, 1 + 2 * k, g.lin1_bias[h], "num_in")
        rows.append(area(r, 1, r, 2 * k, absolute="rc"))
        biases.append(cell(r, 1 + 2 * k, absolute="rc"))
    lin1_block = area(top + 2, 1, top + 1 + nh, 1 + 2 * k, absolute="rc")
    top += nh + 3
    book.text(ws, top, 0, "lin2: the output unit's weight for each hidden unit, then its bias",
              "group")
    for h in range(nh):
        book.text(ws, top + 1, 1 + h, f"h{h + 1}", "head")
        book.number(ws, top + 2, 1 + h, g.lin2_weight[h], "num_in")
    book.text(ws, top + 1, 1 + nh, "bias", "head")
    book.text(ws, top + 2, 0, "out", "right")
    book.number(ws, top + 2, 1 + nh, g.lin2_bias, "num_in")
    lin2 = area(top + 2, 1, top + 2, nh, absolute="rc")
    lin2_bias = cell(top + 2, 1 + nh, absolute="rc")
    lin2_block = area(top + 2, 1, top + 2, 1 + nh, absolute="rc")
    top += 4
    book.text(ws, top, 0, "sigmoid range: the data's (min - 0.5, max + 0.5)", "group")
    for d, (label, value) in enumerate(zip(("lo", "hi"), g.y_range)):
        book.text(ws, top + 1 + d, 0, label, "right")
        book.number(ws, top + 1 + d, 1, value, "general")
    ws.set_column(2 + k, max(2 * k, nh) + 1, 8)
    return NetWeights(rows, biases, lin2, lin2_bias, cell(top + 1, 1, absolute="rc"),
                      cell(top + 2, 1, absolute="rc"), lin1_block, lin2_block)
