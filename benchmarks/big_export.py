"""ml-25m end to end: `cfxl export RATINGS --csv-dir tables -o big.xlsx` on a synthetic ml-25m-shaped file, its peak memory and time by phase.

    python benchmarks/big_export.py --data /tmp/ml25m            # the file is made there once, then reused
    python benchmarks/big_export.py --data /tmp/ml1m --users 6040 --movies 3706 --ratings 1000209

The ratings come from cfxl.data.sample.big (the embedded sample's model at ml-25m's counts),
made in --data unless a ratings.csv is there already. The export runs in a child process, as the
command does it (workbooks.plan, load_or_train, export_collab, with the command's defaults but
--epochs 1 and --bs 65536, unless told), and times each phase: reading, training, the lesson's slice models, the model's
tables, the recommend sheets' records, the CSV tables, the workbook. A thread samples the child's
resident memory (/proc/self/statm, Linux) every 20 ms for each phase's peak; the whole run's peak
is getrusage's maxrss. This parent imports nothing heavy, so neither counts it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT_GB = 4.0  # the bound ml-25m's export must stay under (issue 14)

CHILD = r"""
import json, os, resource, sys, threading, time
from pathlib import Path
import cfxl.workbooks as wb
from cfxl.engine.train import config_for

page = os.sysconf("SC_PAGE_SIZE")
peak = [0]

def sample():
    while True:
        with open("/proc/self/statm") as f:
            peak[0] = max(peak[0], int(f.read().split()[1]) * page)
        time.sleep(0.02)

threading.Thread(target=sample, daemon=True).start()
phases = []

def timed(name, fn):
    def run(*args, **kwargs):
        peak[0], t = 0, time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            phases.append({"phase": name, "seconds": time.perf_counter() - t, "peak_mb": peak[0] / 2**20})
    return run

for name, attr in (("read", "read_ratings"), ("train", "fit"), ("lesson sheets' models", "lesson_records"),
                   ("model tables", "model_tables"), ("recommend records", "use_records"),
                   ("CSV tables", "write_csvs"), ("workbook", "write_workbook")):
    setattr(wb, attr, timed(name, getattr(wb, attr)))
ratings, folder, settings = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
t = time.perf_counter()
out = wb.plan(folder / "big.xlsx", model=True, csv_dir=folder / "tables")
trained, data = wb.load_or_train(ratings, config_for(**settings))
wb.export_collab(out, trained, data)
seconds = time.perf_counter() - t
sizes = {p.name: p.stat().st_size for p in [folder / "big.xlsx", *sorted((folder / "tables").iterdir())]}
print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "phases": phases, "sizes": sizes, "device": trained.device,
                  "val_rmse": trained.kept.get("val_rmse"), "n": len(data)}))
"""


def make_data(folder: Path, users: int, movies: int, ratings: int) -> Path:
    """folder/ratings.csv, made by cfxl.data.sample.big unless it is there (then reused as is)."""
    path = folder / "ratings.csv"
    if not path.exists():
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cfxl.data.sample.big", "--out", str(folder), "-q",
                        "--users", str(users), "--movies", str(movies), "--ratings", str(ratings)],
                       check=True)
        print(f"made {path} in {time.perf_counter() - t:.0f} s")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of the ratings file (made if missing)")
    parser.add_argument("--users", type=int, default=162_541)
    parser.add_argument("--movies", type=int, default=59_047)
    parser.add_argument("--ratings", type=int, default=25_000_095)
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (the command's default: 5)")
    parser.add_argument("--bs", type=int, default=65536,
                        help="batch size (the command's default, 1024, is 19,500 steps per ml-25m "
                             "epoch, each updating all 11M parameters: hours on a CPU)")
    parser.add_argument("--sparse", action="store_true",
                        help="train with --sparse (row-sparse updates: a step costs what the "
                             "batch touches, so the default batch size is practical)")
    args = parser.parse_args()
    ratings = make_data(args.data, args.users, args.movies, args.ratings)
    with tempfile.TemporaryDirectory() as out:
        settings = json.dumps({"epochs": args.epochs, "bs": args.bs, "sparse": args.sparse})
        done = subprocess.run([sys.executable, "-c", CHILD, str(ratings), out, settings],
                              check=True, capture_output=True, text=True)
    r = json.loads(done.stdout.splitlines()[-1])
    print(f"cfxl export: {r['n']:,} ratings, {args.epochs} epoch(s) at batch size {args.bs:,} "
          f"{'with --sparse ' if args.sparse else ''}on {r['device']}, "
          f"val RMSE {r['val_rmse']:.4f}")
    print(f"{'phase':24s} {'seconds':>8s} {'peak RSS MB':>12s}")
    for p in r["phases"]:
        print(f"{p['phase']:24s} {p['seconds']:8.1f} {p['peak_mb']:12,.0f}")
    print(f"{'whole export':24s} {r['seconds']:8.1f} {r['peak_mb']:12,.0f}  "
          f"({'under' if r['peak_mb'] < LIMIT_GB * 1024 else 'OVER'} the {LIMIT_GB:g} GB bound)")
    print("written: " + ", ".join(f"{name} {size / 1e6:,.1f} MB" for name, size in r["sizes"].items()))


if __name__ == "__main__":
    main()
