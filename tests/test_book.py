"""The workbook writer's own promises: exact numbers, portable formulas, atomic files."""

import numpy as np
import pytest
from openpyxl import load_workbook

from cfxl.errors import CfxlError
from cfxl.workbooks import write_workbook


def test_numbers_are_written_exactly(tmp_path):
    values = [0.1, 1 / 3, 2.0 ** -40, 0.24457482248555035, 1e300, -7.0, np.pi * 1e17]

    def build(book):
        ws = book.sheet("t", "exact numbers")
        for i, v in enumerate(values):
            book.number(ws, i + 2, 0, v)
            book.formula(ws, i + 2, 1, f"=A{i + 3}", v)
    path = write_workbook(tmp_path / "n.xlsx", build)
    ws = load_workbook(path)["t"]
    assert [ws.cell(i + 3, 1).value for i in range(len(values))] == values


@pytest.mark.parametrize("formula", ["=XLOOKUP(1,A1:A2,B1:B2)", "=SUM(SEQUENCE(3))",
                                     "=LET(x,1,x+1)"])
def test_dynamic_array_functions_are_refused_and_nothing_is_left(tmp_path, formula):
    def build(book):
        book.formula(book.sheet("t", "note"), 2, 0, formula, 1.0)
    with pytest.raises(ValueError, match="not computed alike"):
        write_workbook(tmp_path / "d.xlsx", build)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_workbook_is_kept_unless_forced(tmp_path):
    path = tmp_path / "b.xlsx"
    path.write_bytes(b"mine")
    with pytest.raises(CfxlError, match="exists; pass --force"):
        write_workbook(path, lambda book: book.sheet("t", "x"))
    assert path.read_bytes() == b"mine"
    write_workbook(path, lambda book: book.sheet("t", "x"), force=True)
    assert load_workbook(path).sheetnames == ["t"]
    with pytest.raises(CfxlError, match="suffix .xlsx or .xlsm"):
        write_workbook(tmp_path / "b.csv", lambda book: None)
