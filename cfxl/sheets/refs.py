"""A1 references from 0-based (row, col): a cell, an area, a column's letters, a cell on a sheet;
and the lookup value that finds an id by MATCH or COUNTIF as itself."""

from __future__ import annotations

import numpy as np
from xlsxwriter.utility import xl_col_to_name, xl_rowcol_to_cell


def cell(row: int, col: int, *, absolute: str = "") -> str:
    """A1 reference of a 0-based (row, col); absolute='r', 'c' or 'rc' pins row and/or column."""
    return xl_rowcol_to_cell(row, col, row_abs="r" in absolute, col_abs="c" in absolute)


def area(r0: int, c0: int, r1: int, c1: int, *, absolute: str = "") -> str:
    """A1:B2 reference of an inclusive block, both ends pinning the same parts, as $B26:$F26."""
    return f"{cell(r0, c0, absolute=absolute)}:{cell(r1, c1, absolute=absolute)}"


def column(col: int) -> str:
    """The letters of a 0-based column: 0 is A, 26 is AA."""
    return xl_col_to_name(col)


def on_sheet(sheet: str, ref: str) -> str:
    """A reference on a named sheet as a formula writes it: Sheet1!B3, 'my sheet'!B3."""
    return f"{sheet}!{ref}" if sheet.replace("_", "a").isalnum() else f"'{sheet}'!{ref}"


def text_ids(ids) -> bool:
    """Whether ids (a column of raw ids: all text or all numbers) are text."""
    return any(isinstance(i, str) for i in np.asarray(ids, dtype=object).ravel().tolist())


def exact_key(ref: str, text: bool) -> str:
    """ref as MATCH's or COUNTIF's lookup value, matched as itself. Excel and LibreOffice read
    * ? ~ in a text lookup value as wildcards ("a*b" would find "axb"), so where the ids are
    text (text_ids) the value is escaped with ~ (a number in the cell stays a number); numeric
    ids, as MovieLens', keep the plain reference."""
    if not text:
        return ref
    escaped = f'SUBSTITUTE(SUBSTITUTE(SUBSTITUTE({ref},"~","~~"),"*","~*"),"?","~?")'
    return f"IF(ISTEXT({ref}),{escaped},{ref})"
