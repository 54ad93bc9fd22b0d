"""Workbook snapshots: canonical text of every cell and structure, stable across saves; diff
with tolerance and filters; golden snapshots; the CLI. (.xlsm files: test_snapshot_xlsm.py.)"""

import datetime
import re
import time
import zipfile

import openpyxl
import pytest
from click.testing import CliRunner
from openpyxl.chart import LineChart, Reference, ScatterChart, Series
from openpyxl.comments import Comment
from openpyxl.formatting.rule import ColorScaleRule
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.formula import ArrayFormula

from cfxl.cli import cli
from cfxl.proof.diff import diff, format_diff
from cfxl.errors import CfxlError
from cfxl.proof.snapshot import load, parse, snapshot


def make_workbook(path, *, change=None):
    """A small workbook with every kind of thing a snapshot records; change(wb) edits it first."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "loss"
    ws.append(["epoch", "loss", "lr"])
    for epoch in range(1, 6):
        ws.append([epoch, 1 / epoch, 0.1 * epoch])
    ws["E1"] = "=SUM(B2:B6)"
    ws["E2"] = "=SUM(1)"
    ws["E2"].data_type = "s"  # text that looks like a formula
    ws["E3"], ws["E4"], ws["E5"] = True, "#DIV/0!", datetime.datetime(2024, 1, 2, 3, 4, 5)
    ws["E6"] = 'say "hi"\nthen leave'
    ws["F1"] = ArrayFormula("F1:G2", "=MMULT(A2:B3,A2:B3)")
    ws.merge_cells("A8:C8")
    ws["A8"] = "merged"
    wb.defined_names["total"] = DefinedName("total", attr_text="loss!$E$1")
    ws.defined_names["lr0"] = DefinedName("lr0", attr_text="loss!$C$2")
    dv = DataValidation(type="decimal", operator="between", formula1="0", formula2="1")
    dv.add("C2:C6")
    ws.add_data_validation(dv)
    ws.conditional_formatting.add("B2:B6", ColorScaleRule(
        start_type="min", start_color="F8696B", mid_type="percentile", mid_value=50,
        mid_color="FFEB84", end_type="max", end_color="63BE7B"))
    ws.freeze_panes = "B2"
    ws.auto_filter.ref = "A1:C6"
    line = LineChart()
    line.title, line.x_axis.title, line.y_axis.title = "Loss by epoch", "epoch", "loss"
    line.add_data(Reference(ws, min_col=2, min_row=1, max_row=6), titles_from_data=True)
    line.set_categories(Reference(ws, min_col=1, min_row=2, max_row=6))
    ws.add_chart(line, "J2")
    scatter = ScatterChart()
    scatter.title = "lr"
    scatter.series.append(Series(Reference(ws, min_col=3, min_row=2, max_row=6),
                                 Reference(ws, min_col=1, min_row=2, max_row=6), title="lr"))
    ws.add_chart(scatter, "J20")
    ws["B2"].comment = Comment("the first loss", "cfxl")
    hidden = wb.create_sheet("_torch")
    hidden.sheet_state = "hidden"
    hidden["A1"] = 2.5
    if change:
        change(wb)
    wb.save(path)
    return path


@pytest.fixture
def book(tmp_path):
    return make_workbook(tmp_path / "book.xlsx")


def test_snapshot_records_cells_typed_and_the_structure(book):
    text = snapshot(book)
    lines = text.splitlines()
    assert lines[0] == "# cfxl snapshot v1, numbers to 12 significant digits"
    for line in ['sheet "loss" A1:F8 visible', 'sheet "_torch" A1:A1 hidden', "  name total = loss!$E$1",
                 "  vba absent", "  freeze B2", "  autofilter A1:C6", "  merged A8:C8",
                 "  name lr0 = loss!$C$2", "  validation C2:C6 decimal between 0 and 1",
                 "  format B2:B6 colorScale min 00F8696B, percentile 50 00FFEB84, max 0063BE7B",
                 '  chart J2 lineChart title "Loss by epoch" x "epoch" y "loss"',
                 "  chart J2 series ='loss'!B1 cat 'loss'!$A$2:$A$6 val 'loss'!$B$2:$B$6",
                 '  chart J20 scatterChart title "lr"',
                 '  chart J20 series "lr" x \'loss\'!$A$2:$A$6 y \'loss\'!$C$2:$C$6',
                 '  comment B2 "the first loss" by "cfxl"',
                 '  A1 "epoch"', "  A2 1", "  C4 0.3", "  B4 0.333333333333",
                 "  E1 =SUM(B2:B6)", '  E2 "=SUM(1)"', "  E3 TRUE", "  E4 #DIV/0!",
                 "  E5 datetime 2024-01-02T03:04:05", '  E6 "say \\"hi\\"\\nthen leave"',
                 "  F1 {=MMULT(A2:B3,A2:B3)} F1:G2", "  A1 2.5"]:
        assert line in lines, line
    # the text cell that looks like a formula really is text in the file
    sheet_xml = zipfile.ZipFile(book).read("xl/worksheets/sheet1.xml").decode()
    assert re.search(r'<c r="E2" t="inlineStr"><is><t>=SUM\(1\)</t>', sheet_xml)


def test_text_reads_back_to_the_same_content(book):
    text = snapshot(book)
    assert parse(text).to_text() == text
    assert snapshot(book, digits=4).splitlines()[0].endswith("numbers to 4 significant digits")
    assert "  B4 0.3333" in snapshot(book, digits=4).splitlines()


def test_same_content_saved_twice_gives_the_same_text(tmp_path):
    def stamp(when):
        def change(wb):
            wb.properties.created = when
            wb.properties.creator = f"someone at {when}"
        return change
    a = make_workbook(tmp_path / "a.xlsx", change=stamp(datetime.datetime(2020, 1, 1)))
    b = make_workbook(tmp_path / "b.xlsx", change=stamp(datetime.datetime(2024, 6, 30, 12)))
    core = [zipfile.ZipFile(p).read("docProps/core.xml") for p in (a, b)]
    assert core[0] != core[1]
    assert snapshot(a) == snapshot(b)
    assert diff(a, b) == []


def changed(tmp_path, name, change):
    return make_workbook(tmp_path / f"{name}.xlsx", change=change)


def set_cells(**cells):
    def change(wb):
        for ref, value in cells.items():
            wb["loss"][ref] = value
    return change


def test_numbers_compare_within_tolerance(book, tmp_path):
    near = changed(tmp_path, "near", set_cells(B3=0.5 * (1 + 1e-11)))
    far = changed(tmp_path, "far", set_cells(B3=0.5001))
    assert diff(book, near) == []
    found = diff(book, far)
    assert [(d.sheet, d.where, d.old, d.new) for d in found] == [("loss", "B3", "0.5", "0.5001")]
    assert diff(book, far, rtol=1e-3) == []
    assert format_diff(found) == 'sheet "loss"\n  B3: 0.5 -> 0.5001\n1 difference\n'


def test_formula_cell_and_sheet_changes_are_reported(book, tmp_path):
    def change(wb):
        wb["loss"]["E1"] = "=SUM(B2:B5)"
        wb["loss"]["H9"] = "new"
        wb["loss"].unmerge_cells("A8:C8")
        wb.create_sheet("extra")["A1"] = 1
    other = changed(tmp_path, "other", change)
    report = format_diff(diff(book, other))
    assert report == ('sheet "loss"\n  - merged A8:C8\n  E1: =SUM(B2:B6) -> =SUM(B2:B5)\n'
                      '  H9: (empty) -> "new"\nsheet "extra": added (visible)\n4 differences\n')
    assert "extra" in format_diff(diff(other, book))  # removed the other way round
    assert "removed" in format_diff(diff(other, book))


def test_filters_by_sheet_and_by_values_or_formulas(book, tmp_path):
    def change(wb):
        wb["loss"]["E1"] = "=SUM(B2:B5)"
        wb["loss"]["A2"] = 10
        wb["loss"]["C3"] = "=A3/10"  # a value became a formula
        wb["_torch"]["A1"] = 3.5
    other = changed(tmp_path, "other", change)
    where = lambda found: [(d.sheet, d.where) for d in found]  # noqa: E731
    assert where(diff(book, other)) == [("loss", "E1"), ("loss", "A2"), ("loss", "C3"),
                                        ("_torch", "A1")]
    assert where(diff(book, other, sheet="_torch")) == [("_torch", "A1")]
    assert where(diff(book, other, mode="values")) == [("loss", "A2"), ("loss", "C3"),
                                                       ("_torch", "A1")]
    assert where(diff(book, other, mode="formulas")) == [("loss", "E1"), ("loss", "C3")]
    with pytest.raises(CfxlError, match="no sheet named 'nope'"):
        diff(book, other, sheet="nope")


def test_workbook_equals_its_own_snapshot_file(book, tmp_path):
    saved = tmp_path / "book.txt"
    saved.write_text(snapshot(book))
    assert diff(book, saved) == [] and diff(saved, book) == [] and diff(saved, saved) == []
    far = changed(tmp_path, "far", set_cells(B4=0.3334))
    assert [d.where for d in diff(saved, far)] == ["B4"]


def test_cli_snapshot_and_diff_exit_codes(book, tmp_path):
    run = lambda *args: CliRunner().invoke(cli, [str(a) for a in args])  # noqa: E731
    out = tmp_path / "book.txt"
    assert run("snapshot", book, "-o", out).exit_code == 0
    assert out.read_text() == snapshot(book)
    refused = run("snapshot", book, "-o", out)
    assert refused.exit_code == 1 and "--force" in refused.output
    assert run("snapshot", book, "-o", out, "--force").exit_code == 0
    assert run("snapshot", book).output == snapshot(book)

    same = run("diff", book, out)
    assert (same.exit_code, same.output) == (0, "no differences (rtol 1e-09, atol 1e-12)\n")
    far = changed(tmp_path, "far", set_cells(B3=0.6))
    different = run("diff", book, far)
    assert (different.exit_code, different.output) == (
        1, 'sheet "loss"\n  B3: 0.5 -> 0.6\n1 difference\n')
    assert run("diff", book, far, "--rtol", "0.5").exit_code == 0
    assert run("diff", book, far, "--formulas-only").exit_code == 0
    assert run("diff", book, far, "--values-only").exit_code == 1
    assert run("diff", book, far, "--sheet", "_torch").exit_code == 0

    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    for bad, message in [(tmp_path / "missing.xlsx", "no such file"),
                         (tmp_path / "notes.txt", "not a workbook"),
                         (tmp_path / "broken.xlsx", "cannot read it as a workbook")]:
        result = run("diff", book, bad)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_golden_snapshot(book, assert_matches_snapshot):
    assert_matches_snapshot(book, "features")


def test_a_damaged_snapshot_file_is_located_by_line(book, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text(snapshot(book).replace("  B4 0.333333333333", "  B4 zero"))
    line = snapshot(book).splitlines().index("  B4 0.333333333333") + 1
    with pytest.raises(CfxlError, match=f"bad.txt: line {line}: cannot read 'B4 zero'"):
        load(bad)


def test_golden_snapshot_failure_shows_the_diff(book, tmp_path):
    from golden import check_snapshot

    check_snapshot(book, "features", update=True, folder=tmp_path)
    far = changed(tmp_path, "far", set_cells(B3=0.6))
    with pytest.raises(pytest.fail.Exception, match=r"B3: 0\.5 -> 0\.6"):
        check_snapshot(far, "features", folder=tmp_path)
    with pytest.raises(pytest.fail.Exception, match="--update-snapshots"):
        check_snapshot(book, "missing", folder=tmp_path)


def test_100k_cells_diff_in_a_few_seconds(tmp_path, capsys):
    def big(path, changed_value):
        wb = openpyxl.Workbook(write_only=True)
        ws = wb.create_sheet("big")
        for r in range(1, 10_001):
            ws.append([r * 0.1, r, f"s{r}", f"=A{r}*2", r / 3, r % 2 == 0, "x",
                       f"=SUM(A{r}:B{r})", 1.5, changed_value if r == 5000 else r])
        wb.save(path)
        return path
    a, b = big(tmp_path / "a.xlsx", 5000), big(tmp_path / "b.xlsx", 5001)
    start = time.perf_counter()
    found = diff(a, b)
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\ndiff of two 100,000-cell workbooks: {seconds:.2f} s")
    assert [(d.where, d.old, d.new) for d in found] == [("J5000", "5000", "5001")]
    assert seconds < 30
    assert len(load(a).sheets[0].cells) == 100_000
