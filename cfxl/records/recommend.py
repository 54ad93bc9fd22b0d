"""The recommend, similar and me sheets' records from a trained dot-product model (float64).

The sheets show the movies and users the `movies` and `users` sheets show (capped: the most
rated movies, the first users), so every ranking here runs over those alone, with
cfxl.engine.recommend's maths and tie-break: what the sheets' formulas must give.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfxl import presets
from cfxl.data.ratings import Ratings
from cfxl.engine.recommend import Factors, factors, fold_in_factors, rank
from cfxl.engine.train import Trained
from cfxl.records.types.recommend import FoldIn, MoviePick, Ranked, RecommendRecords, UserPick


def movie_order(counts: np.ndarray) -> np.ndarray:
    """Movie indices in the movies sheet's order: most rated first, then by index."""
    return np.lexsort((np.arange(len(counts)), -counts))


def recommend_records(trained: Trained, ratings: Ratings, *, n_movies: int, n_users: int,
                      user_row: int = 0, movie_row: int = 0,
                      min_ratings: int = presets.SIMILAR_MIN_RATINGS,
                      me_ratings: dict[int, float] | None = None,
                      lam: float = presets.FOLD_IN_LAMBDA, margin: float = presets.FOLD_IN_MARGIN,
                      top_n: int = presets.TOP_N) -> RecommendRecords:
    """Records for the sheets over the first n_movies movies (sheet order) and n_users users.

    user_row, movie_row: the chosen user and movie (0-based sheet positions); me_ratings:
    {me position: rating} typed on the me sheet (none: all blank, as written)."""
    f = factors(trained)
    u_idx = trained.users.index(ratings.users.ids)[ratings.user_idx]  # (n,) model indices
    m_idx = trained.movies.index(ratings.movies.ids)[ratings.movie_idx]  # (n,)
    all_counts = np.bincount(m_idx, minlength=len(trained.movies)).astype(np.int64)
    shown = movie_order(all_counts)[:n_movies]  # (n_movies,) model indices, sheet order
    position = np.full(len(trained.movies), -1, dtype=np.int64)
    position[shown] = np.arange(len(shown))
    sub = Factors(f.u_weight[:n_users], f.i_weight[shown], None if f.u_bias is None else f.u_bias[:n_users],
                  None if f.i_bias is None else f.i_bias[shown], f.y_range)
    counts = all_counts[shown]

    keep = (u_idx < n_users) & (position[m_idx] >= 0)
    rated = pd.DataFrame({"u": u_idx[keep], "pos": position[m_idx[keep]],
                          "rating": ratings.rating[keep].astype(np.float64)})
    rated = rated.drop_duplicates(["u", "pos"], keep="last").sort_values(["u", "pos"], kind="stable")
    table = pd.DataFrame({"userId": trained.users.ids[rated["u"].to_numpy()],
                          "movieId": trained.movies.ids[shown[rated["pos"].to_numpy()]],
                          "rating": rated["rating"].to_numpy()})
    mine = rated[rated["u"] == user_row]
    return RecommendRecords(
        has_bias=f.has_bias, y_range=f.y_range, n_factors=f.i_weight.shape[1], n_users=n_users,
        movie_ids=trained.movies.ids[shown], counts=counts, rated=table.reset_index(drop=True),
        user=user_pick(sub, counts, trained.users.ids[user_row], user_row,
                       dict(zip(mine["pos"].tolist(), mine["rating"].tolist())), top_n),
        movie=movie_pick(sub, counts, trained.movies.ids[shown[movie_row]], movie_row, min_ratings,
                         top_n),
        me=me_fold_in(sub, counts, me_ratings or {}, lam=lam, margin=margin, top_n=top_n),
        top_n=top_n)


def _ranked(scores: np.ndarray, counts: np.ndarray, allowed: np.ndarray, n: int) -> Ranked:
    return Ranked(rank(scores, counts, allowed, n), np.where(allowed, scores, np.nan))


def user_pick(f: Factors, counts: np.ndarray, user_id, row: int, rated: dict[int, float],
              top_n: int) -> UserPick:
    """A known user's predictions over the shown movies, best unrated, and own best rated."""
    bias = float(f.u_bias[row]) if f.has_bias else 0.0
    predicted = f.scores(f.u_weight[row], bias)  # (n_movies,)
    rating = np.full(len(counts), np.nan)
    rating[list(rated)] = list(rated.values())
    top = _ranked(predicted, counts, np.isnan(rating), top_n)
    top = Ranked(top.positions, predicted)  # every prediction is a formula, rated or not
    own = _ranked(np.nan_to_num(rating), counts, ~np.isnan(rating), top_n)
    return UserPick(user_id, row, f.u_weight[row], bias, rating, top, own)


def movie_pick(f: Factors, counts: np.ndarray, movie_id, row: int, min_ratings: int, top_n: int
               ) -> MoviePick:
    """A movie's cosine similarity with every shown movie, and its most similar popular ones."""
    allowed = counts >= min_ratings
    allowed[row] = False
    cos = f.cosine(row)  # (n_movies,)
    top = Ranked(rank(cos, counts, allowed, top_n), cos)
    return MoviePick(movie_id, row, f.i_weight[row], min_ratings, np.sqrt(np.sum(f.i_weight ** 2, axis=1)), top)


def me_fold_in(f: Factors, counts: np.ndarray, typed: dict[int, float], *, lam: float,
               margin: float, top_n: int, n: int = presets.ME_MOVIES) -> FoldIn:
    """The me sheet: ratings typed for some of the first n movies, the fold-in's normal
    equations and solution (fold_in_factors), and the best movies not rated there."""
    n = min(n, len(counts))
    rating = np.full(n, np.nan)
    rating[list(typed)] = list(typed.values())
    given = np.flatnonzero(~np.isnan(rating))
    vector, bias = fold_in_factors(f, given, rating[given], lam=lam, margin=margin)
    theta = np.append(vector, bias) if f.has_bias else vector  # (p,)

    x = np.where(np.isnan(rating)[:, None], 0.0, f.i_weight[:n])  # (n, k): blank rows zero
    target = np.where(np.isnan(rating), 0.0, rating)  # (n,)
    if f.has_bias:
        lo, hi = f.y_range
        q = np.clip(target, lo + margin, hi - margin)
        target = np.where(np.isnan(rating), 0.0, np.log((q - lo) / (hi - q)) - f.i_bias[:n])
        x = np.hstack([x, (~np.isnan(rating)).astype(np.float64)[:, None]])  # (n, k + 1)
    eye = np.eye(x.shape[1])
    gram, gram_size = x.T @ x + lam * eye, np.abs(x).T @ np.abs(x) + lam * eye
    xty, xty_size = x.T @ target, np.abs(x).T @ np.abs(target)

    predicted = f.scores(vector, bias)  # (n_movies,)
    allowed = np.ones(len(counts), dtype=bool)
    allowed[given] = False
    top = Ranked(rank(predicted, counts, allowed, top_n), predicted)
    return FoldIn(n, rating, f.i_weight[:n], lam, margin, gram, gram_size, xty, xty_size, theta, target, top)
