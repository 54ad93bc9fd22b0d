"""Row-sparse training speed on one CPU thread: the dense path, torch's SparseAdam and cfxl's
row-sparse Adam (cfxl.engine.rowsparse), against the memory-bandwidth bound, on synthetic
ml-1m-shaped data (6,040 users x 3,706 movies, 1,000,209 ratings, made here with numpy).

First the optimizers alone: each trains the same EmbeddingDotBias (50 factors) from the same
start in a bare loop (one permutation an epoch, batches sliced from it, autograd's backward, Adam
at a constant lr, no weight decay so the three rules are comparable); ratings/s is the median
epoch's, val RMSE after the same number of epochs. Then fit() itself, end to end, with cfxl's
defaults but bs and epochs (one cycle, weight decay 1e-4, the best epoch kept): the dense path,
torch's SparseAdam in fit's place (it takes no weight decay), --sparse through autograd (the
compiled batch step switched off) and --sparse as it runs (cfxl.engine.compiled). Two rates:
an epoch's (the median; its validation pass included) and the whole fit() call's (setup, the
untrained model's validation and the checks included). Each fit() runs --repeats times, the
kinds taking turns, and the median run is shown: on a shared host one run can be half as fast
as the next.

The bound: bytes a row-sparse step must move per rating (below, `bytes_per_rating`) divided
into the copy bandwidth measured here (a 256 MB tensor copy, read + write counted).

    python benchmarks/sparse_speed.py               # 3 epochs, bs 4096
    python benchmarks/sparse_speed.py --epochs 5 --bs 16384 --repeats 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cfxl.data.ratings import read_ratings
from cfxl.engine.evaluate import evaluate
from cfxl.engine import train as training
from cfxl.engine.rowsparse import RowSparseAdam
from cfxl.engine.train import Config, fit, start

N_USERS, N_MOVIES, N_RATINGS = 6040, 3706, 1_000_209  # MovieLens 1M
K = 50  # factors


def ml1m_shaped(path: Path, seed: int = 0) -> Path:
    """Ratings shaped like ml-1m: every user >= 20 ratings with a long tail of activity, Zipf-like
    movie popularity, a rank-5 taste plus biases plus noise, whole stars 1..5."""
    rng = np.random.default_rng(seed)
    share, scale = rng.pareto(1.2, N_USERS), float(N_RATINGS)
    for _ in range(30):  # users capped at every movie give their share to the rest
        per_user = np.minimum(20 + np.round(share / share.sum() * scale), N_MOVIES).astype(int)
        scale *= (N_RATINGS - 20 * N_USERS) / max(1, per_user.sum() - 20 * N_USERS)
    popularity = 1 / np.arange(1, N_MOVIES + 1) ** 0.85
    popularity = rng.permutation(popularity / popularity.sum())
    users = np.repeat(np.arange(N_USERS), per_user)
    movies = np.concatenate([rng.choice(N_MOVIES, n, replace=False, p=popularity)
                             for n in per_user])
    taste_u, taste_m = rng.normal(0, 0.5, (N_USERS, 5)), rng.normal(0, 0.5, (N_MOVIES, 5))
    bias_u, bias_m = rng.normal(0, 0.4, N_USERS), rng.normal(0, 0.5, N_MOVIES)
    truth = 3.58 + bias_u[users] + bias_m[movies] + (taste_u[users] * taste_m[movies]).sum(1)
    stars = np.clip(np.round(truth + rng.normal(0, 0.9, len(users))), 1, 5)
    with open(path, "w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        np.savetxt(f, np.column_stack([users + 1, movies + 1, stars, np.zeros_like(users)]),
                   fmt="%d", delimiter=",")
    return path


def copy_bandwidth() -> float:
    """Bytes per second of a 256 MB float32 copy on this thread (read + write), best of 5."""
    a, b = torch.ones(64 * 2 ** 20), torch.empty(64 * 2 ** 20)
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.numel() * a.element_size() / best


def bytes_per_rating(u: torch.Tensor, m: torch.Tensor, bs: int) -> float:
    """What one rating costs in memory traffic, float32, at least, on the row-sparse path as
    fit --sparse runs it (one compiled pass: cfxl.engine.dotbias_cpu): each rating reads its
    user's and movie's factors and bias (2 x 51 x 4 B); each touched row's summed gradient is
    written and read back (2 x 51 x 4 B), and its parameter, exp_avg and exp_avg_sq read and
    written once (6 x 51 x 4 B); a batch touches fewer rows than it has ratings (its distinct
    users + movies, counted here over the first epoch's batches). Through autograd a rating
    moves more (activations, one gradient row per lookup), so the bound is the compiled pass's.
    The rows are read at random, so the copy bandwidth flatters what they can reach."""
    row = (K + 1) * 4
    touched = sum(len(torch.unique(u[i:i + bs])) + len(torch.unique(m[i:i + bs]))
                  for i in range(0, len(u), bs))
    return 2 * row + 8 * row * touched / len(u)


def train(kind: str, c: Config, data) -> dict:
    """fit()'s loop with one optimizer: `dense` (torch's fused Adam), `SparseAdam`, `rowsparse`."""
    c = replace(c, sparse=kind != "dense")
    _, (u, m, y), (u_va, m_va, y_va), model = start(c, data)
    params = list(model.parameters())
    opt = {"dense": lambda: torch.optim.Adam(params, lr=c.lr, fused=True),
           "SparseAdam": lambda: torch.optim.SparseAdam(params, lr=c.lr),
           "rowsparse": lambda: RowSparseAdam(params, lr=c.lr)}[kind]()
    gen = torch.Generator().manual_seed(c.seed)
    seconds = []
    for _ in range(c.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(y), generator=gen)  # (n_train,)
        ub, mb, yb = u[perm], m[perm], y[perm]
        for i in range(0, len(y), c.bs):
            loss = F.mse_loss(model(ub[i:i + c.bs], mb[i:i + c.bs]), yb[i:i + c.bs])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - t0)
    return {"ratings_per_s": len(y) / statistics.median(seconds),
            "val_rmse": math.sqrt(evaluate(model, u_va, m_va, y_va)), "u": u, "m": m}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--bs", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--repeats", type=int, default=3, help="fit() runs per kind (the median shown)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run(args, read_ratings(ml1m_shaped(Path(tmp) / "ratings.csv")))


def run(args, data) -> None:
    print(f"{len(data):,} ratings, {data.n_users:,} users x {data.n_movies:,} movies; "
          f"1 thread, bs {args.bs}, {args.epochs} epochs, Adam lr {args.lr:g}")
    c = Config(model="dotbias", n_factors=K, opt="adam", lr=args.lr, bs=args.bs,
               epochs=args.epochs, schedule="constant", weight_decay=0.0, device="cpu")
    train("rowsparse", replace(c, epochs=1), data)  # numba compiles (or loads its cache) here
    fit(Config(device="cpu", sparse=True, epochs=1), data, progress=False)  # and here
    rows = {kind: train(kind, c, data) for kind in ("dense", "SparseAdam", "rowsparse")}
    bandwidth = copy_bandwidth()
    per_rating = bytes_per_rating(rows["dense"]["u"], rows["dense"]["m"], args.bs)
    bound = bandwidth / per_rating
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s; >= {per_rating:,.0f} bytes per rating; "
          f"bound {bound / 1e6:.1f}M ratings/s")
    print(f"{'optimizer loop':<28}{'ratings/s':>12}{'of bound':>10}{'val RMSE':>10}")
    for kind, r in rows.items():
        print(f"{kind:<28}{r['ratings_per_s'] / 1e6:>11.2f}M{r['ratings_per_s'] / bound:>10.0%}"
              f"{r['val_rmse']:>10.4f}")
    print(f"{'fit(), cfxl defaults':<28}{'ratings/s':>12}{'of bound':>10}{'val RMSE':>10}"
          f"{'whole fit':>12}{'vs dense':>10}")
    runs: dict = {name: [] for name in FITS}
    for _ in range(args.repeats):  # the kinds take turns, so a slow spell hits them alike
        for name, fc in FITS.items():
            runs[name].append(fit_rate(name, replace(fc, bs=args.bs, epochs=args.epochs), data))
    fits = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
            for name, rs in runs.items()}
    for name, r in fits.items():
        print(f"{name:<28}{r['epoch'] / 1e6:>11.2f}M{r['epoch'] / bound:>10.0%}"
              f"{r['val_rmse']:>10.4f}{r['whole'] / 1e6:>11.2f}M"
              f"{r['epoch'] / fits['fit (dense)']['epoch']:>9.1f}x")


FITS = {"fit (dense)": Config(device="cpu"),
        "fit, torch SparseAdam": Config(device="cpu", sparse=True),
        "fit --sparse, autograd": Config(device="cpu", sparse=True),
        "fit --sparse": Config(device="cpu", sparse=True)}


def fit_rate(name: str, c: Config, data) -> dict:
    """fit() end to end: ratings/s of its median epoch and of the whole call, the kept val RMSE."""
    saved = training.make_optimizers, training.compiled_step
    if name == "fit, torch SparseAdam":
        training.make_optimizers = lambda c, model: [torch.optim.SparseAdam(model.parameters(),
                                                                            lr=c.lr)]
    if name == "fit --sparse, autograd":
        training.compiled_step = lambda *a: None
    try:
        t0 = time.perf_counter()
        trained = fit(c, data, progress=False)
        seconds = time.perf_counter() - t0
    finally:
        training.make_optimizers, training.compiled_step = saved
    history, n = trained.history, len(data) - int(len(data) * c.val_pct)  # as split() takes it
    return {"epoch": n / statistics.median(h["seconds"] for h in history),
            "whole": n * len(history) / seconds, "val_rmse": trained.kept["val_rmse"]}


if __name__ == "__main__":
    main()
