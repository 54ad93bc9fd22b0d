"""Training speed on a CUDA GPU: ratings/s of fit()'s dense path and of --sparse (the row-sparse
Adam's torch ops on the GPU) at large batches, fp32, val RMSE beside each, against the bound the
device's copy bandwidth sets. One short run (under 5 minutes on an H200-class GPU).

The data is made here, in memory, shaped like MovieLens 25M (162,541 users x 59,047 movies, 25M
ratings; --shape ml-1m for 6,040 x 3,706 and 1M): power-law activity and popularity, user and
movie biases plus a rank-5 taste plus noise, whole stars 1..5; pairs may repeat (a speed
benchmark, not a data set). Each run is cfxl's defaults (EmbeddingDotBias, 50 factors, Adam, one
cycle up to lr 0.01, wd 1e-4, the best epoch kept) at the batch size given; ratings/s is the
median epoch's (its validation pass included; the GPU is synchronised at each epoch's end).

    python benchmarks/gpu_speed.py                      # bs 16k, 64k, 256k; 2 epochs
    python benchmarks/gpu_speed.py --shape ml-1m --bs 65536 --epochs 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np
import torch

from cfxl.data.ratings import IdMap, Ratings
from cfxl.engine.train import Config, fit

SHAPES = {"ml-25m": (162_541, 59_047, 25_000_095), "ml-1m": (6_040, 3_706, 1_000_209)}
K = 50  # factors


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=SHAPES, default="ml-25m")
    ap.add_argument("--bs", type=batch_sizes, default=[16_384, 65_536, 262_144],
                    help="batch sizes, comma-separated [default: 16384,65536,262144]")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--device", default="cuda", help="a CUDA device [default: cuda]")
    args = ap.parse_args(argv)
    if args.epochs < 1:
        ap.error(f"--epochs must be at least 1, not {args.epochs}")
    if not args.device.startswith("cuda"):
        ap.error(f"--device must be a CUDA device (cuda, cuda:N), not {args.device!r}")
    return args


def batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not whole numbers: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1: {text!r}")
    return sizes


def synthetic(shape: str, seed: int = 0) -> Ratings:
    """A MovieLens-shaped Ratings made in memory (see the module's docstring)."""
    n_users, n_movies, n = SHAPES[shape]
    rng = np.random.default_rng(seed)
    activity = rng.pareto(1.2, n_users) + 1
    popularity = 1 / np.arange(1, n_movies + 1) ** 0.85
    users = rng.choice(n_users, n, p=activity / activity.sum())
    movies = rng.choice(n_movies, n, p=rng.permutation(popularity / popularity.sum()))
    taste_u, taste_m = rng.normal(0, 0.5, (n_users, 5)), rng.normal(0, 0.5, (n_movies, 5))
    truth = 3.53 + rng.normal(0, 0.4, n_users)[users] + rng.normal(0, 0.5, n_movies)[movies] \
        + np.einsum("ij,ij->i", taste_u[users], taste_m[movies])
    stars = np.clip(np.rint(truth + rng.normal(0, 0.9, n)), 1, 5).astype(np.float32)
    return Ratings(source=None, users=IdMap(np.arange(1, n_users + 1), "user"),
                   movies=IdMap(np.arange(1, n_movies + 1), "movie"),
                   user_idx=users.astype(np.int32), movie_idx=movies.astype(np.int32),
                   rating=stars)


def copy_bandwidth(device: torch.device) -> float:
    """Bytes per second of a 1 GiB float32 copy on the device (read + write), best of 5."""
    a = torch.ones(2 ** 28, device=device)
    b = torch.empty_like(a)
    best = math.inf
    for _ in range(5):
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        b.copy_(a)
        torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.numel() * a.element_size() / best


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not torch.cuda.is_available():
        print(f"gpu_speed.py: torch {torch.__version__} sees no CUDA device: this benchmark "
              "runs on a GPU only (benchmarks/sparse_speed.py measures the CPU)", file=sys.stderr)
        return 1
    device = torch.device(args.device)
    if (device.index or 0) >= torch.cuda.device_count():
        print(f"gpu_speed.py: {args.device} asked for, but torch sees "
              f"{torch.cuda.device_count()} CUDA device(s)", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    data = synthetic(args.shape)
    n_train = len(data.rating) - int(len(data.rating) * 0.2)
    print(f"{args.shape}-shaped: {len(data.rating):,} ratings, {data.n_users:,} users x "
          f"{data.n_movies:,} movies (made in {time.perf_counter() - t0:.1f} s); "
          f"{torch.cuda.get_device_name(device)}, fp32, {args.epochs} epochs, cfxl's defaults")
    bandwidth = copy_bandwidth(device)
    # per rating at least: its two rows read (forward) and their gradient rows written and read
    # (backward, step): 2 x 3 x 51 x 4 B; the optimizer's pass over the touched rows comes on top
    bound = bandwidth / (2 * 3 * (K + 1) * 4)
    print(f"copy bandwidth {bandwidth / 1e12:.2f} TB/s; bound {bound / 1e9:.2f}B ratings/s")
    print(f"{'path':<10}{'bs':>9}{'ratings/s':>13}{'of bound':>10}{'val RMSE':>10}{'fit s':>8}")
    for bs in args.bs:
        for sparse in (False, True):
            config = Config(bs=bs, epochs=args.epochs, device=args.device, sparse=sparse)
            t0 = time.perf_counter()
            trained = fit(config, data, progress=False)
            seconds = time.perf_counter() - t0
            rate = n_train / statistics.median(h["seconds"] for h in trained.history)
            print(f"{'--sparse' if sparse else 'dense':<10}{bs:>9,}{rate / 1e6:>12.1f}M"
                  f"{rate / bound:>10.1%}{trained.kept['val_rmse']:>10.4f}{seconds:>8.1f}",
                  flush=True)
            del trained
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
