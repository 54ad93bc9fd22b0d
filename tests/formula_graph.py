"""A workbook's formulas as a graph: which cells each formula reads, and which editable
(yellow) cells each formula depends on, directly or through other formulas (`Graph.sig`, a
bitset over the yellow cells), for tests/test_editable.py.

References are read with openpyxl's tokenizer: cells, ranges, other sheets' cells and defined
names (the workbook's and a sheet's own). A lookup reads its whole table until the values of its
arguments are known (Graph.resolve, after a recompute): then INDEX reads the one cell it picks,
and a cell of MMULT(a, b) the cells of b that meet a non-zero a.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from openpyxl.formula.tokenizer import Token, Tokenizer
from openpyxl.utils.cell import get_column_letter, range_boundaries
from openpyxl.worksheet.formula import ArrayFormula

from cfxl.sheets.styles import EDITABLE

YELLOW = "FF" + EDITABLE.lstrip("#").upper()  # openpyxl's ARGB of the editable fill
# A yellow cell no formula reads passes only beside a label saying it is a start value (read by
# a macro, not by formulas): the nearest text to its left in its row, or above it in its column.
START_LABEL = re.compile(r"\bstart values?\b", re.IGNORECASE)
# References made at run time, which a static graph cannot see; values that move on their own
UNTRACEABLE = ("INDIRECT", "OFFSET", "RAND", "RANDBETWEEN", "NOW", "TODAY")
BIG = 4096  # ranges larger than this are matched against the sheet's nodes, not enumerated

Cell = tuple[str, int, int]  # (sheet, row, column), 1-based


def a1(cell: Cell) -> str:
    return f"{get_column_letter(cell[2])}{cell[1]}"


def is_yellow(c) -> bool:
    fill = c.fill
    return fill is not None and fill.fill_type == "solid" and fill.fgColor.rgb == YELLOW


@dataclass
class Lookup:
    """A formula's read of one cell of a table, found once the arguments' values are known:
    INDEX(table, row, column), or one cell (i, j) of MMULT(a, b) (it reads b[k][j] only where
    a[i][k] may be non-zero)."""

    kind: str                # "index" or "mmult"
    table: list[list[Cell]]  # INDEX's table, MMULT's b
    args: list               # INDEX: Cell or float each; MMULT: a's row i (cells), and j


@dataclass
class Graph:
    """A workbook's formulas as a graph over its formula cells and its yellow cells."""

    path: Path
    yellow: list[Cell] = field(default_factory=list)   # bit i of a signature is yellow[i]
    values: dict[Cell, object] = field(default_factory=dict)    # yellow cell -> its value
    formulas: dict[Cell, str] = field(default_factory=dict)     # formula cell -> its text
    direct: dict[Cell, set[Cell]] = field(default_factory=dict)  # formula -> cells it reads
    lookups: dict[Cell, list[Lookup]] = field(default_factory=dict)
    reads: dict[Cell, set[Cell]] = field(default_factory=dict)  # direct + what lookups read
    sig: dict[Cell, int] = field(default_factory=dict)          # formula -> yellow bits it reads
    text: dict[str, dict[tuple[int, int], str]] = field(default_factory=dict)  # labels by sheet

    referenced: int = 0   # the yellow cells some formula references (bits), before resolve

    def documented(self, cell: Cell) -> bool:
        """Whether the label beside cell calls it a start value (START_LABEL): the nearest text
        left of it in its row, or above it in its column."""
        sheet, row, col = cell
        text = self.text.get(sheet, {})
        left = next((text[row, c] for c in range(col - 1, 0, -1) if (row, c) in text), "")
        above = next((text[r, col] for r in range(row - 1, 0, -1) if (r, col) in text), "")
        return bool(START_LABEL.search(left) or START_LABEL.search(above))

    def note_right(self, cell: Cell) -> str:
        """The first text within three cells right of cell (a note: "sgd, momentum or adam")."""
        sheet, row, col = cell
        text = self.text.get(sheet, {})
        return next((text[row, c] for c in range(col + 1, col + 4) if (row, c) in text), "")

    def resolve(self, values: dict[str, dict[str, object]]) -> None:
        """Narrow each lookup to the cells it reads, given a recompute's values (a Recalculated's
        values); an argument that depends on a yellow cell keeps the whole table."""
        def known(arg):
            if isinstance(arg, float):
                return arg
            v = values.get(arg[0], {}).get(a1(arg))
            steady = not self.sig.get(arg, 0) and arg not in self.values  # no yellow cell moves it
            return v if isinstance(v, float) and steady else None

        for key, lookups in self.lookups.items():
            reads = set(self.direct[key])
            for look in lookups:
                if look.kind == "mmult":
                    row, j = look.args
                    reads.update(look.table[k][j] for k, a in enumerate(row)
                                 if known(a) != 0.0)
                    continue
                at = [known(a) for a in look.args]
                rows, cols = len(look.table), len(look.table[0])
                if len(at) == 1 and (rows == 1 or cols == 1):
                    at = [at[0], 1.0] if cols == 1 else [1.0, at[0]]
                if len(at) == 2 and None not in at and 1 <= at[0] <= rows and 1 <= at[1] <= cols:
                    reads.add(look.table[int(at[0]) - 1][int(at[1]) - 1])
                else:
                    reads.update(c for line in look.table for c in line)
            self.reads[key] = {c for c in reads if c in self.formulas or c in self.values}
        self.sig.clear()
        _sign(self)


def read_graph(path: Path) -> Graph:
    """Every yellow cell and formula of the workbook at path, and what each formula reads
    (lookups read their whole table until Graph.resolve narrows them)."""
    wb = openpyxl.load_workbook(path, read_only=True)
    graph = Graph(Path(path))
    arrays, names = [], {}
    for ws in wb.worksheets:
        text = graph.text.setdefault(ws.title, {})
        names[ws.title] = {n.lower(): list(d.destinations) for n, d in ws.defined_names.items()}
        for row in ws.iter_rows():
            for c in row:
                v = c.value
                if v is None and not (hasattr(c, "fill") and is_yellow(c)):
                    continue  # a blank cell, unless a reader is invited to fill it in
                key = (ws.title, c.row, c.column)
                if isinstance(v, ArrayFormula):
                    arrays.append((ws.title, v))
                elif c.data_type == "f":
                    graph.formulas[key] = v
                elif isinstance(v, str):
                    text[c.row, c.column] = v
                if is_yellow(c):
                    graph.yellow.append(key)
                    graph.values[key] = v
    names[None] = {n.lower(): list(d.destinations) for n, d in wb.defined_names.items()}
    wb.close()
    blocks = {}
    for sheet, v in arrays:  # every cell of the block holds the formula
        c0, r0, c1, r1 = range_boundaries(v.ref)
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                graph.formulas[sheet, r, c] = v.text
                blocks[sheet, r, c] = (r - r0, c - c0)
    _link(graph, names, blocks)
    graph.reads = {k: set(v) for k, v in graph.direct.items()}
    for key, lookups in graph.lookups.items():
        graph.reads[key].update(c for look in lookups for line in look.table for c in line
                                if c in graph.formulas or c in graph.values)
    _sign(graph)
    for s in set(graph.sig.values()):
        graph.referenced |= s
    return graph


def _link(graph: Graph, names: dict, blocks: dict) -> None:
    """graph.direct and graph.lookups: what each formula references."""
    nodes: dict[str, set[tuple[int, int]]] = {}
    for sheet, r, c in [*graph.formulas, *graph.yellow]:
        nodes.setdefault(sheet, set()).add((r, c))

    def where(token: str, home: str) -> list[tuple[str, tuple[int, int, int, int]]]:
        sheet, _, ref = token.rpartition("!")
        sheet = sheet.strip("'").replace("''", "'") if sheet else home
        dests = (names.get(sheet, {}).get(ref.lower()) or names[None].get(ref.lower())
                 or [(sheet, ref)])
        out = []
        for s, ref in dests:
            try:
                bounds = range_boundaries(ref.replace("$", ""))
            except ValueError:  # a name for a constant, or an unknown one (#NAME?): no cell
                continue
            out.append((s, tuple(b if b is not None else d
                                 for b, d in zip(bounds, (1, 1, 16384, 1 << 20)))))
        return out

    def cells(sheet: str, box) -> list[Cell]:
        c0, r0, c1, r1 = box
        here = nodes.get(sheet, set())
        if (r1 - r0 + 1) * (c1 - c0 + 1) > BIG:
            return [(sheet, r, c) for r, c in here if r0 <= r <= r1 and c0 <= c <= c1]
        return [(sheet, r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)
                if (r, c) in here]

    def one_cell(token: Token, home: str) -> Cell | None:
        if token.subtype != Token.RANGE:
            return None
        dests = where(token.value, home)
        if len(dests) != 1:
            return None
        sheet, (c0, r0, c1, r1) = dests[0]
        return (sheet, r0, c0) if (c0, r0) == (c1, r1) else None

    def grid(sheet: str, box) -> list[list[Cell]]:
        c0, r0, c1, r1 = box
        return [[(sheet, r, c) for c in range(c0, c1 + 1)] for r in range(r0, r1 + 1)]

    for key, formula in graph.formulas.items():
        direct, lookups = set(), []
        graph.direct[key] = direct
        items = [t for t in Tokenizer(formula).items if t.type != Token.WSPACE]
        skip = set()
        for i, token in enumerate(items):
            if token.type == Token.FUNC and token.subtype == Token.OPEN:
                name = token.value.rstrip("(").upper()
                if name in UNTRACEABLE:
                    raise AssertionError(f"{graph.path.name} {key[0]}!{a1(key)}: {formula}: "
                                         f"{name} makes references at run time or moves on its "
                                         "own; this test cannot tell what drives it")
                args = _args(items, i)
                if name == "INDEX" and args and len(args) in (2, 3) and all(
                        len(a) == 1 for a in args):
                    table = args[0][0]
                    found = where(table.value, key[0]) if table.subtype == Token.RANGE else []
                    if table.type == Token.OPERAND and len(found) == 1:
                        (sheet, box), = found
                        rest = [float(a[0].value) if a[0].subtype == Token.NUMBER
                                else one_cell(a[0], key[0]) for a in args[1:]]
                        if None not in rest:
                            lookups.append(Lookup("index", grid(sheet, box), rest))
                            skip.add(id(table))
                elif name == "MMULT" and key in blocks and len(args) == 2 and all(
                        len(a) == 1 and a[0].subtype == Token.RANGE
                        and len(where(a[0].value, key[0])) == 1 for a in args):
                    (sa, a), = where(args[0][0].value, key[0])
                    (sb, b), = where(args[1][0].value, key[0])
                    i_, j_ = blocks[key]
                    row = grid(sa, a)[i_]
                    direct.update(row)
                    lookups.append(Lookup("mmult", grid(sb, b), [row, j_]))
                    skip.update({id(args[0][0]), id(args[1][0])})
            if token.type != Token.OPERAND or token.subtype != Token.RANGE or id(token) in skip:
                continue
            for sheet, box in where(token.value, key[0]):
                direct.update(cells(sheet, box))
        direct.discard(key)
        if lookups:
            graph.lookups[key] = lookups


def _args(items: list[Token], open_at: int) -> list[list[Token]] | None:
    """The tokens of each argument of the function opened at items[open_at]."""
    args, depth = [[]], 0
    for token in items[open_at + 1:]:
        if token.type in (Token.FUNC, Token.PAREN) and token.subtype == Token.OPEN:
            depth += 1
        elif token.type in (Token.FUNC, Token.PAREN) and token.subtype == Token.CLOSE:
            if depth == 0:
                return args
            depth -= 1
        elif token.type == Token.SEP and token.subtype == Token.ARG and depth == 0:
            args.append([])
            continue
        args[-1].append(token)
    return None


def _sign(graph: Graph) -> None:
    """graph.sig: for each formula, the yellow cells it depends on, as bits (depth first, no
    recursion: a training run unrolled in rows is a chain thousands of formulas long)."""
    bit = {cell: 1 << i for i, cell in enumerate(graph.yellow)}
    sig, open_ = graph.sig, set()
    for start in graph.formulas:
        stack = [(start, False)]
        while stack:
            key, done = stack.pop()
            if key in sig:
                continue
            if done:
                open_.discard(key)
                out = 0
                for p in graph.reads[key]:
                    out |= bit.get(p, 0) | sig.get(p, 0)
                sig[key] = out
                continue
            open_.add(key)  # a circular reference stops here
            stack.append((key, True))
            stack.extend((p, False) for p in graph.reads[key]
                         if p in graph.formulas and p not in sig and p not in open_)
