"""Speed of the live `train` sheet: writing K steps of Adam (15 x 15 slice, F = 3) as formulas,
and LibreOffice recomputing them.

    python benchmarks/unrolled_speed.py                 # K = 50 and K = 200
    python benchmarks/unrolled_speed.py --steps 50 100 200 --no-breakdown

For each K: the formulas written, torch's run, the time to write the workbook (with the hidden
`_torch` proof sheet that `verify` reads, and without it), and LibreOffice's time through
cfxl.proof.recalc.Engine (after a cold start, reported apart): recomputing and reading every cell back,
for both workbooks. The breakdown drives LibreOffice directly to split that time into loading
(which recomputes everything), a second full recalculation alone, and reading each sheet back.
The formula-preparation line writes once more with XlsxWriter's own formula preparation (thirty
regular expressions per formula, for Excel's newer functions) in place of cfxl's.
Targets (issue 6): writing plus recomputing K = 50 under 5 s, K = 200 under 15 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

TARGETS = {50: 5.0, 200: 15.0}  # seconds, writing plus recomputing

# Run by a Python that can import uno: load (recomputes, the profile says so), calculateAll,
# then read each sheet back with the same code as cfxl's worker.
BREAKDOWN = r"""
import json, os, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
import uno
import _uno_worker as w
profile, pipe, path = sys.argv[2], sys.argv[3], sys.argv[4]
office = subprocess.Popen(["soffice", "--headless", "--invisible", "--nologo", "--norestore",
                           "--nodefault", "--nolockcheck", f"-env:UserInstallation=file://{profile}",
                           f"--accept=pipe,name={pipe};urp;StarOffice.ComponentContext"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
desktop = w.connect(pipe, 60)
out = {}
t = time.perf_counter()
doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(path), "_blank", 0,
                                   (w.prop("Hidden", True), w.prop("ReadOnly", True)))
out["load and recompute"] = time.perf_counter() - t
t = time.perf_counter()
doc.calculateAll()
out["recompute again (calculateAll)"] = time.perf_counter() - t
for sheet in doc.getSheets():
    t = time.perf_counter()
    w.read_sheet(sheet)
    out[f"read back {sheet.getName()}"] = time.perf_counter() - t
doc.close(True)
try:
    desktop.terminate()
except Exception:
    pass
office.wait(timeout=30)
print(json.dumps(out))
"""


@contextmanager
def timed(into: dict, key: str):
    start = time.perf_counter()
    yield
    into[key] = time.perf_counter() - start


def write(path: Path, rec, *, proof: bool = True, stock_formulas: bool = False) -> int:
    """Write the train sheet; returns the cells listed for verification. proof False leaves the
    `_torch` sheet out; stock_formulas uses XlsxWriter's own formula preparation."""
    from xlsxwriter.worksheet import Worksheet

    from cfxl.sheets.book import ExactWorksheet
    from cfxl.sheets.unrolled import write_unrolled_sheet
    from cfxl.workbooks import write_workbook

    checks = []

    def build(book):
        write_unrolled_sheet(book, rec)
        checks.append(sum(len(cells) for cells in book.torch.values()))
        if not proof:
            book.torch.clear()

    own = ExactWorksheet.__dict__.get("_prepare_formula")
    if stock_formulas and own is not None:
        ExactWorksheet._prepare_formula = Worksheet._prepare_formula
    try:
        write_workbook(path, build, force=True)
    finally:
        if own is not None:
            ExactWorksheet._prepare_formula = own
    return checks[0]


def breakdown(path: Path) -> dict:
    """LibreOffice's time on one workbook, split into loading, recomputing and reading back."""
    import cfxl
    from cfxl.proof.office import PROFILE, find_soffice
    from cfxl.proof.recalc import find_uno_python

    python = find_uno_python(find_soffice())
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "user").mkdir()
        (Path(tmp) / "user" / "registrymodifications.xcu").write_text(PROFILE)
        worker_dir = str(Path(cfxl.__file__).parent / "proof")  # where _uno_worker.py is
        done = subprocess.run([python, "-c", BREAKDOWN, worker_dir, tmp,
                               f"bench{time.monotonic_ns()}", str(path)],
                              capture_output=True, text=True, timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    args = parser.parse_args()

    import torch

    from cfxl.data.ratings import read_ratings
    from cfxl.proof.recalc import Engine
    from cfxl.records.types.unrolled import UnrolledHyper
    from cfxl.records.unrolled import unrolled_records
    from cfxl.proof.verify import verify
    from cfxl.sheets.unrolled_layout import UnrolledLayout

    torch.set_num_threads(1)
    ratings = read_ratings()
    unrolled_records(ratings, steps=2)  # warm torch up
    scratch = tempfile.TemporaryDirectory(prefix="cfxl-train-bench-")
    folder = Path(scratch.name)
    engine = Engine(timeout=600)
    t = {}
    with timed(t, "cold"):
        engine.start()
    print(f"LibreOffice cold start (Engine.start): {t['cold']:.2f} s\n")
    with engine:
        for K in args.steps:
            t = {}
            with timed(t, "torch"):
                rec = unrolled_records(ratings, steps=K, hyper=UnrolledHyper(opt="adam"))
            L = UnrolledLayout(*rec.slice.ratings.shape, rec.n_factors, K)
            full, bare = folder / f"train{K}.xlsx", folder / f"train{K}_bare.xlsx"
            with timed(t, "write"):
                checks = write(full, rec)
            with timed(t, "write, no proof"):
                write(bare, rec, proof=False)
            with timed(t, "write, stock formulas"):
                write(folder / "stock.xlsx", rec, stock_formulas=True)
            with timed(t, "recalc"):
                done = engine.recalc(full)
            with timed(t, "recalc, no proof"):
                engine.recalc(bare)
            report = verify(done)
            worst = max(c.max_rel_err for c in report.sheets.values())
            total, target = t["write"] + t["recalc"], TARGETS.get(K)
            verdict = "" if target is None else (
                f" (target {target:g} s: {'met' if total < target else 'MISSED'})")
            print(f"K = {K}: {L.formulas:,} formulas ({L.formulas_per_step:,} per step), "
                  f"{checks:,} verified; {L.band(K + 1):,} rows; "
                  f"{full.stat().st_size / 1e6:.1f} MB")
            print(f"  torch run (float64, full batch)         {t['torch']:6.2f} s")
            print(f"  write, with the _torch proof sheet      {t['write']:6.2f} s")
            print(f"  write, without it                       {t['write, no proof']:6.2f} s")
            print(f"  write, XlsxWriter's formula preparation {t['write, stock formulas']:6.2f} s")
            print(f"  Engine.recalc (recompute + read back)   {t['recalc']:6.2f} s")
            print(f"  Engine.recalc, no proof sheet           {t['recalc, no proof']:6.2f} s")
            print(f"  write + recalc                          {total:6.2f} s{verdict}")
            print(f"  write + recalc, no proof sheet          "
                  f"{t['write, no proof'] + t['recalc, no proof']:6.2f} s")
            print(f"  verify: {'ok' if report.ok else f'{len(report.failures)} failures'}, "
                  f"worst relative error {worst:.1e}, formula errors {len(done.errors)}")
            if args.breakdown:
                for what, seconds in breakdown(full).items():
                    print(f"  LibreOffice alone: {what:34s}{seconds:6.2f} s")
            print()
    scratch.cleanup()


if __name__ == "__main__":
    main()
