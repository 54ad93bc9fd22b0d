"""cfxl's default training recipe against its peers: validation RMSE and fit seconds, in one run.

Every system runs in its own child process on one thread (torch.set_num_threads(1) and
OMP_NUM_THREADS=1), on the same 80/20 split (cfxl.data.ratings.split, seed 42), timed around its
fit call only. The rows: predicting the training mean; cfxl's defaults (presets.TRAIN_DEFAULTS);
cfxl 0.1's defaults (bs 64, constant lr 0.01, 3 epochs, no weight decay); `--preset lesson`;
Surprise's SVD with its defaults; fastai's collab_learner, fit_one_cycle(5, 5e-3, wd=0.1), bs
1024, y_range (0, 5.5). A peer that is not installed is said so and skipped (fastai: run with
--fastai-python, a Python that has it, e.g. a venv made for it beside cfxl's).

Data: the embedded sample; --noisy, a MovieLens-100k-shaped synthetic set with MovieLens' noise
(made here, not shipped); and every ratings file given (ml-100k u.data, ratings.csv, ...).

    python benchmarks/peers.py
    python benchmarks/peers.py --noisy ml-100k/u.data --fastai-python /tmp/fa/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

VAL_PCT, SEED = 0.2, 42
CFXL_0_1 = dict(bs=64, epochs=3, schedule="constant", weight_decay=0.0, keep_best=False)
SYSTEMS = ("mean", "cfxl", "cfxl 0.1", "cfxl lesson", "surprise", "fastai")


def split_frame(path):
    """The ratings, and the training and validation indices every system uses."""
    from cfxl.data.ratings import read_ratings, split

    data = read_ratings(path)
    return data, *split(len(data), VAL_PCT, SEED)


def child(system: str, path) -> dict:
    """One system's fit on the data, in this process: {val_rmse, seconds}."""
    import numpy as np

    data, tr, va = split_frame(path)
    y = data.rating.astype(np.float64)
    if system == "mean":
        return {"val_rmse": float(np.sqrt(np.mean((y[va] - y[tr].mean()) ** 2))), "seconds": 0.0}
    if system.startswith("cfxl"):
        import torch

        from cfxl.engine.train import Config, config_for, fit

        torch.set_num_threads(1)
        config = {"cfxl": Config(), "cfxl 0.1": Config(**CFXL_0_1),
                  "cfxl lesson": config_for("lesson")}[system]
        config = replace(config, device="cpu")
        fit(Config(epochs=1, device="cpu"), data, progress=False)  # torch's start-up, untimed
        t0 = time.perf_counter()
        trained = fit(config, data, progress=False)
        return {"val_rmse": trained.kept["val_rmse"], "seconds": time.perf_counter() - t0}
    if system == "surprise":
        import pandas as pd
        from surprise import SVD, Dataset, Reader

        frame = pd.DataFrame({"u": data.user_idx, "i": data.movie_idx, "r": y})
        train = Dataset.load_from_df(frame.iloc[tr], Reader(rating_scale=data.rating_range))
        algo = SVD(random_state=0)
        trainset = train.build_full_trainset()
        t0 = time.perf_counter()
        algo.fit(trainset)
        seconds = time.perf_counter() - t0
        pred = np.array([algo.predict(u, i).est for u, i in zip(data.user_idx[va], data.movie_idx[va])])
        return {"val_rmse": float(np.sqrt(np.mean((pred - y[va]) ** 2))), "seconds": seconds}
    if system == "fastai":
        import pandas as pd
        import torch
        from fastai.collab import TabularCollab, collab_learner
        from fastai.data.block import TransformBlock
        from fastai.tabular.core import Categorify

        torch.set_num_threads(1)
        frame = pd.DataFrame({"user": data.user_idx, "item": data.movie_idx,
                              "rating": y.astype(np.float32)})
        to = TabularCollab(frame, procs=[Categorify], cat_names=["user", "item"],
                           y_names=["rating"], y_block=TransformBlock(),
                           splits=(list(tr), list(va)))
        dls = to.dataloaders(path=tempfile.gettempdir(), bs=1024)
        learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
        with learn.no_bar(), learn.no_logging():
            t0 = time.perf_counter()
            learn.fit_one_cycle(5, 5e-3, wd=0.1)
            seconds = time.perf_counter() - t0
            val_mse = float(learn.validate()[0])
        return {"val_rmse": float(np.sqrt(val_mse)), "seconds": seconds}
    raise ValueError(system)


def noisy_set(folder: Path) -> Path:
    """MovieLens 100k's shape and noise, synthetic: 943 users, 1,682 movies, 100,000 whole-star
    ratings; power-law activity and popularity; biases and 10 taste factors; per-rating noise
    (sd 0.9) about as large as the spread MovieLens' best models leave (RMSE ~0.9)."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    n_users, n_movies, n = 943, 1682, 100_000
    activity = rng.pareto(1.2, n_users) + 1
    popularity = rng.pareto(1.0, n_movies) + 1
    pairs = set()
    while len(pairs) < n:
        u = rng.choice(n_users, n, p=activity / activity.sum())
        m = rng.choice(n_movies, n, p=popularity / popularity.sum())
        pairs.update(zip(u.tolist(), m.tolist()))
    u, m = np.array(sorted(pairs)[:n]).T
    ub, mb = rng.normal(0, 0.4, n_users), rng.normal(0, 0.5, n_movies)
    uf, mf = rng.normal(0, 0.25, (n_users, 10)), rng.normal(0, 0.25, (n_movies, 10))
    r = 3.53 + ub[u] + mb[m] + (uf[u] * mf[m]).sum(1) + rng.normal(0, 0.9, n)
    path = folder / "noisy.csv"
    lines = [f"{a + 1},{b + 1},{int(np.clip(np.rint(x), 1, 5))},0" for a, b, x in zip(u, m, r)]
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(lines) + "\n")
    return path


def run(system: str, path, fastai_python: str | None) -> dict:
    python = fastai_python if system == "fastai" and fastai_python else sys.executable
    root = str(Path(__file__).resolve().parents[1])  # cfxl, for a fastai Python without it
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([python, __file__, "--child", json.dumps([system, path and str(path)])],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": "not installed" if "ModuleNotFoundError" in last else last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="*", help="ratings files (the embedded sample is always run)")
    p.add_argument("--noisy", action="store_true", help="also a MovieLens-100k-shaped noisy set")
    p.add_argument("--fastai-python", help="a Python with fastai (default: this one)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        system, path = json.loads(args.child)
        print(json.dumps(child(system, path)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        sets = [("embedded sample", None)] + ([("noisy synthetic", noisy_set(Path(tmp)))]
                                              if args.noisy else [])
        sets += [(str(d), d) for d in args.data]
        for name, path in sets:
            print(f"\n{name}: val RMSE, fit seconds (one thread, 80/20 split, seed {SEED})")
            for system in SYSTEMS:
                r = run(system, path, args.fastai_python)
                shown = r["error"] if "error" in r else \
                    f"{r['val_rmse']:.4f}  {r['seconds']:6.2f} s"
                print(f"  {system:12s} {shown}", flush=True)


if __name__ == "__main__":
    main()
