"""Proof that a workbook says what torch says: LibreOffice recalculation, verification, snapshots, diffs."""
