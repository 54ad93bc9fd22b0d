"""Training speed: cfxl's loop (dense and sparse) against a DataLoader reference, in one run.

Every measurement runs in its own child process, so its peak memory is its own and thread
settings do not leak. Same data, split, model (EmbeddingDotBias, 50 factors) and optimizer
(Adam; cfxl's row-sparse Adam on the sparse path) everywhere; the reference differs only in
feeding batches through `torch.utils.data.DataLoader` over a `TensorDataset`, the ordinary way.
When scikit-surprise is installed, its SVD runs on the same split and cfxl's fast path is timed
to reach Surprise's validation RMSE.

    python benchmarks/train_speed.py                 # embedded sample, all batch sizes
    python benchmarks/train_speed.py --data ml-latest-small.zip --epochs 5
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

METHODS = ("cfxl", "cfxl-sparse", "dataloader")


def child(spec: dict) -> dict:
    """Run one measurement in this process and return its numbers."""
    import numpy as np
    import torch

    from cfxl.data.ratings import read_ratings, split
    from cfxl.engine.train import Config, fit

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    data = read_ratings(spec["data"])
    warm_up(data)
    config = Config(model="dotbias", n_factors=50, opt="adam", lr=spec["lr"], bs=spec["bs"],
                    epochs=spec["epochs"], device="cpu", sparse=spec["method"] == "cfxl-sparse",
                    val_pct=spec["val_pct"])
    if spec["method"] == "dataloader":
        history = reference_fit(config, data)
    elif spec.get("target_rmse"):
        history = []
        start = time.perf_counter()

        class Reached(Exception):
            pass

        def stop_at_target(row):
            history.append({**row, "elapsed": time.perf_counter() - start})
            if row["val_rmse"] <= spec["target_rmse"]:
                raise Reached

        try:
            fit(config, data, progress=False, on_epoch=stop_at_target)
        except Reached:
            pass
    else:
        history = fit(config, data, progress=False).history
    train_n = len(split(len(data), config.val_pct, config.seed)[0])
    secs = [h["seconds"] for h in history]
    return {**spec, "epochs_run": len(history), "s_per_epoch": float(np.median(secs)),
            "ratings_per_s": train_n / float(np.median(secs)), "val_rmse": history[-1]["val_rmse"],
            "reached_s": history[-1].get("elapsed"),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def warm_up(data) -> None:
    """One tiny run first, so torch's one-time start-up cost is not charged to the timed run."""
    from dataclasses import replace

    from cfxl.engine.train import Config, fit

    few = replace(data, user_idx=data.user_idx[:2000], movie_idx=data.movie_idx[:2000],
                  rating=data.rating[:2000], timestamp=None)
    for sparse in (False, True):
        fit(Config(epochs=1, bs=512, device="cpu", sparse=sparse), few, progress=False)


def reference_fit(config, data) -> list[dict]:
    """The ordinary loop: DataLoader(TensorDataset, shuffle=True), same model and optimizer."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from cfxl.data.ratings import split
    from cfxl.engine.models import make_model
    from cfxl.engine.evaluate import evaluate
    from cfxl.engine.train import make_optimizers

    torch.manual_seed(config.seed)
    tr, va = (torch.from_numpy(i) for i in split(len(data), config.val_pct, config.seed))
    u = torch.tensor(data.user_idx, dtype=torch.int64)
    m = torch.tensor(data.movie_idx, dtype=torch.int64)
    y = torch.tensor(data.rating, dtype=torch.float32)
    model = make_model("dotbias", data.n_users, data.n_movies, config.n_factors,
                       y_range=data.rating_range)
    (opt,) = make_optimizers(config, model)
    loader = DataLoader(TensorDataset(u[tr], m[tr], y[tr]), batch_size=config.bs, shuffle=True)
    history = []
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        model.train()
        for ub, mb, yb in loader:
            loss = F.mse_loss(model(ub, mb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = evaluate(model, u[va], m[va], y[va])
        history.append({"seconds": time.perf_counter() - t0, "val_rmse": math.sqrt(val)})
    return history


def surprise_child(spec: dict) -> dict:
    """Surprise's SVD (its defaults) on the same split: seconds to train, validation RMSE."""
    import numpy as np
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    from cfxl.data.ratings import read_ratings, split

    data = read_ratings(spec["data"])
    tr, va = split(len(data), spec["val_pct"], 42)
    frame = pd.DataFrame({"u": data.user_idx, "i": data.movie_idx, "r": data.rating})
    lo, hi = data.rating_range
    trainset = Dataset.load_from_df(frame.iloc[tr], Reader(rating_scale=(lo, hi))).build_full_trainset()
    algo = SVD(random_state=0)
    t0 = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - t0
    pred = np.array([algo.predict(u, i).est for u, i in zip(frame.u.iloc[va], frame.i.iloc[va])])
    rmse = float(np.sqrt(np.mean((pred - frame.r.iloc[va].to_numpy()) ** 2)))
    return {**spec, "seconds": seconds, "val_rmse": rmse,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """Rows as aligned text; cols are (key, header, format spec)."""
    cells = [[h for _, h, _ in cols]] + [[format(r[k], f) for k, _, f in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="ratings file (default: the embedded sample)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--val-pct", type=float, default=0.1)
    p.add_argument("--batch-sizes", default="64,1024,4096,16384")
    p.add_argument("--threads", default="1,0", help="thread counts; 0 = torch's default")
    p.add_argument("--fast-bs", type=int, default=1024, help="batch size of the race to Surprise")
    p.add_argument("--fast-lr", type=float, default=1e-2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(surprise_child(spec) if spec["method"] == "surprise" else child(spec)))
        return

    base = {"data": args.data, "epochs": args.epochs, "lr": args.lr, "val_pct": args.val_pct}
    rows = []
    for threads in (int(t) for t in args.threads.split(",")):
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            for method in METHODS:
                r = run({**base, "method": method, "bs": bs, "threads": threads})
                rows.append(r)
                print(f"  {method:12s} bs {bs:6d} threads {threads or 'default'}: "
                      f"{r['s_per_epoch']:.3f} s/epoch, val RMSE {r['val_rmse']:.4f}",
                      file=sys.stderr)
    ref = {(r["bs"], r["threads"]): r["s_per_epoch"] for r in rows if r["method"] == "dataloader"}
    for r in rows:
        r["speedup"] = ref[(r["bs"], r["threads"])] / r["s_per_epoch"]
        r["threads"] = str(r["threads"] or "default")
    print(f"\nTraining speed, {args.epochs} epochs, EmbeddingDotBias 50 factors, Adam lr {args.lr:g}"
          f" (SparseAdam on the sparse path); speedup = DataLoader s/epoch / this s/epoch\n")
    print(table(rows, [("method", "method", ""), ("bs", "bs", "d"), ("threads", "threads", ""),
                       ("s_per_epoch", "s/epoch", ".3f"), ("ratings_per_s", "ratings/s", ",.0f"),
                       ("val_rmse", "val RMSE", ".4f"), ("peak_mb", "peak MB", ".0f"),
                       ("speedup", "speedup", ".1f")]))

    try:
        import surprise  # noqa: F401
    except ImportError:
        print("\nscikit-surprise is not installed: skipping the comparison with its SVD")
        return
    s = run({**base, "method": "surprise", "threads": 1})
    print(f"\nSurprise SVD (defaults: 100 factors, 20 epochs), one thread: {s['seconds']:.2f} s, "
          f"val RMSE {s['val_rmse']:.4f}")
    for method in ("cfxl", "cfxl-sparse"):
        race = run({**base, "method": method, "bs": args.fast_bs, "lr": args.fast_lr,
                    "threads": 1, "epochs": 60, "target_rmse": s["val_rmse"]})
        what = f"{method} (bs {args.fast_bs}, lr {args.fast_lr:g}), one thread"
        if race["val_rmse"] <= s["val_rmse"]:
            print(f"{what}: reached {race['val_rmse']:.4f} after {race['epochs_run']} epochs, "
                  f"{race['reached_s']:.2f} s = {race['reached_s'] / s['seconds']:.2f}x Surprise's time")
        else:
            print(f"{what}: did not reach {s['val_rmse']:.4f} in {race['epochs_run']} epochs "
                  f"(last {race['val_rmse']:.4f}, {race['reached_s']:.2f} s)")


if __name__ == "__main__":
    main()
