"""Cell helpers shared by the lesson's sheets: their extra formats, ids, references, colour
scales and the line that says how torch produced the numbers."""

from __future__ import annotations

import numpy as np

from cfxl.records.types import LessonRecords
from cfxl.sheets.book import Book, cell

# Formats the lesson's sheets add to Book's shared ones.
LESSON_FORMATS = {
    "title": {"text_wrap": True, "valign": "bottom", "align": "center", "font_size": 8},
    "id": {"bold": True, "num_format": "0", "align": "center"},
    "group": {"bold": True, "italic": True, "font_color": "#1F4E79"},
    "right": {"bold": True, "align": "right"},
    "onehot": {"num_format": "0", "align": "center", "font_color": "#A6A6A6"},
    "hot": {"bold": True, "font_color": "#000000", "bg_color": "#C6EFCE"},
}
TITLE_ROW_HEIGHT = 60  # points: a wrapped 8 pt title of about 45 characters in a 10-wide column


def lesson_formats(book: Book) -> None:
    """Register LESSON_FORMATS with the book once, so `fmt="title"` etc. work like Book's own."""
    for name, spec in LESSON_FORMATS.items():
        if name not in book.formats:
            book.formats[name] = book.wb.add_format(spec)


def write_id(book: Book, ws, row: int, col: int, raw_id, fmt: str = "id") -> None:
    """A raw user or movie id: a number when it is one, else text (never a formula)."""
    if isinstance(raw_id, (int, float, np.integer, np.floating)):
        book.number(ws, row, col, raw_id, fmt)
    else:
        book.text(ws, row, col, raw_id, fmt)


def span(r0: int, c0: int, r1: int, c1: int, *, pin: str = "") -> str:
    """A1:B2 reference whose both ends pin the same parts ('r', 'c' or 'rc'), as $B26:$F26."""
    return f"{cell(r0, c0, absolute=pin)}:{cell(r1, c1, absolute=pin)}"


def rating_scale(ws, ref: str, y_range: tuple[float, float]) -> None:
    """The lesson's red-yellow-green colour scale, pinned to the rating range so grids compare."""
    lo, hi = y_range
    ws.conditional_format(ref, {"type": "3_color_scale", "min_type": "num", "min_value": lo,
                                "mid_type": "num", "mid_value": (lo + hi) / 2,
                                "max_type": "num", "max_value": hi})


def trained_by(rec: LessonRecords, model: str) -> str:
    """The start of a sheet's note: which model, and how torch trained it (or that it did not)."""
    if rec.untrained:
        return f"{model} as initialised by torch (seed {rec.seed}), before any training"
    return (f"{model} trained by torch in float64 on the slice's {len(rec.slice.rows)} ratings "
            f"(Adam, lr {rec.lr:g}, {rec.steps} full-batch steps, seed {rec.seed})")
