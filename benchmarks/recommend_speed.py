"""LibreOffice's recompute time of the recommend, similar and me sheets, against the whole-model
sheets they read, in one run.

    python benchmarks/recommend_speed.py                # the embedded sample, 50 factors
    python benchmarks/recommend_speed.py --data ml-latest-small.zip --caps 1000,0

For each cap on the movies and users shown (the demo's 1,000; 0: every one, as `cfxl export`
writes them) two workbooks are written from the same model: the whole-model sheets alone (users,
movies, predictions, ...), and those plus rated, recommend, similar and me. Each is recomputed
--repeat times in one warm LibreOffice (cfxl.proof.recalc, every formula forced); the difference
of the medians is what the new sheets cost a full recompute. Typing in a cell recomputes only
what depends on it, less than this.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from export_speed import trained_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="ratings file (default: the embedded sample)")
    parser.add_argument("--caps", default="1000,0", help="rows shown; 0: all")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from cfxl.proof.recalc import Engine, recalc
    from cfxl.records.model_tables import model_tables
    from cfxl.sheets.model_sheets import write_model_sheets
    from cfxl.sheets.recommend import write_recommend_sheets
    from cfxl.workbooks import use_records, write_workbook

    trained, ratings, _, _ = trained_model(args.data)
    tables = model_tables(trained, ratings)
    folder = Path(tempfile.mkdtemp(prefix="cfxl-recommend-bench-"))
    print(f"{ratings.source}: {len(trained.users):,} users, {len(trained.movies):,} movies, "
          f"{trained.config.n_factors} factors")
    with Engine(timeout=600) as engine:
        for cap in (int(c) for c in args.caps.split(",")):
            max_rows = cap + 3 if cap else None  # note, header and the cap's note row
            kw = {} if max_rows is None else {"max_rows": max_rows}
            rec = use_records(trained, ratings, max_rows)
            books = {
                "model sheets": lambda book: write_model_sheets(book, tables, **kw),
                "+ recommend, similar, me": lambda book: (write_model_sheets(book, tables, **kw),
                                                          write_recommend_sheets(book, rec))}
            medians = {}
            for name, build in books.items():
                path = folder / f"{cap}-{len(medians)}.xlsx"
                start = time.perf_counter()
                write_workbook(path, build, force=True)
                written = time.perf_counter() - start
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    recalc(path, engine=engine)
                    times.append(time.perf_counter() - start)
                medians[name] = statistics.median(times)
                print(f"{rec.n_movies:>6,} movies  {name:<26} written {written:5.2f} s  recomputed "
                      f"{medians[name]:6.2f} s (median of {args.repeat}), {path.stat().st_size / 1e6:.1f} MB")
            extra = medians["+ recommend, similar, me"] - medians["model sheets"]
            print(f"{rec.n_movies:>6,} movies  the new sheets add {extra:.2f} s to a full recompute")


if __name__ == "__main__":
    main()
