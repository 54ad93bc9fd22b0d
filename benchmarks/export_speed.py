"""Export speed of the whole-model sheets: cfxl (XlsxWriter, whole rows) against plain openpyxl, in one run.

    python benchmarks/export_speed.py               # the embedded sample, 50 factors
    python benchmarks/export_speed.py --repeat 5 --data ml-latest-small.zip

The model is trained once and cached as a checkpoint in the temp folder (keyed by the data's
hash and the config), so later runs only time the writing. Both writers start from the same
`ModelTables` and write the same sheets and values (users, movies, predictions, epochs,
bias_rank, pca, config): cfxl through `write_workbook(..., write_model_sheets)`, charts,
formats and all; the reference the ordinary way, openpyxl in normal mode with one
`ws.cell(row, col, value)` per cell and no charts or formats. Target: cfxl at least 2x faster,
and under 5 s on the embedded data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

CONFIG = {"model": "dotbias", "n_factors": 50, "opt": "adam", "lr": 1e-2, "weight_decay": 1e-4, "bs": 1024,
          "epochs": 6, "device": "cpu"}  # the lesson's 50 factors; large batches keep the one training short


def trained_model(data_path):
    """(trained, ratings): from the cached checkpoint when there is one, else trained and cached."""
    from cfxl.engine import checkpoint
    from cfxl.data.ratings import file_sha256, read_ratings
    from cfxl.engine.train import Config, fit

    ratings = read_ratings(data_path)
    config = Config(**CONFIG)
    key = hashlib.sha256((file_sha256(ratings.source) + json.dumps(config.to_dict(), sort_keys=True))
                         .encode()).hexdigest()[:16]
    cached = Path(tempfile.gettempdir()) / f"cfxl-export-bench-{key}.pt"
    if cached.exists():
        return checkpoint.load(cached), ratings, cached, 0.0
    start = time.perf_counter()
    trained = fit(config, ratings, progress=False)
    seconds = time.perf_counter() - start
    checkpoint.save(trained, cached, force=True)
    return trained, ratings, cached, seconds


def reference_write(tables, path: Path) -> None:
    """The same sheets and values, cell by cell through openpyxl's normal mode."""
    import openpyxl
    import pandas as pd

    from cfxl.records.analysis import bias_rank, pca

    wb = openpyxl.Workbook()
    wb.remove(wb.active)

    def table(ws, frame, row: int, col: int = 1) -> None:
        for j, name in enumerate(frame.columns):
            ws.cell(row, col + j, name)
        for i, values in enumerate(frame.itertuples(index=False), start=row + 1):
            for j, value in enumerate(values):
                ws.cell(i, col + j, value.item() if hasattr(value, "item") else value)

    for name in ("users", "movies", "predictions", "epochs"):
        ws = wb.create_sheet(name)
        ws.cell(1, 1, f"the {name} sheet")
        table(ws, getattr(tables, name), 2)
    ranked = bias_rank(tables.movies)
    ws = wb.create_sheet("bias_rank")
    ws.cell(1, 1, "the bias_rank sheet")
    for col, (label, frame) in ((1, ("best", ranked.best)), (8, ("worst", ranked.worst))):
        ws.cell(2, col, label)
        table(ws, frame, 3, col)
    result = pca(tables.movies)
    ws = wb.create_sheet("pca")
    ws.cell(1, 1, "the pca sheet")
    table(ws, result.coords, 2)
    for j, c in enumerate(result.components):
        for k, value in enumerate((c, result.labels[j][0], float(result.explained[j]), result.labels[j][1])):
            ws.cell(3 + j, 9 + k, value)
    row = 4 + len(result.components)
    for j, c in enumerate(result.components):
        table(ws, pd.concat([result.top[j], result.bottom[j].add_suffix(" bottom")], axis=1), row + 1, 9)
        row += len(result.top[j]) + 2
    ws = wb.create_sheet("config")
    ws.cell(1, 1, "the config sheet")
    for i, (key, value) in enumerate(tables.config.items(), start=3):
        ws.cell(i, 1, key)
        ws.cell(i, 2, value)
    wb.save(path)


def cfxl_write(tables, path: Path) -> None:
    from cfxl.sheets.model_sheets import write_model_sheets
    from cfxl.workbooks import write_workbook

    write_workbook(path, lambda book: write_model_sheets(book, tables), force=True)


def timed(write, tables, path: Path, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        write(tables, path)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="ratings file or zip (default: the embedded sample)")
    parser.add_argument("--repeat", type=int, default=3, help="timed writes per writer (the median counts)")
    args = parser.parse_args()

    import openpyxl
    import torch
    import xlsxwriter

    from cfxl.records.model_tables import model_tables

    trained, ratings, cached, train_s = trained_model(args.data)
    print(f"model: {cached} ({f'trained in {train_s:.1f} s' if train_s else 'cached'}); {ratings!r}")
    start = time.perf_counter()
    tables = model_tables(trained, ratings)
    tables_s = time.perf_counter() - start
    cells = sum(t.shape[0] * t.shape[1] for t in (tables.users, tables.movies, tables.predictions))
    print(f"model_tables: {tables_s:.2f} s; users {tables.users.shape}, movies {tables.movies.shape}, "
          f"predictions {tables.predictions.shape}: {cells:,} cells in the three long sheets")
    with tempfile.TemporaryDirectory() as tmp:
        ours = timed(cfxl_write, tables, Path(tmp) / "cfxl.xlsx", args.repeat)
        ref = timed(reference_write, tables, Path(tmp) / "openpyxl.xlsx", args.repeat)
        sizes = {p.name: p.stat().st_size for p in Path(tmp).glob("*.xlsx")}
    a, b = statistics.median(ours), statistics.median(ref)
    print(f"cfxl (XlsxWriter {xlsxwriter.__version__}): {a:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ours)}; "
          f"{sizes['cfxl.xlsx'] / 1e6:.1f} MB)")
    print(f"openpyxl {openpyxl.__version__} cell by cell: {b:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ref)}; "
          f"{sizes['openpyxl.xlsx'] / 1e6:.1f} MB)")
    verdict = "meets" if b / a >= 2 and a < 5 else "misses"
    print(f"ratio: cfxl is {b / a:.2f}x faster ({verdict} the target: >= 2x and < 5 s); torch {torch.__version__}")


if __name__ == "__main__":
    main()
