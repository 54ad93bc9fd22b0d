"""Make cfxl's synthetic, MovieLens-shaped sample data set: `python -m cfxl.data.sample.make`.

MovieLens may not be redistributed, so cfxl ships ratings drawn from a model whose truth is known,
so that tests can check a trained model recovers it (see README.md). Everything comes from one
numpy generator seeded with SEED: a rerun writes the same bytes. The steps, a function each:

1. `make_movies`: a catalogue. Each film gets 1-4 MovieLens genres (companions drawn by taste
   affinity, so Horror goes with Thriller and Children with Animation), a year, a title from word
   lists that fit its main genre (titles.py), a latent quality (genre offset + noise) and a value
   on each taste axis (the mean loading of its genres + noise, vintage also from its year). About
   one film in 25 is a sequel of an earlier hit, worse than the original: the popular duds at the
   bottom of the lesson's bias ranking. Popularity is Zipf-like over a random ranking that favours
   better films and the 1990s, and ids grow with the date a film was added, with gaps.
2. `make_users`: ids 1..n_users, a lognormal number of ratings each (at least 20, the MovieLens
   rule), a rating period, a half-star habit, a bias and a taste on each axis.
3. `rate`: each user picks films by popularity (weighted sampling without replacement among
   those released by the end of their period) and rates them with
       rating = GLOBAL_MEAN + user bias + movie bias + sum_k user taste_k * movie axis_k + noise,
   clipped to [0.5, 5] and rounded to whole stars, or to half stars for users who use them once
   MovieLens offered them (2003): so whole stars are the commoner. The noise is skewed left (now
   and then a film disappoints), which helps put the mode at 4 above the mean of ~3.5.
4. `write`: ratings.csv and movies.csv (rated films only), and the planted truth, planted.csv and
   planted_users.csv: each film's and user's bias and axis values, exactly as used above.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cfxl.data.sample import AXES, SAMPLE_DIR
from cfxl.data.sample.titles import make_title

SEED = 5  # lesson 5
N_USERS, N_RATINGS = 610, 100_000  # the size of ml-latest-small
# Calibrated to MovieLens (README.md compares the statistics): most of a rating's variance is
# noise and the user's and movie's biases, as in real data, so a recipe that memorises its
# training ratings (cfxl 0.1's defaults) scores about as badly here as on ml-100k.
N_MOVIES = 15_000  # the catalogue; ~10,100 of its films get rated, and only those are written
GLOBAL_MEAN = 3.35  # popular films are better and the clip at 5 bites: the mean rating is ~3.5
USER_BIAS_SD = 0.40  # with the noise, user means spread 0.40 (ml-100k: 0.445)
MOVIE_BIAS_SCALE = 0.52  # movie bias = scale * standardised quality; means of movies with
                         # >= 20 ratings spread 0.47 (ml-100k: 0.533)
# taste strengths, distinct so that PCA of learned movie factors finds each axis as its own
# component; about the weakest that still lets it find vintage among the 1,000 most rated
# movies under MovieLens' noise (correlation 0.65 for the demo's model, 0.79 for the tests';
# README.md); real tastes are weaker still: they add less over the biases
TASTE_SD = dict(zip(AXES, (0.42, 0.36, 0.33)))
# gaussian noise minus a centred exponential of mean DISAPPOINT (now and then a film
# disappoints: the skew keeps 4 stars commoner than 5), then rounding to (half) stars: about as
# much as MovieLens' best models leave unexplained (RMSE ~0.9)
NOISE_SD, DISAPPOINT = 0.72, 0.45
ZIPF_OFFSET, ZIPF_POWER = 80, 1.6  # popularity ~ (rank + offset)^-power: a flat head and a long
                                   # tail, a third of the rated films rated once
USER_LOG_SD = 1.4  # lognormal activity: median ~63 ratings, a few users with ~2,500
USER_MIN, USER_MAX = 20, 2700  # MovieLens keeps users with 20 ratings or more; its most active
                               # in ml-latest-small has 2,698
HIT_APPETITE = (0.7, 1.2)  # popularity exponent per user: some seek out obscure films
UNSEEN = 0.04  # films each user never came across, hits too: blanks in the top crosstab
POP_YEARS = 25  # how fast popularity falls with distance from 1995
POP_QUALITY = 0.3  # how much more better films are watched
SEQUEL_DROP = 1.6  # in quality sds: sequels of hits are the popular duds
GENRE_WIDTH = 0.3  # how alike in taste a movie's genres are (smaller: more alike)
HALF_STAR_USERS = 0.9  # the share of users who use half stars once they can
HALF_STARS_FROM = 1045526400  # 2003-02-18: MovieLens starts accepting half stars
FIRST_RATING, LAST_RATING = 828_000_000, 1_537_800_000  # 1996-03-28 .. 2018-09-24

# genre: (movies with it in ml-latest-small, quality offset, loadings on spectacle, dark, vintage)
GENRES = {
    "Action": (1828, -0.2, 1.0, 0.2, -0.2), "Adventure": (1263, 0.0, 1.0, -0.3, 0.0),
    "Animation": (611, 0.3, 0.3, -1.0, -0.3), "Children": (664, -0.5, 0.2, -1.0, 0.0),
    "Comedy": (3756, -0.3, -0.1, -0.6, 0.0), "Crime": (1199, 0.4, 0.0, 0.8, 0.1),
    "Documentary": (440, 0.6, -1.0, 0.0, 0.2), "Drama": (4361, 0.5, -0.8, 0.2, 0.2),
    "Fantasy": (779, -0.1, 0.8, -0.3, -0.2), "Film-Noir": (87, 0.8, -0.4, 0.8, 1.0),
    "Horror": (978, -0.8, 0.2, 1.0, -0.3), "Musical": (334, 0.1, -0.3, -0.8, 0.8),
    "Mystery": (573, 0.3, -0.2, 0.6, 0.3), "Romance": (1596, 0.0, -0.8, -0.4, 0.2),
    "Sci-Fi": (980, -0.1, 1.0, 0.2, -0.5), "Thriller": (1894, 0.0, 0.3, 0.8, -0.1),
    "War": (382, 0.6, 0.3, 0.3, 0.8), "Western": (167, 0.3, 0.2, 0.2, 1.0),
}


def decorrelate(x, weight):
    """Columns of `x` made uncorrelated, with weighted mean 0 and sd 1 (Gram-Schmidt, first
    column first, each keeping its sign). Planted axes that are not correlated by chance are
    what lets PCA of learned factors find each one as a component of its own."""
    sw = np.sqrt(weight / weight.sum())[:, None]
    q, r = np.linalg.qr(sw * (x - np.average(x, axis=0, weights=weight)))
    return q * np.sign(np.diag(r)) / sw


def make_movies(rng, n_movies: int = N_MOVIES) -> dict:
    """The catalogue: ids, titles, genres, years, planted bias and axes, popularity weights."""
    names = list(GENRES)
    table = np.array(list(GENRES.values()))  # (n_genres, 5)
    share, q_off, load = table[:, 0] / table[:, 0].sum(), table[:, 1], table[:, 2:]
    # a genre's companions: common, and close in taste (Horror with Thriller, not with Children)
    affinity = np.exp(-((load[:, None] - load[None]) ** 2).sum(-1) / GENRE_WIDTH)
    genres, titles, years, quality, pop, used = [], [], [], [], [], set()
    for _ in range(n_movies):
        g = [rng.choice(len(names), p=share)]
        for _ in range(0 if names[g[0]] == "Documentary" else rng.choice(4, p=[.3, .37, .23, .1])):
            w = share * affinity[g[0]]
            w[g + [names.index("Documentary")]] = 0
            g.append(rng.choice(len(names), p=w / w.sum()))
        noir = names.index("Film-Noir") in g
        year = 1940 + rng.integers(20) if noir else max(1915, 2018 - int(rng.gamma(1.5, 12)))
        title = make_title(rng, names[g[0]])
        for _ in range(30):  # few exact repeats: real catalogues have remakes, not dozens
            if title not in used:
                break
            title = make_title(rng, names[g[0]])
        used.add(title)
        genres.append(sorted(g))
        titles.append(title)
        years.append(year)
        quality.append(q_off[g].mean() + rng.normal())
        pop.append(rng.normal() - 0.5 * ((year - 1995) / POP_YEARS) ** 2)  # the 1990s: rated most
    years, quality, pop = np.array(years), np.array(quality), np.array(pop)
    # sequels: a later, worse, less popular film with its original's genres and title
    hit = (pop > 0.5) & (years <= 2012) & (quality > -0.5)
    parents = rng.choice(np.flatnonzero(hit), size=n_movies // 25, replace=False)
    slots = rng.choice(np.flatnonzero(~hit), size=parents.size, replace=False)
    for parent, s in zip(parents, slots):
        genres[s] = genres[parent]
        sequel = str(rng.choice([" 2", " 3", " II", ": The Return", " Part II"]))
        titles[s] = titles[parent] + sequel
        years[s] = years[parent] + rng.integers(2, 6)
        quality[s] = quality[parent] - SEQUEL_DROP + 0.5 * rng.normal()
        pop[s] = pop[parent] - 0.3 + 0.3 * rng.normal()
    quality = (quality - quality.mean()) / quality.std()
    pop = pop + POP_QUALITY * quality
    # the one title a spreadsheet would read as a formula, popular enough for the 15x15 crosstab
    eq = next(int(i) for i in np.argsort(-pop)[4:] if i not in parents)
    titles[eq], years[eq] = "=Equals", 1995
    genres[eq] = [names.index(n) for n in ("Drama", "Romance", "Sci-Fi")]
    seen = set()
    for i in range(n_movies):  # title and year identify a movie
        while f"{titles[i]} ({years[i]})" in seen:
            years[i] += 1
        seen.add(f"{titles[i]} ({years[i]})")
    axes = np.stack([np.mean(load[g], 0) for g in genres]) + 0.3 * rng.normal(size=(n_movies, 3))
    axes[:, 2] += np.clip((1990 - years) / 30, -1, 1)  # vintage: old films too, not only genres
    rank = np.empty(n_movies)
    rank[np.argsort(-pop)] = np.arange(1, n_movies + 1)
    weight = (rank + ZIPF_OFFSET) ** -ZIPF_POWER
    # uncorrelated and of sd 1 where the ratings fall, weighted by popularity: over the whole
    # catalogue, vintage would spread less among the much-rated films of around 1995
    axes = decorrelate(axes, weight)
    # ids follow the year a film was added: nearly contiguous at first, then with wide gaps
    added = np.maximum(years, 1995 + 5 * rng.random(n_movies)) + rng.random(n_movies)
    order = np.argsort(added, kind="stable")
    gaps = rng.geometric(1 / (1 + 60 * np.linspace(0, 1, n_movies) ** 4))
    ids = np.empty(n_movies, int)
    ids[order] = np.cumsum(gaps)
    return dict(id=ids, title=[f"{t} ({y})" for t, y in zip(titles, years)],
                genres=["|".join(names[i] for i in g) for g in genres], year=years,
                bias=MOVIE_BIAS_SCALE * quality, axes=axes,
                weight=weight)


def make_users(rng, n_users: int = N_USERS, n_ratings: int = N_RATINGS) -> dict:
    """Users 1..n_users: activity, rating period, half-star habit, planted bias and tastes."""
    n = np.clip(np.round(rng.lognormal(4.2, USER_LOG_SD, n_users)), USER_MIN, USER_MAX)
    for _ in range(5):  # rescale to n_ratings in all, keeping within [USER_MIN, USER_MAX]
        extra = (n - USER_MIN) * (n_ratings - USER_MIN * n_users) / (n - USER_MIN).sum()
        n = np.clip(USER_MIN + extra, USER_MIN, USER_MAX)
    n = np.round(n)
    end = FIRST_RATING + (LAST_RATING - FIRST_RATING) * rng.random(n_users) ** 0.7
    span = np.minimum(end - FIRST_RATING, rng.exponential(86400 * 3 * n))
    # bias and tastes uncorrelated, weighted by activity since heavy users make most ratings
    z = decorrelate(rng.normal(size=(n_users, 4)), n)
    return dict(id=np.arange(1, n_users + 1), n=n.astype(int), start=end - span, end=end,
                taste_for_hits=rng.uniform(*HIT_APPETITE, n_users),
                halves=rng.random(n_users) < HALF_STAR_USERS, p_half=rng.beta(6, 1, n_users),
                bias=USER_BIAS_SD * z[:, 0], taste=z[:, 1:] * np.array(list(TASTE_SD.values())))


def rate(rng, movies: dict, users: dict) -> np.ndarray:
    """(n_ratings, 4) rows userId, movieId, rating, timestamp, sorted like ml-latest-small."""
    released = (movies["year"] - 1970) * 31_556_952  # unix seconds at the start of the year
    rows = []
    for u in range(len(users["id"])):
        taste = movies["axes"] @ users["taste"][u]  # (n_movies,)
        # weighted sampling without replacement: the n largest of log(weight) + Gumbel noise
        key = users["taste_for_hits"][u] * np.log(movies["weight"]) + rng.gumbel(size=len(movies["id"]))
        key[(released > users["end"][u]) | (rng.random(len(movies["id"])) < UNSEEN)] = -np.inf
        n = min(users["n"][u], int(np.isfinite(key).sum()))
        m = np.sort(np.argpartition(-key, n)[:n])
        mean = GLOBAL_MEAN + users["bias"][u] + movies["bias"][m] + taste[m]
        noise = NOISE_SD * rng.normal(size=m.size) - DISAPPOINT * (rng.exponential(size=m.size) - 1)
        lo = np.clip(released[m], users["start"][u], users["end"][u])
        ts = np.round(lo + (users["end"][u] - lo) * rng.random(m.size))
        half = (users["halves"][u] & (ts >= HALF_STARS_FROM)
                & (rng.random(m.size) < users["p_half"][u]))
        step = np.where(half, 2, 1)
        r = np.clip(np.round((mean + noise) * step) / step, np.where(half, 0.5, 1), 5)
        rows.append(np.column_stack([np.full(m.size, u + 1), movies["id"][m], r, ts]))
    out = np.concatenate(rows)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def write(movies: dict, users: dict, ratings: np.ndarray, out: Path = SAMPLE_DIR) -> None:
    """The four CSV files, with '\\n' line ends and 3 decimals for the planted values."""
    with open(out / "ratings.csv", "w", newline="") as f:
        f.write("userId,movieId,rating,timestamp\n")
        f.writelines(f"{u:.0f},{m:.0f},{r:.1f},{t:.0f}\n" for u, m, r, t in ratings)
    order = np.argsort(movies["id"])
    order = order[np.isin(movies["id"][order], ratings[:, 1])]  # unrated films are left out
    with open(out / "movies.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["movieId", "title", "genres"])
        w.writerows([movies["id"][i], movies["title"][i], movies["genres"][i]] for i in order)
    for name, d, key in (("planted.csv", movies, "axes"), ("planted_users.csv", users, "taste")):
        head = "movieId" if d is movies else "userId"
        rows = np.column_stack([d["id"], d["bias"], d[key]])[order if d is movies else slice(None)]
        with open(out / name, "w", newline="") as f:
            f.write(",".join([head, "bias", *AXES]) + "\n")
            f.writelines(f"{int(r[0])}," + ",".join(f"{x:.3f}" for x in r[1:]) + "\n" for r in rows)


def main() -> None:
    """Make the data set and write it next to this file."""
    rng = np.random.default_rng(SEED)
    movies, users = make_movies(rng), make_users(rng)
    ratings = rate(rng, movies, users)
    write(movies, users, ratings)
    print(f"{len(ratings):,} ratings by {N_USERS} users of {np.unique(ratings[:, 1]).size:,} "
          f"movies written to {SAMPLE_DIR}")


if __name__ == "__main__":
    main()
