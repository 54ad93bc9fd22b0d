"""LibreOffice recomputes cfxl's formulas: values equal numpy's, no cached value is trusted, errors
are located, and `cfxl recalc --verify` checks a workbook against the torch values it carries; a
sheet LibreOffice did not read whole is named; -o never replaces a file unasked; and without
the uno bridge, soffice --convert-to round trips give the same values."""

import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from openpyxl.worksheet.formula import ArrayFormula

from cfxl.proof import recalc as lo
from cfxl.cli import cli
from cfxl.errors import CfxlError
from cfxl.proof.verify import add_torch_values, verify

rng = np.random.default_rng(0)
X = rng.normal(size=(3, 3))  # A1:C3
W = rng.normal(size=3)  # E1:E3, a column
R = rng.normal(size=3)  # G1:I1, a row
TARGET = [4.0, None, 2.5, None, 3.0]  # Q1:Q5; None = not rated, a blank cell
PRED = rng.normal(size=5) + 3  # R1:R5
IDS, VALS = [10, 20, 30, 40], rng.normal(size=4)  # U1:U4, V1:V4
ERR = np.array([p - t for p, t in zip(PRED, TARGET) if t is not None])

# cell: (formula, numpy's value); the formulas the lesson's sheets are built from
FORMULAS = {
    "K1": ("=MMULT(G1:I1,E1:E3)", R @ W),
    "K2": ("=SUMPRODUCT(A1:C1,G1:I1)", X[0] @ R),
    "K3": ("=SUMSQ(A1:C3)", (X ** 2).sum()),
    "K4": ("=SQRT(SUMSQ(S1:S5)/COUNT(S1:S5))", np.sqrt((ERR ** 2).mean())),
    "K5": ("=EXP(A1)", np.exp(X[0, 0])),
    "K6": ("=MAX(A1:C3)", X.max()),
    "K7": ("=COUNT(S1:S5)", float(len(ERR))),
    "K8": ("=INDEX(V1:V4,MATCH(30,U1:U4,0))", VALS[2]),
    "K9": ("=SUM(OFFSET(A1,1,1,2,2))", X[1:, 1:].sum()),
    "S1": ('=IF(Q1="","",R1-Q1)', ERR[0]),
    "S3": ('=IF(Q3="","",R3-Q3)', ERR[1]),
    "S5": ('=IF(Q5="","",R5-Q5)', ERR[2]),
}
BLOCK, BLOCK_VALUE = "M1:O3", X @ X  # a legacy array formula


def write_book(path, torch=None):
    """The test workbook; torch: {sheet: {cell or block: value}} for its _torch sheet."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "calc"
    for (i, j), x in np.ndenumerate(X):
        ws.cell(i + 1, j + 1, float(x))
    for i in range(3):
        ws.cell(i + 1, 5, float(W[i]))
        ws.cell(1, 7 + i, float(R[i]))
    for i, (t, p) in enumerate(zip(TARGET, PRED), start=1):
        ws[f"Q{i}"], ws[f"R{i}"] = t, float(p)
        ws[f"S{i}"] = f'=IF(Q{i}="","",R{i}-Q{i})'
    for i, (k, v) in enumerate(zip(IDS, VALS), start=1):
        ws[f"U{i}"], ws[f"V{i}"] = k, float(v)
    for cell, (formula, _) in FORMULAS.items():
        ws[cell] = formula
    ws["M1"] = ArrayFormula(BLOCK, "=MMULT(A1:C3,A1:C3)")
    if torch:
        add_torch_values(wb, torch)
    wb.save(path)
    return path


def torch_values(**perturb):
    values = {cell: value for cell, (_, value) in FORMULAS.items()}
    return {"calc": {**values, BLOCK: BLOCK_VALUE, **perturb}}


def assert_close(got, want, rtol=1e-12):
    assert isinstance(got, float) and abs(got - want) <= rtol * abs(want), (got, want)


@pytest.fixture(scope="module")
def converter():
    """LibreOffice without UNO: soffice --convert-to round trips (where no Python imports uno)."""
    try:
        lo.find_soffice()
    except CfxlError as e:
        if os.environ.get("CFXL_CI"):
            pytest.fail(f"CI must recompute workbooks: {e}")
        pytest.skip(str(e))
    with lo.Engine(via="convert", timeout=120) as engine:
        yield engine


def test_recomputed_values_equal_numpys(engine, tmp_path):
    book = engine.recalc(write_book(tmp_path / "calc.xlsx"))
    values = book.values["calc"]
    for cell, (_, want) in FORMULAS.items():
        assert_close(values[cell], want)
    for (i, j), want in np.ndenumerate(BLOCK_VALUE):
        assert_close(values["MNO"[j] + str(i + 1)], want)
    assert values["S2"] == values["S4"] == ""  # IF over a blank gives "", which COUNT skips
    assert book.formulas["calc"] >= set(FORMULAS) and book.errors == []


def test_a_stale_cached_value_is_recomputed_not_trusted(engine, tmp_path):
    wb = openpyxl.Workbook()
    wb.active["A1"], wb.active["B1"] = 2, "=A1*3"
    wb.save(tmp_path / "plain.xlsx")
    with zipfile.ZipFile(tmp_path / "plain.xlsx") as src, \
            zipfile.ZipFile(tmp_path / "stale.xlsx", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, n = re.subn(rb"<f>A1\*3</f><v\s*/>", b"<f>A1*3</f><v>999</v>", data)
                assert n == 1
            dst.writestr(item, data)
    assert openpyxl.load_workbook(tmp_path / "stale.xlsx", data_only=True).active["B1"].value == 999
    assert engine.recalc(tmp_path / "stale.xlsx").values["Sheet"]["B1"] == 6.0


def broken_book(path):
    wb = openpyxl.Workbook()
    wb.active.title = "Bad sheet"
    wb.active["C2"], wb.active["D3"], wb.active["A1"] = "=1/0", "=NOSUCHFUNC(1)", "=A2+1"
    wb.create_sheet("ok")["A1"] = "=ROUND(2.5,0)"
    wb.save(path)
    return path


def test_formula_errors_are_reported_with_sheet_and_cell(engine, tmp_path):
    book = engine.recalc(broken_book(tmp_path / "broken.xlsx"))
    assert book.errors == [("Bad sheet", "C2", "#DIV/0!"), ("Bad sheet", "D3", "#NAME?")]
    assert book.values["Bad sheet"]["C2"] == "#DIV/0!" and book.values["ok"]["A1"] == 3.0


def test_output_keeps_formulas_and_holds_the_computed_values(engine, tmp_path):
    out = tmp_path / "out.xlsx"
    engine.recalc(write_book(tmp_path / "calc.xlsx"), output=out)
    assert openpyxl.load_workbook(out)["calc"]["K2"].value == FORMULAS["K2"][0]
    assert_close(openpyxl.load_workbook(out, data_only=True)["calc"]["K2"].value,
                 FORMULAS["K2"][1], rtol=1e-14)  # a file stores 15 significant digits


def test_verify_passes_on_torch_values_and_names_what_is_off(engine, tmp_path):
    report = verify(engine.recalc(write_book(tmp_path / "ok.xlsx", torch_values())))
    assert report.ok and report.sheets["calc"].checked == len(FORMULAS) + 9
    assert 0 <= report.sheets["calc"].max_rel_err <= 1e-12

    off = torch_values(K2=FORMULAS["K2"][1] * (1 + 1e-9), A1=X[0, 0], Z9=1.0)
    report = verify(engine.recalc(write_book(tmp_path / "off.xlsx", off)))
    assert [(m.sheet, m.cell, m.problem) for m in report.failures] == [
        ("calc", "K2", "relative error 1e-09 > 1e-12"),
        ("calc", "A1", "not a formula"),
        ("calc", "Z9", "empty, not a formula")]
    assert verify(engine.recalc(tmp_path / "off.xlsx"), rtol=1e-6).failures[0].cell == "A1"


def test_add_torch_values_checks_block_shapes():
    with pytest.raises(ValueError, match=r"calc!B2:C3: need 2x2 finite numbers"):
        add_torch_values(openpyxl.Workbook(), {"calc": {"B2:C3": [1.0, 2.0, 3.0]}})
    with pytest.raises(ValueError, match="finite"):
        add_torch_values(openpyxl.Workbook(), {"calc": {"B2": float("nan")}})


@pytest.fixture
def run(engine, monkeypatch):
    """`cfxl recalc ...` on the session's warm LibreOffice."""
    one_off = lo.recalc
    monkeypatch.setattr(lo, "recalc", lambda path, output=None, force=False: one_off(
        path, output=output, force=force, engine=engine))
    return lambda *args: CliRunner().invoke(cli, ["recalc", *map(str, args)])


def test_cli_verify_prints_cells_checked_and_largest_error_per_sheet(run, tmp_path):
    result = run(write_book(tmp_path / "ok.xlsx", torch_values()), "--verify")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(r".*ok\.xlsx: 23 formulas in 2 sheets recomputed by LibreOffice in .* s",
                        lines[0])
    assert lines[1:3] == ["against torch (rtol 1e-12, atol 1e-15):", "sheet  cells  max rel err"]
    assert re.fullmatch(r" calc     21  +\d.*", lines[3])
    assert lines[4:] == ["ok: no formula errors; 21 cells equal torch's values (rtol 1e-12)"]


def test_cli_verify_fails_naming_the_cell_off_torch(run, tmp_path):
    off = torch_values(K2=FORMULAS["K2"][1] * (1 + 1e-9))
    result = run(write_book(tmp_path / "off.xlsx", off), "--verify", "--rtol", "1e-10")
    assert result.exit_code == 1
    assert re.search(r"^calc!K2: LibreOffice .*, torch .*: relative error 1e-09 > 1e-10$",
                     result.output, re.M)
    assert result.output.endswith("off.xlsx: 1 cell off torch's values\n")
    assert run(tmp_path / "off.xlsx", "--verify", "--rtol", "1e-8").exit_code == 0


def test_cli_reports_formula_errors_and_exits_1(run, tmp_path):
    result = run(broken_book(tmp_path / "broken.xlsx"), "-o", tmp_path / "out.ods")
    assert result.exit_code == 1
    assert "'Bad sheet'!C2: #DIV/0!\n'Bad sheet'!D3: #NAME?\n" in result.output
    assert f"saved {tmp_path / 'out.ods'}" in result.output and (tmp_path / "out.ods").exists()
    assert result.output.endswith("broken.xlsx: 2 formula errors\n")


def test_user_mistakes_are_one_line_errors(run, tmp_path):
    (tmp_path / "notes.xlsx").write_text("not a zip")
    with zipfile.ZipFile(tmp_path / "zip.xlsx", "w") as zf:
        zf.writestr("hello.txt", "a zip, not a workbook")
    write_book(tmp_path / "plain.xlsx")
    for args, message in [((tmp_path / "nope.xlsx",), "nope.xlsx: no such file"),
                          ((tmp_path / "notes.xlsx",), "notes.xlsx is not a workbook"),
                          ((tmp_path / "zip.xlsx",), "zip.xlsx: LibreOffice could not open it"),
                          ((tmp_path / "plain.xlsx", "-o", tmp_path / "x.csv"), "can only write"),
                          ((tmp_path / "plain.xlsx", "--verify"), "no _torch sheet")]:
        result = run(*args)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.splitlines()[-1].startswith("cfxl: error: ")
        assert message in result.output


def test_a_missing_libreoffice_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CfxlError, match="apt-get install -y --no-install-recommends "
                                        "libreoffice-calc-nogui"):
        lo.find_soffice()


def our_processes(marker: Path) -> list[str]:
    """Command lines of running processes that mention marker (our LibreOffice profile)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(marker) in cmdline.read_text():
                found.append(cmdline.read_text().replace("\0", " "))
        except OSError:
            pass
    return found


def test_a_slow_workbook_stops_libreoffice_and_cleans_up(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the engine keeps its profile
    book = write_book(tmp_path / "calc.xlsx")
    with lo.Engine(timeout=0.001) as slow:
        assert our_processes(tmp_path)
        with pytest.raises(CfxlError, match="took more than 0.001 s on .*calc.xlsx; stopped it"):
            slow.recalc(book)
        assert not slow.running
    assert not our_processes(tmp_path) and not list(tmp_path.glob("cfxl-libreoffice-*"))


def test_the_real_command_starts_and_stops_its_own_libreoffice(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = CliRunner().invoke(cli, ["recalc", str(write_book(tmp_path / "calc.xlsx"))])
    assert result.exit_code == 0 and "23 formulas in 1 sheet " in result.output
    assert not our_processes(tmp_path) and not list(tmp_path.glob("cfxl-libreoffice-*"))


def test_a_libreoffice_that_never_answers_is_stopped(engine, tmp_path, monkeypatch):
    stuck = tmp_path / "soffice"
    stuck.write_text("#!/bin/sh\nsleep 600 & wait\n")  # its command line names tmp_path
    stuck.chmod(0o755)
    monkeypatch.setattr(lo, "find_soffice", lambda: str(stuck))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(CfxlError, match="LibreOffice did not start: no answer on its pipe within"):
        lo.Engine(start_timeout=0.3).start()
    assert not our_processes(tmp_path) and not list(tmp_path.glob("cfxl-libreoffice-*"))


# ---------------------------------------------------------- a file LibreOffice cannot read whole

def three_sheets(path):
    """Sheets first, second and third; second holds A1:A5 and five formulas B1:B5."""
    wb = openpyxl.Workbook()
    wb.active.title = "first"
    wb.active["A1"] = "=1+1"
    second = wb.create_sheet("second")
    for r in range(1, 6):
        second[f"A{r}"], second[f"B{r}"] = r, f"=A{r}*3"
    wb.create_sheet("third")["A1"] = "=first!A1+1"
    wb.save(path)
    return path


def damaged(path, part: str, change):
    """The workbook at path with one part changed: change(bytes) -> bytes, or None to drop it."""
    copy = path.with_name(f"damaged-{path.name}")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(copy, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            data = change(data) if item.filename == part else data
            if data is not None:
                dst.writestr(item, data)
    path.unlink()
    return copy.rename(path)


SHEET2, BOOK_XML = "xl/worksheets/sheet2.xml", "xl/workbook.xml"
DAMAGES = {  # what damages the file, the sheet it costs, what LibreOffice does, what cfxl says
    "a broken tag": (SHEET2, lambda d: d.replace(b"<sheetData>", b"<sheetData><oops>"), "second",
                     {}, f"LibreOffice loaded 0 of the 5 formulas its part {SHEET2} holds "
                         "(a damaged part)"),
    "a control character": (SHEET2, lambda d: d.replace(b"<v>3</v>", b"<v>3\x01</v>"), "second",
                            {"A1": 1.0, "B1": 3.0, "A2": 2.0, "B2": 6.0},
                            f"LibreOffice loaded 2 of the 5 formulas its part {SHEET2} holds "
                            "(a damaged part)"),
    "a missing part": (SHEET2, lambda d: None, "second", {},
                       "the file lacks its part: LibreOffice shows it empty"),
    "a name it refuses": (BOOK_XML, lambda d: d.replace(b'name="second"', b'name="se[c]ond"'),
                          "se[c]ond", None, f"in the file ({SHEET2}), but LibreOffice did not "
                                             "load it"),
}


@pytest.fixture(params=["uno", "convert"])
def any_engine(request, engine, converter):
    return {"uno": engine, "convert": converter}[request.param]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_sheet_libreoffice_did_not_read_whole_is_named(any_engine, tmp_path, damage):
    part, change, sheet, loaded, said = DAMAGES[damage]
    book = any_engine.recalc(damaged(three_sheets(tmp_path / "book.xlsx"), part, change))
    assert book.values.get(sheet) == loaded  # what LibreOffice really made of it
    assert book.lost == {sheet: said}
    assert book.values["third"]["A1"] == 3.0 and book.errors == []  # the rest is read


def test_cli_exits_1_naming_the_sheet_libreoffice_did_not_read(run, tmp_path):
    part, change, *_ = DAMAGES["a broken tag"]
    book = damaged(three_sheets(tmp_path / "book.xlsx"), part, change)
    result = run(book)
    assert result.exit_code == 1
    assert result.output.splitlines()[1:] == [
        f"sheet 'second': LibreOffice loaded 0 of the 5 formulas its part {SHEET2} holds "
        "(a damaged part)",
        f"cfxl: error: {book}: 1 sheet not read whole by LibreOffice ('second')"]


def test_every_sheet_of_a_whole_file_counts_as_read(engine, tmp_path):
    book = engine.recalc(three_sheets(tmp_path / "book.xlsx"))
    assert book.lost == {} and {s: len(f) for s, f in book.formulas.items()} == {
        "first": 1, "second": 5, "third": 1}
    block = engine.recalc(write_book(tmp_path / "calc.xlsx"))  # an array formula: 9 cells
    assert block.lost == {} and len(block.formulas["calc"]) == len(FORMULAS) + 2 + 9  # S2, S4


# ---------------------------------------------------------------- -o: never over a file unasked

def test_an_existing_output_is_refused_before_libreoffice_starts(tmp_path, monkeypatch):
    def no_libreoffice():
        raise AssertionError("LibreOffice started")
    monkeypatch.setattr(lo, "find_soffice", no_libreoffice)
    out = tmp_path / "out.xlsx"
    out.write_bytes(b"the user's own")
    result = CliRunner().invoke(cli, ["recalc", str(write_book(tmp_path / "calc.xlsx")),
                                      "-o", str(out)])
    assert (result.exit_code, result.output) == (
        1, f"cfxl: error: {out} exists; pass --force to overwrite it\n")
    assert out.read_bytes() == b"the user's own"


def test_force_replaces_the_output_whole_and_a_failure_leaves_it(run, tmp_path):
    out = tmp_path / "out.xlsx"
    out.write_bytes(b"the user's own")
    with zipfile.ZipFile(tmp_path / "zip.xlsx", "w") as zf:
        zf.writestr("hello.txt", "a zip LibreOffice cannot open")
    failed = run(tmp_path / "zip.xlsx", "-o", out, "--force")
    assert failed.exit_code == 1 and out.read_bytes() == b"the user's own"
    book = write_book(tmp_path / "calc.xlsx")
    assert run(book, "-o", out, "--force").exit_code == 0
    assert openpyxl.load_workbook(out)["calc"]["K2"].value == FORMULAS["K2"][0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calc.xlsx", "out.xlsx", "zip.xlsx"]


# ---------------------------------------------------------------- LibreOffice alone: no uno bridge

DIGITS = 15  # what LibreOffice writes of a number into a file


def test_the_fallback_recomputes_what_the_uno_engine_does(engine, converter, tmp_path):
    for book in (write_book(tmp_path / "calc.xlsx", torch_values()),
                 broken_book(tmp_path / "broken.xlsx")):
        uno, convert = engine.recalc(book), converter.recalc(book)
        assert (uno.via, convert.via) == ("uno", "convert")
        assert convert.formulas == uno.formulas and convert.errors == uno.errors
        assert list(convert.values) == list(uno.values) and convert.lost == uno.lost == {}
        for sheet, values in uno.values.items():
            assert convert.values[sheet].keys() == values.keys()
            for ref, want in values.items():
                got = convert.values[sheet][ref]
                if isinstance(want, float):
                    assert_close(got, want, rtol=0.5 * 10.0 ** (1 - DIGITS))
                else:
                    assert got == want, (sheet, ref)
    report = verify(converter.recalc(tmp_path / "calc.xlsx"))
    assert report.ok and report.sheets["calc"].checked == len(FORMULAS) + 9
    with zipfile.ZipFile(tmp_path / "zip.xlsx", "w") as zf:
        zf.writestr("hello.txt", "a zip, not a workbook")
    with pytest.raises(CfxlError, match="zip.xlsx: LibreOffice could not open it"):
        converter.recalc(tmp_path / "zip.xlsx")


def test_the_fallback_recomputes_stale_cached_values(converter, tmp_path):
    wb = openpyxl.Workbook()
    wb.active["A1"], wb.active["B1"] = 2, "=A1*3"
    wb.save(tmp_path / "plain.xlsx")
    stale = damaged(tmp_path / "plain.xlsx", "xl/worksheets/sheet1.xml",
                    lambda d: re.sub(rb"<f>A1\*3</f><v\s*/>", b"<f>A1*3</f><v>999</v>", d))
    assert openpyxl.load_workbook(stale, data_only=True).active["B1"].value == 999
    assert converter.recalc(stale).values["Sheet"]["B1"] == 6.0


def test_without_uno_cfxl_recalc_converts_and_says_so(tmp_path, monkeypatch):
    lo.find_soffice()
    monkeypatch.setattr(lo, "uno_python", lambda soffice: None)  # LibreOffice, no python3-uno
    assert lo.Engine().start().via == "convert"
    book = write_book(tmp_path / "ok.xlsx", torch_values())
    result = CliRunner().invoke(cli, ["recalc", str(book), "--verify", "-o",
                                      str(tmp_path / "out.ods")])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r".*ok\.xlsx: 23 formulas in 2 sheets recomputed by LibreOffice in .* s "
                        r"\(soffice --convert-to: values to 15 significant digits\)",
                        result.output.splitlines()[0])
    assert result.output.endswith(f"saved {tmp_path / 'out.ods'}\n")
    with zipfile.ZipFile(tmp_path / "out.ods") as zf:
        assert zf.read("mimetype") == b"application/vnd.oasis.opendocument.spreadsheet"
    with pytest.raises(CfxlError, match="no Python here can import LibreOffice's uno bridge"):
        lo.Engine(via="uno").start()


def test_recalc_via_is_uno_or_convert(monkeypatch):
    monkeypatch.setenv(lo.VIA_ENV, "excel")
    with pytest.raises(CfxlError, match="CFXL_RECALC may be uno or convert, not 'excel'"):
        lo.Engine()


def test_a_slow_conversion_is_stopped_and_cleaned_up(converter, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    book = write_book(tmp_path / "calc.xlsx")
    with lo.Engine(timeout=0.001, via="convert") as slow:
        with pytest.raises(CfxlError, match="took more than 0.001 s on .*calc.xlsx; stopped it"):
            slow.recalc(book)
    assert not our_processes(tmp_path) and not list(tmp_path.glob("cfxl-libreoffice-*"))
