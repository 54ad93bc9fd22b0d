"""Time read_ratings on a synthetic ml-25m-shaped ratings.csv, with its peak memory, against plain pandas.

    python benchmarks/load_speed.py              # 25,000,000 rows (about 700 MB on disk, in a temp dir)
    python benchmarks/load_speed.py --rows 1000000

The file is written and each load runs in a child process of its own, and this parent imports
nothing heavy, so a load's peak RSS (getrusage maxrss, which Linux carries over fork and exec from
the parent) counts neither the generation nor the other load. The reference is pd.read_csv with
its defaults, in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ML25M = {"rows": 25_000_095, "users": 162_541, "movies": 62_423, "max_movie_id": 209_171}
CHUNK = 1_000_000  # rows written per to_csv call: bounded memory while writing

CHILD = """
import json, resource, sys, time
import pandas as pd
from cfxl.data.ratings import read_ratings
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
n = len(read_ratings(sys.argv[1])) if sys.argv[2] == "cfxl" else len(pd.read_csv(sys.argv[1]))
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": n, "seconds": seconds, "peak_mb": peak / 1024, "after_imports_mb": base / 1024}))
"""


def write_ratings(path: Path, rows: int, seed: int = 0) -> None:
    """userId,movieId,rating,timestamp sorted by user then movie, no repeated pair, ids with gaps: ml-25m."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_users = max(1, round(rows * ML25M["users"] / ML25M["rows"]))
    movie_ids = np.sort(rng.choice(ML25M["max_movie_id"], ML25M["movies"], replace=False)) + 1
    stride = 7919  # prime, coprime with the movie count, so a user's k-th movie never repeats
    assert math.gcd(stride, len(movie_ids)) == 1
    user = np.sort(rng.integers(1, n_users + 1, rows))  # (rows,)
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    rank = np.arange(rows) - np.repeat(starts, np.diff(np.r_[starts, rows]))  # k-th rating of its user
    movie = movie_ids[(user * 13 + rank * stride) % len(movie_ids)]
    movie = movie[np.lexsort((movie, user))]  # ml-25m is sorted by user, then movie; user is sorted
    rating = rng.integers(1, 11, rows) / 2  # 0.5 .. 5.0 in halves
    stamp = rng.integers(789_652_009, 1_574_327_703, rows)
    with open(path, "w", newline="") as f:
        for lo in range(0, rows, CHUNK):
            part = slice(lo, lo + CHUNK)
            pd.DataFrame({"userId": user[part], "movieId": movie[part], "rating": rating[part],
                          "timestamp": stamp[part]}).to_csv(f, header=lo == 0, index=False, float_format="%.1f")


def load(path: Path, how: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), how], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25_000_000)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # the child that writes the file
    args = parser.parse_args()
    if args.write:
        return write_ratings(args.write, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.csv"
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--write", str(path)], check=True)
        print(f"wrote {args.rows:,} rows ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t:.1f} s")
        ours, ref = load(path, "cfxl"), load(path, "pandas")
    assert ours["rows"] == ref["rows"] == args.rows, (ours, ref)
    for name, r in (("read_ratings", ours), ("pd.read_csv (defaults)", ref)):
        print(f"{name:24s} {r['seconds']:7.2f} s  peak RSS {r['peak_mb']:8,.0f} MB "
              f"(after imports {r['after_imports_mb']:,.0f} MB)")
    print(f"ratio read_ratings / pd.read_csv: time {ours['seconds'] / ref['seconds']:.2f}, "
          f"peak RSS {ours['peak_mb'] / ref['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
