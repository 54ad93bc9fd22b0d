"""Where everything sits on a graddesc optimizer sheet: the top cells, the epoch table and its
chart in view below them, then the step rows.

A1:B2 stay free for the Reset / Run buttons; the start values b and a sit in D1 and D2 (labels in
C), lr in F1, the optimizer's other settings to its right in pairs (label, value), the note from
L1. From row 4: the "Error by epoch" chart (C4, five columns wide) and, right of it, the table of
the loss per epoch with b and a at each epoch's end and their distance to the true values (the
lesson's adam_ann and eve add their per-epoch numbers). Below that band, the step table: its
headers, the start row (the optimizer's state before the first step), one row per step, epochs
stacked; beside the update, the truth's new b and new a (grey) and their differences.
"""

from __future__ import annotations

from dataclasses import dataclass

from cfxl.records.types.line import LineRecords
from cfxl.sheets.graddesc_cols import Col, Param, lesson_columns, torch_columns

BAND_ROW = 3        # row 4: the epoch table's headers, the chart's top
CHART_COL = 2       # C: the chart's left edge
CHART_COLS = 5      # the chart spans C:G; the epoch table starts at H
CHART_ROWS = 15     # the chart's height in rows (20 px each)
ANNEAL = ("lr", "avg_grad2", "prev_grad2", "gradrat")  # the lesson's adam_ann, per epoch
EVE = ("ft_1", "ft_2", "r", "d")                        # the lesson's eve, per epoch


@dataclass(frozen=True)
class SheetLayout:
    """0-based positions on an optimizer sheet; cols maps a step column's key to its column,
    table an epoch table column's key to its column."""

    params: dict[str, tuple[int, int]]  # top cell key -> (row, col) of its value
    cols: dict[str, int]
    table: dict[str, int]
    n_rows: int                  # data rows per epoch
    epochs: int
    head_row: int                # the step table's headers
    truth_col: int               # truth's new b; new a, then the two differences to its right
    note_col: int = 11           # L1: the note, L2: what to edit (right of the top cells)
    band_row: int = BAND_ROW

    @property
    def start_row(self) -> int:
        """The step table's start row: the state before the first step."""
        return self.head_row + 1

    @property
    def first_row(self) -> int:
        return self.head_row + 2

    def row(self, step: int) -> int:
        """0-based sheet row of a 0-based step."""
        return self.first_row + step

    def epoch_rows(self, epoch: int) -> tuple[int, int]:
        """First and last sheet rows of a 1-based epoch."""
        first = self.first_row + (epoch - 1) * self.n_rows
        return first, first + self.n_rows - 1

    def table_row(self, epoch: int) -> int:
        """The epoch table's row of a 1-based epoch; 0 is its start row."""
        return self.band_row + 1 + epoch

    @property
    def table_col(self) -> int:
        return self.table["epoch"]


def sheet_columns(r: LineRecords) -> tuple[list[Param], list[Col]]:
    return torch_columns(r) if r.rules == "torch" else lesson_columns(r)


def table_keys(r: LineRecords) -> list[str]:
    """The epoch table's columns: epoch, the loss (the sheet's and the truth's), b and a at the
    epoch's end and their distance to the true values, then the lesson's per-epoch extras."""
    keys = ["epoch", "loss", "truth_loss", "b", "a", "b_err", "a_err"]
    if r.opt == "eve":
        keys += EVE
    elif r.epoch_extra:
        keys += ANNEAL
    return keys


def sheet_layout(r: LineRecords) -> SheetLayout:
    params, cols = sheet_columns(r)
    fixed = {"b0": (0, 3), "a0": (1, 3), "lr": (0, 5), "weight_decay": (1, 5)}  # D1 D2 F1 F2
    pos = {p.key: fixed[p.key] for p in params if p.key in fixed}
    rest = [p for p in params if p.key not in fixed]
    pos.update({p.key: (i % 2, 7 + 2 * (i // 2)) for i, p in enumerate(rest)})  # H1, H2, J1, J2
    epochs = int(r.epoch.max())
    table = {k: CHART_COL + CHART_COLS + j for j, k in enumerate(table_keys(r))}
    head = BAND_ROW + max(CHART_ROWS, epochs + 2) + 1  # a blank row under the band
    return SheetLayout(pos, {c.key: j for j, c in enumerate(cols)}, table, len(r.x) // epochs,
                       epochs, head, len(cols) + 1)
