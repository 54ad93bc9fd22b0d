"""Every yellow (editable) cell of every workbook cfxl writes is live: a formula reads it, and
changing it moves a formula it drives when LibreOffice recomputes the workbook.

Yellow is cfxl.sheets.styles.EDITABLE. A yellow cell no formula reads, or one that moves nothing
it drives, passes only beside a label calling it a start value (formula_graph.START_LABEL).

The workbooks: the collab macro workbook (its sheets are the .xlsx's plus the macro ones), the
optimizer workbook with torch's rules (.xlsx) and with the lesson's (.xlsm, with its buttons),
and the unrolled `train` workbook, each written by cfxl's own export calls on a small data set
and a short run (their sheet writers are the ones the full-size workbooks use). How the cells
are changed in groups, about twenty recomputes per workbook: tests/liveness.py.
"""

from __future__ import annotations

import functools
import importlib.util

import pytest
from formula_graph import read_graph
from liveness import ATTEMPTS, compact, prove_live
from test_udfs import small_ratings

from cfxl.data.ratings import read_ratings
from cfxl.engine.train import Config, fit
from cfxl.records import graddesc
from cfxl.workbooks import export_collab, export_graddesc, export_unrolled, plan

# recompute workbooks: `make test` runs these with a second seed
pytestmark = pytest.mark.recompute

LINE_EPOCHS = 2  # per optimizer sheet: every formula pattern, at a fraction of the rows
CF_STEPS = 2     # the cf_* sheets' full-batch steps
UNROLLED_STEPS = 3
BOOKS = ("collab.xlsm", "graddesc.xlsx", "graddesc_lesson.xlsm", "unrolled.xlsx")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return read_ratings(small_ratings(tmp_path_factory.mktemp("data") / "small"))


def write(name: str, folder, data, seed: int):
    """One of BOOKS, as cfxl's export calls write it, small."""
    path = folder / name
    if name.endswith(".xlsm") and importlib.util.find_spec("xlwings") is None:
        pytest.skip("a macro workbook's VBA project comes from xlwings, which is not installed: "
                    "pip install -e '.[excel]'")
    if name.startswith("collab"):
        trained = fit(Config(n_factors=3, epochs=1, bs=64, seed=seed), data, progress=False)
        return export_collab(plan(path, model=True), trained, data)
    if name.startswith("graddesc"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(graddesc, "run", functools.partial(graddesc.run, epochs=LINE_EPOCHS))
            rules = "lesson" if "lesson" in name else "torch"
            return export_graddesc(plan(path), data, rules=rules, steps=CF_STEPS)
    return export_unrolled(plan(path), data, steps=UNROLLED_STEPS)


@pytest.fixture(scope="module", params=BOOKS)
def graph(request, data, seed, tmp_path_factory):
    """The workbook's formula graph (formula_graph.Graph): its yellow cells and what reads them."""
    return read_graph(write(request.param, tmp_path_factory.mktemp("books"), data, seed))


def test_every_yellow_cell_is_read_by_a_formula(graph):
    unread = [c for i, c in enumerate(graph.yellow) if not graph.referenced >> i & 1
              and not graph.documented(c)]
    assert graph.yellow, f"{graph.path.name}: no yellow cell found; is EDITABLE still the fill?"
    assert not unread, (f"{graph.path.name}: {len(unread)} yellow cells no formula reads: "
                        f"{compact(unread)}")


@pytest.fixture(scope="module")
def engines(engine):
    """recalc of the session's LibreOffice and of a second one: a proof's groups recompute
    two at a time (CI machines have two cores; LibreOffice uses one)."""
    from cfxl.proof.recalc import Engine

    with Engine(timeout=120) as second:
        yield [engine.recalc, second.recalc]


def test_every_yellow_cell_moves_a_formula_it_drives(graph, engines, tmp_path):
    verdict = prove_live(graph, engines, tmp_path)
    still = [c for c in verdict.still if not graph.documented(c)]
    assert not still, (
        f"{graph.path.name}: {len(still)} yellow cells moved none of the formulas they drive "
        f"(each changed {ATTEMPTS} ways: a tenth, to zero, ten times): {compact(still)}")
    assert not verdict.untested, (
        f"{graph.path.name}: {len(verdict.untested)} yellow cells not tried within the round "
        f"limit: {compact(verdict.untested)}")


# ------------------------------------------------------------------ the proof itself


def toy(path):
    """A workbook with one yellow cell of each kind the proof must tell apart."""
    import xlsxwriter

    from cfxl.sheets.styles import EDITABLE

    wb = xlsxwriter.Workbook(path)
    ws, other = wb.add_worksheet("toy sheet"), wb.add_worksheet("other's")
    yellow = wb.add_format({"bg_color": EDITABLE})
    cells = {"A1": 2.0, "A2": 5.0, "A3": 1.0, "B5": 7.0, "D1": 1.0, "D2": 2.0, "D3": 3.0,
             "H1": 2.0, "J1": 1.0, "J2": 2.0, "L1": "adam", "L2": 0.9, "N1": 0.1,
             "S1": 5.0, "S2": 6.0, "P1": 1.0, "P2": 2.0}
    for ref, value in cells.items():
        ws.write(ref, value, yellow)
    ws.write_blank("W1", None, yellow)  # blank, yet yellow: read by nothing
    other.write("A1", 3.0, yellow)
    ws.write("M1", "sgd or adam")
    ws.write("A5", "start value, read by a macro")
    ws.write_row("Q1", [1, 0])
    ws.write_row("Q2", [0, 1])
    wb.define_name("'toy sheet'!rate", "='toy sheet'!$N$1")
    formulas = {"B1": "=A1*3",                 # live
                "B3": "=IF(1>2,A3,0)",         # read, never moves
                "E1": "=INDEX($D$1:$D$3,1)", "E2": "=INDEX($D$1:$D$3,2)",
                "E3": "=INDEX($D$1:$D$3,$G$1)",
                "I1": "=IF(5>H1,1,0)",         # moves only when H1 passes 5
                "K1": "=J1+J2",                # two cells, one formula
                "L3": '=IF(L1="sgd",L2,0)',    # L2 moves only under sgd
                "N2": "=rate*10",              # a sheet's own defined name
                "N3": "='other''s'!A1*2",      # another sheet, its name quoted
                "Q3": "=P1+P2",                # P1 and P2 move only this ...
                "Q4": "=R1*P1", "Q5": "=R1*P2"}  # ... these read them times R1 = 0
    for ref, formula in formulas.items():
        ws.write_formula(ref, formula)
    ws.write_array_formula("U1:U2", "{=MMULT(Q1:R2,S1:S2)}")  # U1 reads S1 alone, U2 S2
    ws.write("G1", 3)
    ws.write("R1", 0)
    wb.close()
    return path


def test_the_proof_tells_live_from_dead_yellow_cells(engines, tmp_path):
    graph = read_graph(toy(tmp_path / "toy.xlsx"))
    unread = [c for i, c in enumerate(graph.yellow) if not graph.referenced >> i & 1]
    assert compact(unread) == "'toy sheet'!W1, 'toy sheet'!A2, 'toy sheet'!B5"
    assert [c for c in unread if graph.documented(c)] == [("toy sheet", 5, 2)]
    verdict = prove_live(graph, engines, tmp_path)
    assert compact(verdict.still) == "'toy sheet'!A3"
    assert verdict.untested == []
    assert verdict.recomputes < len(graph.yellow)  # in groups, not one cell at a time


def test_compact_names_blocks():
    cells = [("s", 1, 1), ("s", 2, 1), ("s", 1, 2), ("s", 2, 2), ("s", 9, 3), ("t x", 3, 3)]
    assert compact(cells) == "s!A1:B2, s!C9, 't x'!C3"
