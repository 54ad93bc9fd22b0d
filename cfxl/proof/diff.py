"""Compare two workbooks or snapshots: cells (numbers within a tolerance), sheets and structure."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from openpyxl.utils.cell import coordinate_to_tuple

from cfxl.errors import CfxlError
from cfxl.proof.snapshot import FORMULA_KINDS, Sheet, Snapshot, load, token
from cfxl.proof.snapshot_features import quote

MODES = ("all", "values", "formulas")


@dataclass(frozen=True)
class Difference:
    """One difference; old or new is None where that side lacks the thing."""

    sheet: str | None  # None: the workbook as a whole
    what: str  # cell, sheet (added or removed), state, order, line (a structure line)
    where: str  # the cell reference; "" otherwise
    old: str | None
    new: str | None


def diff(a: str | Path | Snapshot, b: str | Path | Snapshot, *, rtol: float = 1e-9,
         atol: float = 1e-12, sheet: str | None = None, mode: str = "all") -> list[Difference]:
    """Differences from a to b, each a workbook, a snapshot file or a Snapshot.

    Numbers are equal when within rtol (relative) or atol (absolute); formulas, strings and
    structure compare as text. A snapshot knows its numbers only to its digits, so rtol is at
    least half a unit in the last digit. mode "values" compares the cells holding a value on
    either side, "formulas" those holding a formula; both leave out the structure.
    """
    if mode not in MODES:
        raise CfxlError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    a, b = (x if isinstance(x, Snapshot) else load(x) for x in (a, b))
    digits = [d for d in (a.digits, b.digits) if d is not None]
    if digits:
        rtol = max(rtol, 0.5 * 10.0 ** (1 - min(digits)))
    sheets_a, sheets_b = ({s.name: s for s in x.sheets} for x in (a, b))
    names = list(sheets_a) + [n for n in sheets_b if n not in sheets_a]
    out = []
    if sheet is not None:
        if sheet not in names:
            raise CfxlError(f"no sheet named {sheet!r} in {a.source or 'a'} or {b.source or 'b'}")
        names = [sheet]
    elif mode == "all":
        out += _lines(None, *_vba_comparable(a.workbook, b.workbook))
        common = [n for n in sheets_a if n in sheets_b]
        order_b = [n for n in sheets_b if n in sheets_a]
        if common != order_b:
            out.append(Difference(None, "order", "", ", ".join(common), ", ".join(order_b)))
    for name in names:
        x, y = sheets_a.get(name), sheets_b.get(name)
        if x is None or y is None:
            out.append(Difference(name, "sheet", "", x and x.state, y and y.state))
            continue
        if mode == "all":
            if x.state != y.state:
                out.append(Difference(name, "state", "", x.state, y.state))
            out += _lines(name, x.features, y.features)
        out += _cells(x, y, rtol, atol, mode)
    return out


def _vba_comparable(a: list[str], b: list[str]) -> tuple[list[str], list[str]]:
    """Module lines need oletools; compare them only when both sides could read them."""
    has = [any(line.startswith("vba module ") for line in x) for x in (a, b)]
    if all(has):
        return a, b
    return tuple([line for line in x if not line.startswith("vba module ")] for x in (a, b))


def _lines(sheet: str | None, a: list[str], b: list[str]) -> list[Difference]:
    count_a, count_b = Counter(a), Counter(b)
    removed = [line for line in a if count_a[line] > count_b[line]]
    added = [line for line in b if count_b[line] > count_a[line]]
    return ([Difference(sheet, "line", "", line, None) for line in dict.fromkeys(removed)]
            + [Difference(sheet, "line", "", None, line) for line in dict.fromkeys(added)])


def _cells(x: Sheet, y: Sheet, rtol: float, atol: float, mode: str) -> list[Difference]:
    found = []
    cells_b = y.cells
    for ref, old in x.cells.items():
        new = cells_b.get(ref)
        if new is None or (old != new and not _close(old, new, rtol, atol)):
            found.append((ref, old, new))
    found += [(ref, None, new) for ref, new in cells_b.items() if ref not in x.cells]
    if mode != "all":
        formulas = mode == "formulas"
        found = [f for f in found
                 if any(v is not None and (v[0] in FORMULA_KINDS) == formulas for v in f[1:])]
    found.sort(key=lambda f: coordinate_to_tuple(f[0]))
    return [Difference(x.name, "cell", ref, *_shown(old, new)) for ref, old, new in found]


def _close(old: tuple, new: tuple, rtol: float, atol: float) -> bool:
    return old[0] == new[0] == "n" and math.isclose(old[1], new[1], rel_tol=rtol, abs_tol=atol)


def _shown(old: tuple | None, new: tuple | None) -> tuple[str | None, str | None]:
    """The tokens of two values, with all 17 digits when 12 do not tell two numbers apart."""
    shown = [None if v is None else token(v) for v in (old, new)]
    if shown[0] == shown[1]:
        shown = [None if v is None else token(v, 17) for v in (old, new)]
    return shown[0], shown[1]


def format_diff(differences: list[Difference]) -> str:
    """A readable report grouped by sheet: `B2: 1.5 -> 1.75`, `- merged A1:B1`, `+ chart ...`."""
    groups: dict[str | None, list[Difference]] = {}
    for d in differences:
        groups.setdefault(d.sheet, []).append(d)
    out = []
    for sheet, group in groups.items():
        if sheet is None:
            out.append("workbook")
        elif group[0].what == "sheet":
            d = group[0]
            out.append(f"sheet {quote(sheet)}: " + (f"added ({d.new})" if d.old is None else
                                                   f"removed (was {d.old})"))
            continue
        else:
            out.append(f"sheet {quote(sheet)}")
        for d in group:
            if d.what == "cell":
                out.append(f"  {d.where}: {d.old or '(empty)'} -> {d.new or '(empty)'}")
            elif d.what == "line":
                out.append(f"  - {d.old}" if d.new is None else f"  + {d.new}")
            else:
                out.append(f"  {d.what}: {d.old} -> {d.new}")
    n = len(differences)
    out.append(f"{n} difference{'s' if n != 1 else ''}")
    return "\n".join(out) + "\n"

