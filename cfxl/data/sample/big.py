"""An ml-25m-shaped ratings.csv drawn by the sample's model, in bounded memory: `python -m cfxl.data.sample.big`.

    python -m cfxl.data.sample.big --out /tmp/big     # 162,541 users, 59,047 movies, 25,000,095 ratings

The catalogue and the users are the embedded sample's (cfxl.data.sample.make's make_movies and
make_users, called at this size); the rating step is make.rate's model, vectorised over chunks
of users, because make.rate loops per user over the whole catalogue (162k x 59k). Each user
draws movies by popularity (weight ** the user's taste_for_hits) with replacement, and the first
n distinct draws are kept: successive draws without replacement, which is what make.rate's
Gumbel top-n is. What is simplified: taste_for_hits is rounded to one of LEVELS exponents (one
CDF each), and a movie released after the user's last rating is redrawn, not excluded up front;
make.rate's 4% of films a user never came across are left out (they only make blanks in the
small sample's crosstab). The ratings go out a chunk at a time, sorted by user then movie as
MovieLens sorts them, so memory stays bounded by a chunk and the catalogue.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cfxl.data.sample import make
from cfxl.errors import CfxlError
from cfxl.io import atomic_write, ensure_writable

ML25M = dict(users=162_541, movies=59_047, ratings=25_000_095)  # ml-25m's counts (its README)
SEED = 25
LEVELS = 16  # distinct popularity exponents: one CDF each over the catalogue (16 x 59k floats)
CHUNK_RATINGS = 1 << 20  # ratings drawn and written per chunk of users: bounded memory
SLACK = 1.5  # draws per wanted rating in the first round (duplicates of hits are common)
ROUNDS = 4  # rounds of draws before the few users still short are finished by Gumbel top-n


def exact_counts(rng, n: np.ndarray, total: int, most: np.ndarray) -> np.ndarray:
    """Ratings per user nudged by one at random users until they sum to total exactly, each
    staying within [20, most] (make.make_users rounds, so the sum is near total; most: 2,000,
    or fewer where fewer movies were out by the user's last rating)."""
    n = np.minimum(n, most)
    while (gap := total - int(n.sum())) != 0:
        room = np.flatnonzero(n < most) if gap > 0 else np.flatnonzero(n > 20)
        if not room.size:
            raise ValueError(f"{total:,} ratings cannot be spread over {len(n):,} users at 20 "
                             f"to {int(most.max()):,} each")
        pick = rng.choice(room, size=min(abs(gap), room.size), replace=False)
        n[pick] += np.sign(gap)
    return n


def draw_movies(rng, cdfs: np.ndarray, level: np.ndarray, want: np.ndarray, end: np.ndarray,
                released: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For users of one chunk (local 0..k-1): want distinct movie indices each (at most the
    movies released by their end), drawn by popularity without replacement, sorted by user."""
    k, n_movies = len(want), cdfs.shape[1]
    have_u, have_m = np.empty(0, np.int64), np.empty(0, np.int64)
    got = np.zeros(k, np.int64)
    for _ in range(ROUNDS):
        short = want - got  # (k,)
        if not short.any():
            break
        draws = np.ceil(short * SLACK).astype(np.int64) + 10 * (short > 0)  # (k,)
        user = np.repeat(np.arange(k), draws)  # (d,)
        movie = np.minimum(_inverse_cdf(rng, cdfs, level, draws), n_movies - 1)  # (d,)
        ok = released[movie] <= end[user]
        user, movie = user[ok], movie[ok]
        # first occurrence of each (user, movie), those already held dropped, in draw order
        key = np.concatenate([have_u * n_movies + have_m, user * n_movies + movie])
        _, first = np.unique(key, return_index=True)
        first = np.sort(first[first >= len(have_u)]) - len(have_u)
        user, movie = user[first], movie[first]
        rank = np.arange(len(user)) - np.searchsorted(user, user)  # position among the user's new ones
        keep = rank < short[user]
        have_u = np.concatenate([have_u, user[keep]])
        have_m = np.concatenate([have_m, movie[keep]])
        got = np.bincount(have_u, minlength=k)
    # heavy users of hits keep redrawing the same head: their rest by make.rate's Gumbel top-n
    # over the movies they do not hold, which continues the same sampling without replacement
    order = np.argsort(have_u, kind="stable")
    have_u, have_m = have_u[order], have_m[order]
    starts = np.searchsorted(have_u, np.arange(k + 1))  # (k+1,) each user's run in have_*
    log_p = np.log(np.diff(cdfs, prepend=0.0, axis=1))  # (LEVELS, n_movies)
    rest_u, rest_m = [have_u], [have_m]
    for u in np.flatnonzero(want > got):
        key = log_p[level[u]] + rng.gumbel(size=n_movies)  # (n_movies,)
        key[released > end[u]] = -np.inf
        key[have_m[starts[u]:starts[u + 1]]] = -np.inf
        n = int(want[u] - got[u])
        rest_m.append(np.argsort(-key)[:n] if n >= n_movies else np.argpartition(-key, n)[:n])
        rest_u.append(np.full(n, u))
    have_u, have_m = np.concatenate(rest_u), np.concatenate(rest_m)
    order = np.lexsort((have_m, have_u))
    return have_u[order], have_m[order]


def _inverse_cdf(rng, cdfs: np.ndarray, level: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """draws[i] movie indices for user i from their level's popularity CDF, concatenated."""
    out = np.empty(int(draws.sum()), np.int64)
    lv_of = np.repeat(level, draws)  # (d,)
    u = rng.random(len(out))
    for lv in np.unique(level):
        at = lv_of == lv
        out[at] = np.searchsorted(cdfs[lv], u[at], side="right")
    return out


def rate_chunk(rng, movies: dict, users: dict, lo: int, hi: int, cdfs, level, released):
    """Ratings of users lo..hi-1 as a DataFrame userId, movieId, rating, timestamp (make.rate's
    rule: mean from the planted biases and tastes, skewed noise, whole or half stars), and the
    movie indices rated."""
    u, m = draw_movies(rng, cdfs, level[lo:hi], users["n"][lo:hi], users["end"][lo:hi], released)
    g = u + lo  # (c,) global user index
    m_id = movies["id"][m]
    order = np.lexsort((m_id, u))  # by user, then movie id
    g, m, m_id = g[order], m[order], m_id[order]
    taste = np.einsum("ij,ij->i", movies["axes"][m], users["taste"][g])  # (c,)
    mean = make.GLOBAL_MEAN + users["bias"][g] + movies["bias"][m] + taste
    noise = make.NOISE_SD * rng.normal(size=m.size) - make.DISAPPOINT * (rng.exponential(size=m.size) - 1)
    start, end = users["start"][g], users["end"][g]
    first = np.clip(released[m], start, end)
    ts = np.round(first + (end - first) * rng.random(m.size))
    half = users["halves"][g] & (ts >= make.HALF_STARS_FROM) & (rng.random(m.size) < users["p_half"][g])
    step = np.where(half, 2, 1)
    rating = np.clip(np.round((mean + noise) * step) / step, np.where(half, 0.5, 1), 5)
    return pd.DataFrame({"userId": users["id"][g], "movieId": m_id, "rating": rating,
                         "timestamp": ts.astype(np.int64)}), m


def make_big(out: Path, *, n_users: int = ML25M["users"], n_movies: int = ML25M["movies"],
             n_ratings: int = ML25M["ratings"], seed: int = SEED, log=None,
             force: bool = False) -> dict:
    """Write out/ratings.csv (userId,movieId,rating,timestamp, ml-latest's layout) and
    out/movies.csv (the rated movies), each atomically and neither over an existing file unless
    force; returns the counts written."""
    out.mkdir(parents=True, exist_ok=True)
    targets = [ensure_writable(out / name, force=force) for name in ("ratings.csv", "movies.csv")]
    rng = np.random.default_rng(seed)
    movies = make.make_movies(rng, n_movies)
    users = make.make_users(rng, n_users, n_ratings)
    released = (movies["year"] - 1970) * 31_556_952  # unix seconds at the start of the year
    out_by_end = np.searchsorted(np.sort(released), users["end"], side="right")  # (n_users,)
    users["n"] = exact_counts(rng, users["n"], n_ratings, np.minimum(2000, out_by_end))
    # one popularity CDF per exponent level; each user takes the level nearest their taste_for_hits
    exponents = np.linspace(*make.HIT_APPETITE, LEVELS)
    level = np.abs(users["taste_for_hits"][:, None] - exponents[None]).argmin(1)  # (n_users,)
    w = np.exp(exponents[:, None] * np.log(movies["weight"])[None])  # (LEVELS, n_movies)
    cdfs = np.cumsum(w, axis=1)
    cdfs /= cdfs[:, -1:]
    rated = np.zeros(n_movies, bool)
    bounds = np.searchsorted(np.cumsum(users["n"]), np.arange(CHUNK_RATINGS, users["n"].sum(), CHUNK_RATINGS))
    edges = np.unique(np.r_[0, bounds + 1, n_users].clip(0, n_users))
    written, t = 0, time.perf_counter()

    def write_ratings(tmp: Path) -> None:
        nonlocal written
        with open(tmp, "w", newline="") as f:
            f.write("userId,movieId,rating,timestamp\n")
            for lo, hi in zip(edges[:-1], edges[1:]):
                chunk, m = rate_chunk(rng, movies, users, int(lo), int(hi), cdfs, level, released)
                rated[m] = True
                chunk.to_csv(f, header=False, index=False, float_format="%.1f",
                             lineterminator="\n")
                written += len(chunk)
                if log:
                    log(f"{written:,} ratings, users up to {hi:,} "
                        f"({time.perf_counter() - t:.0f} s)")

    def write_movies(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["movieId", "title", "genres"])
            w.writerows([movies["id"][i], movies["title"][i], movies["genres"][i]]
                        for i in np.argsort(movies["id"]) if rated[i])

    atomic_write(targets[0], write_ratings, force=force)
    atomic_write(targets[1], write_movies, force=force)
    return dict(users=n_users, movies=int(rated.sum()), ratings=written)


def main(argv=None) -> None:
    """Parse the sizes and write the files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for ratings.csv and movies.csv")
    parser.add_argument("--users", type=int, default=ML25M["users"])
    parser.add_argument("--movies", type=int, default=ML25M["movies"], help="the catalogue")
    parser.add_argument("--ratings", type=int, default=ML25M["ratings"])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("--force", action="store_true", help="replace ratings.csv / movies.csv there")
    a = parser.parse_args(argv)
    t = time.perf_counter()
    try:
        counts = make_big(a.out, n_users=a.users, n_movies=a.movies, n_ratings=a.ratings,
                          seed=a.seed, log=None if a.quiet else print, force=a.force)
    except CfxlError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{counts['ratings']:,} ratings by {counts['users']:,} users of {counts['movies']:,} movies "
          f"written to {a.out} in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
