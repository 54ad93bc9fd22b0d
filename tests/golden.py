"""Golden snapshots: workbooks compared with reviewable text files under tests/snapshots/."""

from __future__ import annotations

from pathlib import Path

import pytest

from openpyxl.utils.cell import coordinate_from_string

from cfxl.proof.diff import diff, format_diff
from cfxl.proof.snapshot import load

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE_HINT = "pytest --update-snapshots (or CFXL_UPDATE_SNAPSHOTS=1) rewrites it"


def check_snapshot(workbook: str | Path, name: str, *, update: bool = False,
                   folder: Path = SNAPSHOTS, head: dict[str, int] | None = None,
                   **tolerance) -> None:
    """Fail with the diff unless workbook matches folder/<name>.txt; with update, rewrite it.

    head: {sheet: rows} keeps only the first rows of long value sheets, so the golden text stays
    reviewable; their structure lines (charts, formats, filters) are kept whole.
    """
    golden = folder / f"{name}.txt"
    snap = load(workbook)
    for sheet in snap.sheets:
        if head and sheet.name in head:
            sheet.cells = {ref: v for ref, v in sheet.cells.items()
                           if coordinate_from_string(ref)[1] <= head[sheet.name]}
    if update:
        folder.mkdir(parents=True, exist_ok=True)
        golden.write_text(snap.to_text(), encoding="utf-8")
        return
    if not golden.exists():
        pytest.fail(f"no golden snapshot {golden}; {UPDATE_HINT}", pytrace=False)
    found = diff(golden, snap, **tolerance)
    if found:
        pytest.fail(f"{workbook} differs from {golden} ({UPDATE_HINT}):\n{format_diff(found)}",
                    pytrace=False)
