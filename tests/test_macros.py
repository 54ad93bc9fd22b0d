"""Macro workbooks: xlwings' VBA project and the buttons bound to its macro, kept through an
openpyxl round trip; and what each button's Python does to a workbook file: Run's new rows are
torch's continued run (LibreOffice recomputes them, cfxl.proof.verify compares), Reset undoes it,
Train and Refresh rewrite the model sheets."""

import ast
import importlib.util
import re
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner
from test_udfs import small_ratings
from tolerance import assert_close

from cfxl.cli import cli
from cfxl.excel import actions
from cfxl.engine import checkpoint
from cfxl.records import graddesc
from cfxl.excel import model_functions
from cfxl.data.ratings import read_ratings
from cfxl.errors import CfxlError
from cfxl.workbooks import export_collab, export_graddesc, plan
from cfxl.records.types.line import (
    LESSON_ONLY,
    LINE_OPTIMIZERS,
    LINE_RULES,
    LINE_SHEETS,
    TORCH_ONLY,
)
from cfxl.proof.recalc import recalc
from cfxl.proof.snapshot import load, snapshot
from cfxl.engine.train import Config, fit
from cfxl.proof.verify import verify
from cfxl.excel import macros
from cfxl.excel.update import FileBook, LiveBook
from cfxl.workbooks import write_workbook
from cfxl.sheets.refs import cell
from cfxl.sheets.graddesc import write_graddesc_sheets
from cfxl.sheets.graddesc_layout import sheet_layout

# recompute workbooks and compare with torch: `make test` runs these with a second seed
pytestmark = pytest.mark.recompute

if importlib.util.find_spec("xlwings") is None:
    pytest.skip("a macro workbook's VBA project comes from the xlwings package, which is not "
                "installed: pip install -e '.[excel]'", allow_module_level=True)

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
MODEL_SHEETS = ("users", "movies", "predictions", "epochs", "bias_rank", "pca", "config")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return read_ratings(small_ratings(tmp_path_factory.mktemp("data") / "small"))


EPOCHS = 2  # per optimizer sheet: small workbooks, quick to save and to recompute


@pytest.fixture(scope="module")
def exported(data, tmp_path_factory):
    """The optimizer workbook as `cfxl graddesc --xlsm` writes it."""
    return export_graddesc(plan(tmp_path_factory.mktemp("graddesc") / "graddesc.xlsm"), data, steps=2)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, seed):
    """Freshly written optimizer sheets with their buttons, torch's rules and the lesson's, two
    epochs each: copy, then press buttons."""
    folder = tmp_path_factory.mktemp("pristine")
    books = {}
    for rules in LINE_RULES:
        records = graddesc.run(rules, graddesc.data(seed=seed), epochs=EPOCHS)

        def build(book, records=records):
            write_graddesc_sheets(book, records, buttons=True)
            macros.add_graddesc_macros(book, records)
        books[rules] = write_workbook(folder / f"gd_{rules}.xlsm", build)
        macros.write_companion(books[rules])
    return books


def hyper(rules: str, opt: str) -> graddesc.LineHyper:
    defaults = graddesc.TORCH_DEFAULTS if rules == "torch" else graddesc.LESSON_DEFAULTS
    return replace(defaults[opt], epochs=EPOCHS)


def runner(rules: str, opt: str):
    """What fills opt's sheet under rules: torch.optim, or numpy's lesson rules (eve's always
    the lesson's, adamw's always torch's)."""
    torch_rules = (rules == "torch" and opt not in LESSON_ONLY) or opt in TORCH_ONLY
    return graddesc.train if torch_rules else graddesc.lesson


def copy_book(src: Path, folder: Path, name: str | None = None) -> Path:
    target = folder / (name or src.name)
    shutil.copy(src, target)
    shutil.copy(src.with_suffix(".py"), target.with_suffix(".py"))
    return target


def lines(path, prefix) -> list[str]:
    """The snapshot lines of a workbook that start with prefix (a string or a tuple of them)."""
    return [line.strip() for line in snapshot(path).splitlines() if line.strip().startswith(prefix)]


# ------------------------------------------------------------------ the file's structure


def test_vba_project_is_xlwings_standalone_read_back_with_olevba(exported):
    olevba = pytest.importorskip("oletools.olevba",
                                 reason="oletools reads VBA back: pip install oletools")
    with zipfile.ZipFile(exported) as zf:
        assert "macroEnabled.main+xml" in zf.read("[Content_Types].xml").decode()
        data = zf.read("xl/vbaProject.bin")
    assert data == macros.vba_project()  # from the installed xlwings, byte for byte
    code = {name.rsplit(".", 1)[0]: text for _, _, name, text in
            olevba.VBA_Parser("vbaProject.bin", data=data).extract_macros()}
    assert re.search(r"Public Function RunPython\(", code["xlwings"])
    assert "BSD 3-clause" in code["xlwings"]  # xlwings' notice travels with its module
    sample = code["Module1"]
    assert re.search(r"Sub SampleCall\(\)", sample)
    assert re.search(r'RunPython "import " & mymodule & ";" & mymodule & "\.main\(\)"', sample)


def test_every_button_is_bound_to_a_macro_of_the_project(exported, pristine):
    pytest.importorskip("oletools.olevba", reason="the snapshot lists VBA macros with oletools")
    for path in (exported, pristine["lesson"]):
        text = snapshot(path)
        defined = {m for line in text.splitlines() if line.startswith("  vba module ")
                   for m in line.split(": ", 1)[1].split(", ")}
        meta = actions.read_meta(FileBook(path))
        found = []
        for block in text.split("\nsheet ")[1:]:
            sheet = re.match(r'"([^"]+)"', block).group(1)
            for ref, caption, macro in re.findall(r'  button (\w+) "(\w+)" -> \[0\]!(\w+)', block):
                assert macro in defined and macro == macros.MACRO
                assert meta[sheet]["buttons"][ref] == caption.lower()  # what the button runs
                found.append((sheet, ref, caption))
        assert sorted(found) == sorted((name, ref, caption) for name in LINE_SHEETS.values()
                                       for ref, caption in (("A1", "Reset"), ("B1", "Run")))


def test_module_beside_the_book_runs_the_buttons(exported):
    source = exported.with_suffix(".py").read_text()
    tree = ast.parse(source)
    assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] == ["main"]
    assert "from cfxl.excel.udfs import on_button" in source and "on_button()" in source


def test_xlwings_conf_names_the_udf_module_and_keeps_the_notice(exported):
    wb = openpyxl.load_workbook(exported, read_only=True)
    ws = wb[macros.CONF_SHEET]
    rows = [r for r in ws.iter_rows(values_only=True)]
    assert rows[0][:2] == ("UDF Modules", "cfxl.excel.udfs") and rows[1][0] is None  # A1 down, no gap
    notes = "\n".join(r[3] for r in rows if len(r) > 3 and r[3])
    assert "Zoomer Analytics LLC" in notes and "BSD 3-clause" in notes
    assert wb["_cfxl"].sheet_state == "hidden"
    wb.close()
    intro = " ".join(str(c) for c in lines(exported, "A") if "Reset" in c)
    assert "Run carries on" in intro


def test_openpyxl_round_trip_keeps_vba_and_buttons(pristine, tmp_path):
    path = copy_book(pristine["torch"], tmp_path)
    before = lines(path, ("vba", "button", "comment"))
    book = FileBook(path)
    book.write("adam", {(0, 5): 0.25})
    book.save()
    assert lines(path, ("vba", "button", "comment")) == before
    assert sum(line.startswith("vba module") for line in before) >= 2
    wb = openpyxl.load_workbook(path, keep_vba=True)
    assert wb["adam"]["F1"].value == 0.25 and wb.vba_archive is not None


def test_targets_are_checked_before_anything_is_written(tmp_path):
    with pytest.raises(CfxlError, match="Python module name"):
        plan(tmp_path / "my-book.xlsm")
    with pytest.raises(CfxlError, match="hide the installed module 'json'"):
        plan(tmp_path / "json.xlsm")
    with pytest.raises(CfxlError, match=r"suffix \.xlsm"):
        plan(tmp_path / "book.xlsx", macros=True)
    (tmp_path / "book.py").write_text("")
    with pytest.raises(CfxlError, match="book.py exists"):
        plan(tmp_path / "book.xlsm")
    (tmp_path / "book.py").unlink()
    (tmp_path / "book.pt").write_text("")
    with pytest.raises(CfxlError, match="book.pt exists"):
        plan(tmp_path / "book.xlsm", model=True)
    assert plan(tmp_path / "book.xlsm").model_file is None  # the optimizer workbook has none
    assert plan(tmp_path / "book.xlsm", force=True, model=True).model_file == tmp_path / "book.pt"


# ------------------------------------------------------------------ Reset and Run


def epoch_rows(r) -> int:
    return len(r.x)


def sheet_values(values: dict, r, key: str) -> np.ndarray:
    L = sheet_layout(r)
    return np.array([values[cell(L.row(s), L.cols[key])] for s in range(r.n_steps)])


@pytest.mark.parametrize("rules", LINE_RULES)
def test_resume_continues_one_longer_run_bit_for_bit(rules, seed):
    d = graddesc.data(seed=seed)
    for opt in LINE_OPTIMIZERS:
        if rules == "lesson" and opt == "adam_ann":
            continue  # its smallest-so-far restarts with each Run
        fn, h = runner(rules, opt), hyper(rules, opt)
        whole = fn(opt, d, replace(h, epochs=2 * h.epochs))
        resumed, state = graddesc.resume(fn(opt, d, h))
        second = fn(opt, d, resumed, state=state)
        tail = slice(len(d.x) * h.epochs, None)
        for key in ("b", "a", "new_b", "new_a", "step", "lr", "err2", "grad"):
            assert np.array_equal(getattr(whole, key)[tail], getattr(second, key)), (opt, key)
        for key in whole.state:
            assert np.array_equal(whole.state[key][tail], second.state[key]), (opt, key)


@pytest.mark.parametrize("rules", LINE_RULES)
def test_run_continues_the_run_and_libreoffice_agrees(pristine, rules, tmp_path, engine, seed):
    path = copy_book(pristine[rules], tmp_path)
    actions.apply(path, "run")  # every optimizer sheet, one Run each
    actions.apply(path, "run", "adam")  # and adam twice
    done = recalc(path, engine=engine)
    assert not done.errors
    report = verify(done)  # every formula against the _torch sheet, at 1e-12 of its scale
    assert not report.failures, report.failures[:3]
    expected = {(row[0], row[1]): row[2] for row in
                openpyxl.load_workbook(path, read_only=True)["_torch"].iter_rows(
                    min_row=2, values_only=True)}
    d = graddesc.data(seed=seed)
    for opt, name in LINE_SHEETS.items():
        if rules == "lesson" and opt == "adam_ann":
            continue  # its smallest-so-far restarts with each Run (see cfxl.records.graddesc.resume)
        passes = 3 if opt == "adam" else 2
        fn, h = runner(rules, opt), hyper(rules, opt)
        whole = fn(opt, d, replace(h, epochs=passes * h.epochs))
        tail = slice((passes - 1) * len(d.x) * h.epochs, None)
        shown = fn(opt, d, h)  # the sheet's layout: one pass
        L = sheet_layout(shown)
        for key, want in (("new_b", whole.new_b[tail]), ("new_a", whole.new_a[tail]),
                          ("step", whole.step[tail])):
            proof = [expected[name, cell(L.row(s), L.cols[key])] for s in range(shown.n_steps)]
            # Run continues torch's own run: the same steps from the same state, bit for bit
            np.testing.assert_array_equal(proof, want, err_msg=f"{name} {key}")
            # and the sheet's formulas recompute to it (verify above: each cell at 1e-12 of its
            # scale; b and a never come near zero)
            got = sheet_values(done.values[name], shown, key)
            assert_close(got, want, err_msg=f"{name} {key}")


def test_run_starts_where_the_last_row_left_off(pristine, tmp_path, seed):
    path = copy_book(pristine["torch"], tmp_path)
    d = graddesc.data(seed=seed)
    first = graddesc.train("adam", d, hyper("torch", "adam"))
    _, state = graddesc.resume(first)
    actions.apply(path, "run", "adam")
    L = sheet_layout(first)
    book = FileBook(path)
    assert book.value("adam", *L.params["b0"]) == first.new_b[-1]  # saved bit for bit
    assert book.value("adam", *L.params["a0"]) == first.new_a[-1]
    assert book.value("adam", L.start_row, L.cols["step"]) == first.step[-1]
    for j, p in enumerate("ba"):
        got = book.value("adam", L.start_row, L.cols[f"exp_avg_sq_{p}"])
        assert got == state["exp_avg_sq"][j]


def test_run_follows_an_edited_setting(pristine, tmp_path, seed):
    path = copy_book(pristine["torch"], tmp_path)
    d = graddesc.data(seed=seed)
    L = sheet_layout(graddesc.train("rmsprop", d, hyper("torch", "rmsprop")))
    book = FileBook(path)
    book.write("rmsprop", {L.params["lr"]: 0.05})
    book.save()
    actions.apply(path, "run", "rmsprop")
    edited = graddesc.train("rmsprop", d, replace(hyper("torch", "rmsprop"), lr=0.05))
    book = FileBook(path)
    assert book.value("rmsprop", *L.params["b0"]) == edited.new_b[-1]
    assert book.value("rmsprop", *L.params["lr"]) == 0.05


def test_reset_undoes_runs_and_edits(pristine, tmp_path, seed):
    path = copy_book(pristine["lesson"], tmp_path)
    actions.apply(path, "run")
    L = sheet_layout(graddesc.lesson("momentum", graddesc.data(seed=seed), hyper("lesson", "momentum")))
    book = FileBook(path)
    book.write("momentum", {L.params["lr"]: 0.5, (L.start_row, L.cols["mom_b"]): 3.0})
    book.save()
    actions.apply(path, "reset")
    original, now = load(pristine["lesson"]), load(path)
    for a, b in zip(original.sheets, now.sheets):
        if a.name in LINE_SHEETS.values() or a.name == "_torch":
            assert a.cells.keys() == b.cells.keys(), a.name
            assert [k for k in a.cells if a.cells[k] != b.cells[k]] == []  # bit for bit


def test_actions_refuse_what_they_cannot_do(pristine, tmp_path):
    path = copy_book(pristine["torch"], tmp_path)
    book = FileBook(path)
    with pytest.raises(CfxlError, match="works on an optimizer sheet"):
        actions.perform(book, "data", "run")
    with pytest.raises(CfxlError, match="unknown action"):
        actions.perform(book, "adam", "jump")
    with pytest.raises(CfxlError, match="no cfxl button at adam!C1"):
        actions.perform(book, "adam", cell="C1")
    with pytest.raises(CfxlError, match="works on the collab workbook"):
        actions.perform(book, "adam", "train")
    plain = tmp_path / "plain.xlsx"
    openpyxl.Workbook().save(plain)
    with pytest.raises(CfxlError, match="not written as a cfxl macro workbook"):
        actions.apply(plain, "run")
    before = path.read_bytes()
    for args, message in ([path, "run", "nope"], "run works on an optimizer sheet ("), \
                         ([path, "jump"], "unknown action 'jump'; choose one of reset, run, "):
        pressed = CliRunner().invoke(cli, ["press", *map(str, args)])
        assert pressed.exit_code == 1 and len(pressed.output.splitlines()) == 1
        assert pressed.output.startswith(f"cfxl: error: {message}")
    assert path.read_bytes() == before


def test_press_is_a_button_pressed_on_the_closed_file(pristine, tmp_path):
    pressed, applied = (copy_book(pristine["torch"], tmp_path, f"{name}.xlsm")
                        for name in ("pressed", "applied"))
    result = CliRunner().invoke(cli, ["press", str(pressed), "run", "adam"])
    assert result.exit_code == 0 and result.output == f"run: wrote {pressed}\n"
    actions.apply(applied, "run", "adam")
    assert snapshot(pressed) == snapshot(applied) != snapshot(pristine["torch"])


# ------------------------------------------------------------------ the collab workbook


@pytest.fixture(scope="module")
def collab(data, tmp_path_factory):
    """A collab macro workbook with its model file and module beside it."""
    folder = tmp_path_factory.mktemp("collab")
    trained = fit(Config(n_factors=3, epochs=2, bs=64), data, progress=False)
    return export_collab(plan(folder / "collab.xlsm", model=True), trained, data), trained


def test_collab_buttons_ratings_and_model_file(collab, data):
    path, trained = collab
    text = snapshot(path)
    assert '  name cfxl_model = config!$B$' in text
    ref = re.search(r"name cfxl_model = config!\$B\$(\d+)", text).group(1)
    wb = openpyxl.load_workbook(path, keep_vba=True)
    assert (wb["config"][f"A{ref}"].value, wb["config"][f"B{ref}"].value) == ("model_file",
                                                                             "collab.pt")
    for sheet, buttons in macros.MODEL_BUTTONS.items():
        block = text.split(f'sheet "{sheet}"', 1)[1].split("\nsheet ", 1)[0]
        for b in buttons:
            assert f'  button {cell(b.row, b.col)} "{b.caption}" -> [0]!SampleCall' in block
    rows = [list(r) for r in wb["ratings"].iter_rows(min_row=macros.RATINGS_FIRST + 1,
                                                     max_col=3, values_only=True)]
    assert rows == data.frame()[["userId", "movieId", "rating"]].values.tolist()
    saved = checkpoint.load(path.with_suffix(".pt"))
    assert saved.predict([1, 2], [3, 4]).tolist() == trained.predict([1, 2], [3, 4]).tolist()
    assert path.with_suffix(".py").exists()


def test_refresh_writes_what_export_writes(collab, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    path, trained = collab
    fresh = export_collab(plan(tmp_path / "fresh.xlsm", model=True), trained,
                          read_ratings(trained.source))
    book = copy_book(fresh, tmp_path, "pressed.xlsm")
    shutil.copy(fresh.with_suffix(".pt"), book.with_suffix(".pt"))
    scribbled = FileBook(book)
    scribbled.write("users", {(5, 5): "scribbled"})
    scribbled.save()
    actions.apply(book, "refresh")
    a, b = load(fresh), load(book)
    for x, y in zip(a.sheets, b.sheets):
        if x.name in MODEL_SHEETS:
            assert x.features == y.features and x.dims == y.dims, x.name
            differ = [k for k in x.cells if x.cells[k] != y.cells.get(k, ("s", ""))]
            assert differ == [], (x.name, differ[:3])
    assert lines(book, "button") == lines(fresh, "button")


def test_ratings_sheet_keeps_long_and_text_ids_exact(tmp_path):
    """Ids of 16 digits or more would be rounded as numbers (Excel keeps 15): they are written as
    their digits in text, and text ids as text (never a formula)."""
    frame = pd.DataFrame({"userId": [12345678901234567, 7], "movieId": [1, 2],
                          "rating": [4.5, 3.0]})
    texts = pd.DataFrame({"userId": ["=u1", "u2"], "movieId": [1, 2], "rating": [4.5, 3.0]})
    for name, table in (("long", frame), ("text", texts)):
        path = write_workbook(tmp_path / f"{name}.xlsx",
                              lambda book, t=table: macros.write_ratings_sheet(book, t))
        ws = openpyxl.load_workbook(path)["ratings"]
        got = [[c.value for c in row] for row in ws.iter_rows(min_row=macros.RATINGS_FIRST + 1, max_col=3)]
        assert [r[0] for r in got] == [str(v) if name == "long" and v > 10 ** 15 else v
                                       for v in table["userId"]]
        assert [r[1:] for r in got] == table[["movieId", "rating"]].values.tolist()
        assert all(ws.cell(macros.RATINGS_FIRST + 1 + i, 1).data_type == ("s" if name == "text"
                   or i == 0 else "n") for i in range(2))


def test_collab_actions_and_optimizer_actions_stay_apart(collab, tmp_path):
    path, _ = collab
    with pytest.raises(CfxlError, match="has no optimizer sheets to run"):
        actions.apply(path, "run")
    with pytest.raises(CfxlError, match="works on an optimizer sheet"):
        actions.apply(path, "reset", "ratings")


def test_train_learns_the_ratings_sheet(collab, tmp_path):
    path, _ = collab
    book_path = copy_book(path, tmp_path)
    shutil.copy(path.with_suffix(".pt"), book_path.with_suffix(".pt"))
    book = FileBook(book_path)
    n = len(book.rows("ratings", macros.RATINGS_FIRST, 3))
    new = {(macros.RATINGS_FIRST + n + i, j): v for i, row in
           enumerate([[999, 1, 5.0], [999, 2, 4.5], [999, 3, 1.0]]) for j, v in enumerate(row)}
    book.write("ratings", new)
    settings = book.rows("config", actions.MODEL_FIRST, 2)
    book.write("config", {(actions.MODEL_FIRST + i, 1): 4 for i, (k, _) in enumerate(settings)
                          if k == "n_factors"})
    book.save()
    actions.apply(book_path, "train")
    model = checkpoint.load(book_path.with_suffix(".pt"))
    assert 999 in model.users.ids.tolist() and model.config.n_factors == 4
    assert Path(model.source) == tmp_path / "collab_data" / "ratings.csv"
    assert model.titles is not None and model.titles.loc[1, "title"] == "Film 1 (1951)"
    wb = openpyxl.load_workbook(book_path)
    assert 999 in [r[0] for r in wb["users"].iter_rows(min_row=3, values_only=True)]
    settings = dict(wb["config"].iter_rows(min_row=3, max_col=2, values_only=True))
    assert settings["n_factors"] == 4 and settings["model_file"] == "collab.pt"
    rows = model_functions.recommend(model_functions.load_model(book_path.with_suffix(".pt")), 999, 3)
    assert len(rows) == 4 and 1 not in [r[0] for r in rows[1:]]  # rated by 999: left out


def test_train_reads_text_ids_and_any_rating_as_the_sheet_holds_them(collab, tmp_path):
    """Data from a generic CSV (text ids, ratings past MovieLens' stars) trains from the
    ratings sheet as it stands: ids stay text, titles still come from the movies sheet."""
    path, _ = collab
    book_path = copy_book(path, tmp_path)
    shutil.copy(path.with_suffix(".pt"), book_path.with_suffix(".pt"))
    book = FileBook(book_path)
    rows = book.rows("ratings", macros.RATINGS_FIRST, 3)
    book.write("ratings", {(macros.RATINGS_FIRST + i, j): v for i, (u, m, r) in enumerate(rows)
                           for j, v in enumerate([f"u{u:g}", m, 2 * r])})  # ratings 1 to 10
    book.save()
    actions.apply(book_path, "train")
    model = checkpoint.load(book_path.with_suffix(".pt"))
    assert sorted(model.users.ids.tolist()) == sorted({f"u{u:g}" for u, _, _ in rows})
    assert model.y_range == (2 * min(r for *_, r in rows), 2 * max(r for *_, r in rows))
    assert model.titles.loc[1, "title"] == "Film 1 (1951)"


# ------------------------------------------------------------------ the same actions, live


class FakeRange:
    """Enough of an xlwings Range over an openpyxl sheet for cfxl's LiveBook."""

    def __init__(self, ws, top, bottom=None, transpose=False):
        self.ws, self.top, self.bottom, self.transpose = ws, top, bottom or top, transpose

    def options(self, transpose=False, ndim=None):
        return FakeRange(self.ws, self.top, self.bottom, transpose)

    @property
    def value(self):
        (r0, c0), (r1, c1) = self.top, self.bottom
        block = [[self.ws.cell(r, c).value for c in range(c0, c1 + 1)] for r in range(r0, r1 + 1)]
        return block[0][0] if (r0, c0) == (r1, c1) else block

    @value.setter
    def value(self, v):
        r0, c0 = self.top
        rows = [[x] for x in v] if self.transpose else v if isinstance(v, list) else [[v]]
        for i, row in enumerate(rows):
            for j, x in enumerate(row):
                self.ws.cell(r0 + i, c0 + j).value = x


class FakeSheet:
    def __init__(self, ws):
        self.ws, self.name = ws, ws.title

    def range(self, a, b=None):
        if isinstance(a, str):
            c = self.ws[a]
            a = (c.row, c.column)
        return FakeRange(self.ws, a, b)

    @property
    def used_range(self):
        last = type("Cell", (), {"row": self.ws.max_row})
        return type("Used", (), {"last_cell": last})

    def clear_contents(self):
        for row in self.ws.iter_rows():
            for c in row:
                c.value = None


class FakeBook:
    """A workbook 'open in Excel': an openpyxl workbook behind xlwings' Book interface."""

    def __init__(self, path):
        self.path = Path(path)
        self.file = FileBook(path)  # its save writes numbers exactly
        self.wb = self.file.wb
        self.sheets = _Sheets([FakeSheet(ws) for ws in self.wb.worksheets])
        self.fullname, self.name = str(self.path), self.path.name


class _Sheets(list):
    def __getitem__(self, key):
        if isinstance(key, str):
            return next(s for s in self if s.name == key)
        return super().__getitem__(key)


def test_live_run_writes_what_the_file_run_writes(pristine, tmp_path):
    by_file = copy_book(pristine["torch"], tmp_path, "a.xlsm")
    live = copy_book(pristine["torch"], tmp_path, "b.xlsm")
    actions.apply(by_file, "run", "momentum")
    fake = FakeBook(live)
    actions.perform(LiveBook(fake), "momentum", cell="B1")  # the Run button
    fake.file.save()
    a, b = load(by_file), load(live)
    for x, y in zip(a.sheets, b.sheets):
        assert x.cells == y.cells, x.name


def test_live_refresh_writes_the_values_the_file_refresh_writes(collab, tmp_path):
    path, _ = collab
    by_file = copy_book(path, tmp_path, "a.xlsm")
    live = copy_book(path, tmp_path, "b.xlsm")
    shutil.copy(path.with_suffix(".pt"), tmp_path)  # the model file both configs name
    for book in (by_file, live):
        scribbled = FileBook(book)
        scribbled.write("users", {(3, 3): "scribbled"})
        scribbled.save()
    actions.apply(by_file, "refresh")
    fake = FakeBook(live)
    actions.perform(LiveBook(fake), "config", cell="E2")  # the Refresh button
    fake.file.save()
    a, b = load(by_file), load(live)
    for x, y in zip(a.sheets, b.sheets):
        if x.name in MODEL_SHEETS and x.name != "config":  # config: today's date in both
            values = {k: v for k, v in x.cells.items() if v != ("s", "")}
            assert values == {k: v for k, v in y.cells.items() if v != ("s", "")}, x.name


def test_buttons_find_their_action_through_application_caller(pristine, tmp_path, monkeypatch):
    xw = pytest.importorskip("xlwings", reason="the excel extra (xlwings) is not installed")
    from cfxl.excel import udfs
    path = copy_book(pristine["torch"], tmp_path)
    fake = FakeBook(path)
    fake.sheets.active = fake.sheets["adam"]
    top_left = type("Cell", (), {"Row": 1, "Column": 1})  # the button over A1: Reset
    fake.app = type("App", (), {"api": type("Api", (), {"Caller": "Button 1"})})
    fake.sheets["adam"].api = type("Api", (), {"Shapes": staticmethod(
        lambda name: type("Shape", (), {"TopLeftCell": top_left}))})
    calls = []
    monkeypatch.setattr(xw.Book, "caller", staticmethod(lambda: fake))
    monkeypatch.setattr(actions, "perform", lambda *a, **k: calls.append((a[1:], k)))
    udfs.on_button()
    assert calls == [(("adam", None), {"cell": "A1"})]
    udfs.on_button("run")
    assert calls[-1] == (("adam", "run"), {"cell": None})
    del fake.app
    with pytest.raises(CfxlError, match="cfxl_macros.bas"):
        udfs.on_button()


def test_cfxl_macros_bas_passes_each_action_to_on_button():
    text = (TEMPLATES / "cfxl_macros.bas").read_text()
    calls = dict(re.findall(r"Sub (\w+)\(\)\s+RunPython \"import cfxl\.excel\.udfs; "
                            r"cfxl\.excel\.udfs\.on_button\('(\w+)'\)\"\s+End Sub", text))
    assert calls == {"CfxlReset": "reset", "CfxlRun": "run", "CfxlTrain": "train",
                     "CfxlRefresh": "refresh"}
    assert set(calls.values()) == set(actions.ACTIONS)
