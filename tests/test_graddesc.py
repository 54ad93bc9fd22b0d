"""The graddesc sheets (the lesson's line y = a*x + b): LibreOffice recomputes every step of every
optimizer to torch.optim's values, an edited lr or beta moves the whole trajectory exactly where a
fresh torch run goes, and the lesson's own rules recompute to their numpy implementation."""

import dataclasses
import re
import zipfile

import numpy as np
import openpyxl
import pytest
from tolerance import assert_close, running_size

from cfxl.errors import CfxlError
from cfxl.records import graddesc
from cfxl.records.types.line import LINE_SHEETS, GraddescRecords, LineHyper
from cfxl.proof.recalc import recalc
from cfxl.proof.verify import verify
from cfxl.workbooks import write_workbook
from cfxl.sheets.refs import cell
from cfxl.sheets.graddesc import sheet_layout, write_graddesc_sheets

# recompute workbooks and compare with torch: `make test` runs these with a second seed
pytestmark = pytest.mark.recompute

# torch's AVX kernels fuse multiply-adds (lerp, addcmul, add with alpha: one rounding where a
# spreadsheet rounds twice), so the sheet's b and a differ from torch's in the last bit or two
# (measured: 1e-15 relative at most). A residual pred - y near convergence is a difference of
# numbers near 200 and carries that into err^2, the gradients and exp_avg: the sheet gives those
# cells a `scale` (the size of what they are computed from), and verify judges them at 1e-12
# relative to it; every other cell at plain 1e-12 relative, with verify's default floor.
STATE = {"momentum": ["momentum_buffer"], "adagrad": ["sum"], "rmsprop": ["square_avg"],
         "adam": ["exp_avg", "exp_avg_sq"], "adam_ann": ["exp_avg", "exp_avg_sq"]}


@pytest.fixture(scope="module")
def records(seed):
    return graddesc.run("torch", graddesc.data(seed=seed))


@pytest.fixture(scope="module")
def build(records):
    return lambda b: write_graddesc_sheets(b, records)


def top_rows(book, sheet: str, n: int) -> dict[str, object]:
    """The first n rows of a sheet as openpyxl reads them (formulas as text), read lazily."""
    wb = openpyxl.load_workbook(book, read_only=True)
    try:
        return {c.coordinate: c.value for row in wb[sheet].iter_rows(max_row=n) for c in row
                if getattr(c, "value", None) is not None}
    finally:
        wb.close()


@pytest.fixture(scope="module")
def lesson_records(seed):
    return graddesc.run("lesson", graddesc.data(seed=seed))


@pytest.fixture(scope="module")
def lesson_book(lesson_records, tmp_path_factory):
    return write_workbook(tmp_path_factory.mktemp("graddesc") / "lesson.xlsx",
                          lambda b: write_graddesc_sheets(b, lesson_records, rules="lesson"))


def column(values: dict, r, key: str) -> np.ndarray:
    """A step column of a recomputed sheet, every row."""
    L = sheet_layout(r)
    return np.array([values[cell(L.row(s), L.cols[key])] for s in range(r.n_steps)])


def expected_checks(r) -> int:
    """Verified cells on a sheet: every formula column on every step row, and the epoch losses."""
    L = sheet_layout(r)
    formula_cols = len(L.cols) - 1 - 2 * (r.opt == "sgd")  # not epoch, not the estimates
    extra = 1 + 4 * int(r.epoch.max()) if r.epoch_extra else 0  # lesson adam_ann's annealing
    return r.n_steps * formula_cols + int(r.epoch.max()) + extra


def test_every_step_recomputes_to_torchs_values(records, recomputed):
    assert recomputed.errors == []
    report = verify(recomputed, rtol=1e-12)
    assert report.ok, report.failures[:5]
    assert list(recomputed.values)[:8] == ["Intro", "data", *LINE_SHEETS.values()]
    assert report.sheets["data"].checked == len(records.data.x)
    for opt, r in records.runs.items():
        assert report.sheets[LINE_SHEETS[opt]].checked == expected_checks(r)


def test_trajectories_and_state_equal_torchs_to_1e12(records, recomputed):
    """b, a, new b, new a and every state column on every row, to 1e-12 of their own size or
    of the size of what they are computed from."""
    for opt, r in records.runs.items():
        values = recomputed.values[LINE_SHEETS[opt]]
        for key, want in (("b", r.b), ("a", r.a), ("new_b", r.new_b), ("new_a", r.new_a),
                          ("step", r.step)):
            np.testing.assert_allclose(column(values, r, key), want, rtol=1e-12, atol=0)
        # what each state is computed from: a gradient 2(pred - y) (times x for a) keeps the
        # rounding of pred and y; a running average of gradients, that of the largest so far
        size = 2 * (np.abs(r.pred) + np.abs(r.y))
        g = np.c_[size, size * np.abs(r.x)] + r.hyper.weight_decay * np.abs(np.c_[r.b, r.a])
        scales = {"momentum_buffer": running_size(g) / (1 - r.hyper.momentum),
                  "exp_avg": running_size(g)}
        for name in STATE.get(opt, []):
            for j, p in enumerate("ba"):
                got = column(values, r, f"{name}_{p}")
                scale = scales.get(name, np.zeros_like(g))[:, j]  # sums of squares: own size
                assert_close(got, r.state[name][:, j], scale=scale, err_msg=f"{opt} {name} {p}")


def test_the_finite_difference_estimates_are_the_gradients_plus_h(records, recomputed):
    r = records.runs["sgd"]
    values = recomputed.values["basic SGD"]
    h, x = 0.01, r.x
    de_db, de_da = column(values, r, "de_db"), column(values, r, "de_da")
    err2 = np.abs(column(values, r, "err2"))
    for est, nudged, exact in (("est_db", "errb1", de_db + h), ("est_da", "erra1", de_da + h * x * x)):
        # (err^2 nudged - err^2) / h keeps the rounding of both squares, over h
        scale = (np.abs(column(values, r, nudged)) + err2) / h
        assert_close(column(values, r, est), exact, scale=scale, err_msg=est)


def _edit(wb, path, edits: dict[str, dict[str, float]]):
    """Save wb (openpyxl) with {sheet: {cell: value}} written, for LibreOffice to recompute."""
    for sheet, cells in edits.items():
        for ref, v in cells.items():
            wb[sheet][ref] = v
    wb.save(path)
    return path


def _ref(r, key: str) -> str:
    return cell(*sheet_layout(r).params[key])


def test_an_edited_lr_or_beta_moves_every_sheet_to_a_fresh_torch_run(records, book, engine,
                                                                     tmp_path):
    runs = records.runs
    changed = {opt: {"lr": runs[opt].hyper.lr * f}
               for opt, f in [("sgd", 1.5), ("momentum", 0.5), ("adagrad", 0.5),
                              ("rmsprop", 2.0), ("adam", 0.5), ("adam_ann", 0.5)]}
    changed["adam"]["beta1"] = 0.8
    changed["adam_ann"]["beta2"] = 0.95
    changed["momentum"]["weight_decay"] = 0.01  # the weight-decay term moves as torch's does
    edits = {LINE_SHEETS[opt]: {_ref(runs[opt], k): v for k, v in kv.items()}
             for opt, kv in changed.items()}
    after = recalc(_edit(openpyxl.load_workbook(book), tmp_path / "edited.xlsx", edits),
                   engine=engine)
    assert after.errors == []
    for opt, kv in changed.items():
        h = runs[opt].hyper
        betas = (kv.get("beta1", h.betas[0]), kv.get("beta2", h.betas[1]))
        new = dataclasses.replace(h, lr=kv["lr"], betas=betas,
                                  weight_decay=kv.get("weight_decay", h.weight_decay))
        fresh = graddesc.train(opt, records.data, new)
        values = after.values[LINE_SHEETS[opt]]
        got_b, got_a = column(values, fresh, "new_b"), column(values, fresh, "new_a")
        assert not np.allclose(got_b, runs[opt].new_b)  # it moved
        np.testing.assert_allclose(got_b, fresh.new_b, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got_a, fresh.new_a, rtol=1e-12, atol=0)


def test_the_intro_lists_where_torch_and_the_lesson_differ(book):
    text = " ".join(str(v) for v in top_rows(book, "Intro", 100).values())
    for phrase in ["(1 - beta)", "no bias correction and no eps", "previous row's average",
                   "previous epoch's squared gradients", "StepLR", *LINE_SHEETS.values()]:
        assert phrase in text, phrase


def test_the_layout_leaves_the_corner_free_and_labels_the_top_cells(records, book):
    for opt, r in records.runs.items():
        ws = top_rows(book, LINE_SHEETS[opt], 6)
        assert not {"A1", "A2", "B1", "B2"} & ws.keys()  # for the Reset / Run buttons
        assert [ws[k] for k in ("C1", "D1", "C2", "D2", "E1", "F1")] == \
               ["b (intercept)", 1, "a (slope)", 1, "lr", r.hyper.lr]
        new_b = cell(4, sheet_layout(r).cols["new_b"])  # the first step's new b
        assert (ws["E5"], ws["F5"], ws["E6"]) == ("=$D$1", "=$D$2", "=" + new_b)
        assert (ws["A4"], ws["A5"]) == ("start", 1)
    adam = top_rows(book, "adam", 3)
    heads = [v for k, v in adam.items() if k.endswith("3")]
    for h in ["exp_avg b", "exp_avg_sq a", "bias_correction1", "bias_correction2", "new b",
              "torch new b", "new b - torch", "loss", "torch loss"]:
        assert h in heads, h
    assert [adam[k] for k in ("G1", "H1", "G2", "I1")] == ["beta1", 0.9, "beta2", "eps"]


def test_each_optimizer_sheet_has_an_error_by_epoch_chart(book):
    with zipfile.ZipFile(book) as z:
        charts = [z.read(n).decode() for n in z.namelist() if re.match(r"xl/charts/chart\d+", n)]
    assert len(charts) == len(LINE_SHEETS)
    assert all("Error by epoch" in c and "<c:lineChart>" in c for c in charts)


def test_the_lesson_rules_recompute_to_their_numpy_implementation(lesson_records, lesson_book,
                                                                 engine, tmp_path):
    done = recalc(lesson_book, engine=engine)
    assert done.errors == []
    report = verify(done, rtol=1e-12, atol=1e-15)  # the same arithmetic: no floor needed
    assert report.ok, report.failures[:5]
    for opt, r in lesson_records.runs.items():
        assert report.sheets[LINE_SHEETS[opt]].checked == expected_checks(r)
    # the lesson's rmsprop alone, its lr edited: its numpy rules at the new lr
    r = lesson_records.runs["rmsprop"]
    small = write_workbook(tmp_path / "rmsprop.xlsx", lambda b: write_graddesc_sheets(
        b, GraddescRecords(lesson_records.data, "lesson", {"rmsprop": r})))
    wb = openpyxl.load_workbook(small)
    L = sheet_layout(r)
    assert wb["rmsprop"][cell(L.row(1), L.cols["new_b"])].value == "=E6-I6*$F$1/SQRT(K5)"
    after = recalc(_edit(wb, tmp_path / "lr.xlsx", {"rmsprop": {_ref(r, "lr"): 0.05}}),
                   engine=engine)
    fresh = graddesc.lesson("rmsprop", lesson_records.data, dataclasses.replace(r.hyper, lr=0.05))
    np.testing.assert_allclose(column(after.values["rmsprop"], r, "new_b"), fresh.new_b,
                               rtol=1e-12, atol=0)


def test_the_first_row_of_basic_sgd_is_the_lessons(engine, tmp_path):
    d = graddesc.lesson_data()
    r = graddesc.train("sgd", d, LineHyper(lr=1e-4, epochs=1))
    path = write_workbook(tmp_path / "first.xlsx", lambda b: write_graddesc_sheets(
        b, GraddescRecords(d, "torch", {"sgd": r})))
    values = recalc(path, engine=engine).values["basic SGD"]
    L = sheet_layout(r)
    got = {k: values[cell(L.first_row, L.cols[k])] for k in L.cols}
    want = {"x": 14, "y": 58, "b": 1, "a": 1, "pred": 15, "err2": 1849, "est_db": -85.99,
            "de_db": -86, "est_da": -1202.04, "de_da": -1204, "new_a": 1.1204, "new_b": 1.0086}
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12), k
    assert (r.new_b[0], r.new_a[0]) == (got["new_b"], got["new_a"])


def test_records_are_plain_numpy_under_torchs_state_names(records):
    for opt, r in records.runs.items():
        assert sorted(r.state) == sorted(STATE.get(opt, []))
        assert r.n_steps == len(records.data.x) * r.hyper.epochs
        arrays = [r.b, r.new_b, r.grad, r.lr, *r.state.values()]
        assert all(type(a) is np.ndarray and a.dtype == np.float64 for a in arrays)
    ann = records.runs["adam_ann"]
    n = len(records.data.x)
    assert ann.lr[n] == ann.lr[0] * ann.hyper.gamma and len(set(ann.lr[:n])) == 1
    assert records.runs["momentum"].hyper.momentum == 0.9


def test_data_is_seeded_integers_and_y_is_the_true_line():
    d = graddesc.data(29, seed=42)
    again = graddesc.data(29, seed=42)
    assert np.array_equal(d.x, again.x) and not np.array_equal(d.x, graddesc.data(29, seed=1).x)
    assert d.x.min() >= 1 and d.x.max() <= 100 and np.array_equal(d.x, d.x.round())
    np.testing.assert_array_equal(d.y, 30 + 2 * d.x)


def test_wrong_rules_or_names_are_refused(records):
    with pytest.raises(ValueError, match="torch rules"):
        write_graddesc_sheets(None, records, rules="lesson")
    with pytest.raises(CfxlError, match="unknown optimizer"):
        graddesc.train("lbfgs", records.data)
    with pytest.raises(CfxlError, match="unknown rules"):
        graddesc.run("keras")
