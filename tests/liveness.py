"""Copies of a workbook with some editable (yellow) cells changed, recomputed, and each moved
formula credited to the one changed cell it depends on: the dynamic half of
tests/test_editable.py.

Recomputing once per cell is too slow (thousands of cells, a second or more each), so cells are
changed in groups. A group is planned from the formula graph (formula_graph.Graph.sig) so that
each member keeps a witness: a formula that depends on it and on no other member. A witness
that moves proves its cell live. A cell whose witnesses do not move is tried again with larger
changes, then in groups no formula spans (every formula that moves is its witness); only then
is it reported. About twenty recomputes per workbook, two LibreOffices side by side.
"""

from __future__ import annotations

import itertools
import queue
import re
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from formula_graph import Cell, Graph, a1
from openpyxl.utils.cell import get_column_letter

from cfxl.proof.parts import sheet_parts

# ------------------------------------------------------------------ groups and perturbations


def plan_group(candidates: list[int], witnesses: dict[int, list[int]]) -> int:
    """A set of yellow cells (bits) to change at once such that each keeps a witness: a
    signature containing it and no other member. witnesses[i]: the distinct signatures that
    contain bit i, smallest first."""
    group, chosen = 0, {}
    for i in candidates:
        b = 1 << i
        w = next((s for s in witnesses[i] if s & group == 0), None)
        if w is None:
            continue
        moved = {}
        for j, s in chosen.items():
            if s & b:
                alt = next((t for t in witnesses[j] if t & (group | b) == 1 << j), None)
                if alt is None:
                    break
                moved[j] = alt
        else:
            group |= b
            chosen.update(moved)
            chosen[i] = w
    return group


def plan_apart(candidates: list[int], together: dict[int, int]) -> int:
    """A set of yellow cells (bits) no formula depends on two of: whatever moves is credited
    to the one member it depends on. together[i]: the cells sharing some formula with cell i."""
    group = 0
    for i in candidates:
        if together[i] & group == 0:
            group |= 1 << i
    return group


def shared(graph: Graph) -> dict[int, int]:
    """For each yellow bit, the bits of every cell some formula depends on together with it."""
    out: dict[int, int] = {i: 1 << i for i in range(len(graph.yellow))}
    for s in set(graph.sig.values()):
        for i in bits(s):
            out[i] |= s
    return out


def witnesses_by_bit(graph: Graph, limit: int = 64) -> dict[int, list[int]]:
    """For each yellow bit, up to `limit` distinct signatures containing it, fewest bits first."""
    out: dict[int, list[int]] = {i: [] for i in range(len(graph.yellow))}
    for s in sorted(set(graph.sig.values()), key=int.bit_count):
        rest = s
        while rest:
            low = rest & -rest
            rest ^= low
            bucket = out[low.bit_length() - 1]
            if len(bucket) < limit:
                bucket.append(s)
    return out


def bits(mask: int):
    while mask:
        low = mask & -mask
        mask ^= low
        yield low.bit_length() - 1


def options(graph: Graph, cell: Cell) -> list[str]:
    """The choices a yellow text cell's note lists ("sgd, momentum or adam"), its own first."""
    words = re.split(r",\s*|\s+or\s+", graph.note_right(cell))
    value = graph.values[cell]
    return [value] + [w.strip() for w in words if w.strip() and w.strip() != value]


ATTEMPTS = 3  # small, to zero, ten times: see perturb


def perturb(value: float, attempt: int) -> float:
    """value changed a little (a tenth less; a count by one), then to 0, then ten times (from 0:
    to 1): a cell read through a threshold or a clip crosses it one way or the other."""
    v = float(value or 0)  # a blank yellow cell reads as 0
    if attempt == 0:
        return v + 1 if v == round(v) and abs(v) >= 1 else (0.01 if v == 0 else v * 0.9)
    if attempt == 1:
        return 1.0 if v == 0 else 0.0
    return 1.0 if v == 0 else v * 10


# ------------------------------------------------------------------ editing the file


def edited_copy(src: Path, dst: Path, edits: dict[Cell, object]) -> Path:
    """A copy of the workbook at src with each edited cell's value replaced (a number, or text
    written inline): the sheet's XML edited in place, every other part as it was."""
    by_part: dict[str, dict[str, object]] = {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(
            dst, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
        parts = sheet_parts(zin)
        for (sheet, r, c), value in edits.items():
            by_part.setdefault(parts[sheet], {})[f"{get_column_letter(c)}{r}"] = value
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename in by_part:
                data = _edit_part(data.decode("utf-8"), by_part[info.filename]).encode("utf-8")
            zout.writestr(info, data)
    return dst


def _edit_part(xml: str, edits: dict[str, object]) -> str:
    def replace(m):
        ref, attrs = m.group(1), m.group(2) or ""
        style = re.search(r'\ss="\d+"', attrs)
        s = style.group(0) if style else ""
        value = edits.pop(ref)
        if isinstance(value, str):
            text = value.replace("&", "&amp;").replace("<", "&lt;")
            return f'<c r="{ref}"{s} t="inlineStr"><is><t>{text}</t></is></c>'
        return f'<c r="{ref}"{s}><v>{float(value)!r}</v></c>'

    pattern = re.compile(r'<c r="(%s)"((?:\s[^>]*?)?)(?:/>|>.*?</c>)'
                         % "|".join(map(re.escape, edits)), re.DOTALL)
    out = pattern.sub(replace, xml)
    if edits:
        raise AssertionError(f"cells not found in the sheet's XML: {sorted(edits)}")
    return out


def compact(cells) -> str:
    """'sheet!A1:A9, sheet!C3' for a set of cells: runs down a column, then equal runs side by
    side merged into blocks."""
    by_sheet: dict[str, list[tuple[int, int]]] = {}
    for sheet, r, c in cells:
        by_sheet.setdefault(sheet, []).append((c, r))
    out = []
    for sheet, coords in by_sheet.items():
        runs = []  # (c, r0, r1)
        for c, r in sorted(coords):
            if runs and runs[-1][0] == c and runs[-1][2] == r - 1:
                runs[-1][2] = r
            else:
                runs.append([c, r, r])
        blocks = []  # (c0, c1, r0, r1)
        for c, r0, r1 in runs:
            same = next((b for b in blocks if b[1] == c - 1 and b[2:] == [r0, r1]), None)
            if same:
                same[1] = c
            else:
                blocks.append([c, c, r0, r1])
        quoted = "'" + sheet.replace("'", "''") + "'" if re.search(r"\W", sheet) else sheet
        for c0, c1, r0, r1 in sorted(blocks, key=lambda b: (b[2], b[0])):
            ref = f"{get_column_letter(c0)}{r0}"
            if (c0, r0) != (c1, r1):
                ref += f":{get_column_letter(c1)}{r1}"
            out.append(f"{quoted}!{ref}")
    return ", ".join(out)


# ------------------------------------------------------------------ the proof


@dataclass
class Verdict:
    """What prove_live found in one workbook's referenced yellow cells."""

    still: list[Cell]      # nothing it drives moved, in every way it was changed, apart
    untested: list[Cell]   # max_rounds came before all its attempts apart
    recomputes: int
    seconds: float


def prove_live(graph: Graph, recalcs, folder: Path, *, max_rounds: int = 80) -> Verdict:
    """Change the workbook's referenced yellow cells in groups, recompute each copy in
    LibreOffice, and credit a moved formula to the one changed cell it depends on.

    recalcs: one or more recalc(path) -> cfxl.proof.recalc.Recalculated, each its own engine;
    the groups of a pass recompute side by side, one per engine. Each cell is tried with a
    small change, then (if nothing moved) larger ones; first in tight groups (plan_group), then
    what is left in groups no formula spans (plan_apart): a formula that reads a cell through a
    zero (a held-out rating's blank gradient times it) can witness it in a tight group without
    moving. A text cell with choices ("sgd, momentum or adam" beside it) is also tried under each
    other choice, so that a setting used by one optimizer only is tried where that optimizer
    runs. A cell is `still` when it moved nothing in every way, in groups no formula spans."""
    start = time.perf_counter()
    engines: queue.Queue = queue.Queue()
    for recalc in recalcs:
        engines.put(recalc)
    copies = itertools.count(1)

    def recompute(edits):
        path = edited_copy(graph.path, folder / f"edited{next(copies)}{graph.path.suffix}", edits)
        recalc = engines.get()
        try:
            return recalc(path).values
        finally:
            engines.put(recalc)

    first = recompute({})
    graph.resolve(first)
    for cell in graph.yellow:  # a yellow formula is changed by writing a number over it
        if cell in graph.formulas:
            graph.values[cell] = first[cell[0]].get(a1(cell))
    witnesses = witnesses_by_bit(graph)
    todo = set(bits(graph.referenced))
    where = {key: a1(key) for key in graph.formulas}
    texts = [c for c in graph.yellow if isinstance(graph.values[c], str)]
    contexts = [{}] + [{c: o} for c in texts for o in options(graph, c)[1:]]
    # referenced, yet no formula depends on it once lookups are narrowed (a table row INDEX
    # never picks): nothing it drives can move
    rounds, tries, together = 0, {i: ATTEMPTS for i in todo if not witnesses[i]}, None
    with ThreadPoolExecutor(len(recalcs)) as pool:
        for context in contexts:
            fixed = {graph.yellow.index(c) for c in context}
            base = None
            for apart in (False, True):
                for attempt in range(ATTEMPTS):
                    pending, groups = sorted(i for i in todo - fixed if witnesses[i]), []
                    if not pending:
                        break
                    if apart and together is None:
                        together = shared(graph)
                    while pending and rounds < max_rounds:
                        rounds += 1
                        groups.append(plan_apart(pending, together) if apart
                                      else plan_group(pending, witnesses))  # never empty
                        pending = [i for i in pending if not groups[-1] >> i & 1]
                    edits = []
                    for group in groups:
                        edits.append(dict(context))
                        for i in bits(group):
                            tries[i] = tries.get(i, 0) + apart
                            edits[-1][graph.yellow[i]] = changed_value(graph, graph.yellow[i],
                                                                       attempt)
                    if base is None:
                        base = recompute(context) if context else first
                    for group, after in zip(groups, pool.map(recompute, edits)):
                        for key, s in graph.sig.items():
                            m = s & group
                            if m and not m & (m - 1) and (i := m.bit_length() - 1) in todo:
                                ref = where[key]
                                if base[key[0]].get(ref) != after[key[0]].get(ref):
                                    todo.discard(i)
    left = sorted(todo)
    return Verdict([graph.yellow[i] for i in left if tries.get(i, 0) >= ATTEMPTS],
                   [graph.yellow[i] for i in left if tries.get(i, 0) < ATTEMPTS],
                   next(copies) - 1, time.perf_counter() - start)


def changed_value(graph: Graph, cell: Cell, attempt: int):
    value = graph.values[cell]
    if isinstance(value, str):
        choices = options(graph, cell)[1:] + [value + "?"]
        return choices[min(attempt, len(choices) - 1)]
    return perturb(value, attempt)
