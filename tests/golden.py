"""Golden snapshots: workbooks compared with reviewable text files under tests/snapshots/."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfxl.diff import diff, format_diff
from cfxl.snapshot import snapshot

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE_HINT = "pytest --update-snapshots (or CFXL_UPDATE_SNAPSHOTS=1) rewrites it"


def check_snapshot(workbook: str | Path, name: str, *, update: bool = False,
                   folder: Path = SNAPSHOTS, **tolerance) -> None:
    """Fail with the diff unless workbook matches folder/<name>.txt; with update, rewrite it."""
    golden = folder / f"{name}.txt"
    if update:
        folder.mkdir(parents=True, exist_ok=True)
        golden.write_text(snapshot(workbook), encoding="utf-8")
        return
    if not golden.exists():
        pytest.fail(f"no golden snapshot {golden}; {UPDATE_HINT}", pytrace=False)
    found = diff(golden, workbook, **tolerance)
    if found:
        pytest.fail(f"{workbook} differs from {golden} ({UPDATE_HINT}):\n{format_diff(found)}",
                    pytrace=False)
