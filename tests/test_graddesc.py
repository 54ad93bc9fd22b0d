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
from cfxl.records.types.line import COMPARE_SHEET, LINE_SHEETS, GraddescRecords, LineHyper
from cfxl.proof.recalc import recalc
from cfxl.proof.verify import verify
from cfxl.workbooks import write_workbook
from cfxl.sheets.refs import cell
from cfxl.sheets.graddesc import write_graddesc_sheets
from cfxl.sheets.graddesc_compare import END_HEAD, LOSS_COL
from cfxl.sheets.graddesc_epochs import loss_scale
from cfxl.sheets.graddesc_layout import sheet_layout

# recompute workbooks and compare with torch: `make test` runs these with a second seed
pytestmark = pytest.mark.recompute

# torch's AVX kernels fuse multiply-adds (lerp, addcmul, add with alpha: one rounding where a
# spreadsheet rounds twice), so the sheet's b and a differ from torch's in the last bit or two
# (measured: 1e-15 relative at most). A residual pred - y near convergence is a difference of
# numbers near 200 and carries that into err^2, the gradients and exp_avg: the sheet gives those
# cells a `scale` (the size of what they are computed from), and verify judges them at 1e-12
# relative to it; every other cell at plain 1e-12 relative, with verify's default floor.
STATE = {"momentum": ["momentum_buffer"], "adagrad": ["sum"], "rmsprop": ["square_avg"],
         "adam": ["exp_avg", "exp_avg_sq"], "adamw": ["exp_avg", "exp_avg_sq"],
         "adam_ann": ["exp_avg", "exp_avg_sq"]}


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
    """Verified cells on a sheet: every formula column on every step row, and per epoch the
    loss, b, a and their distance to the truth, and the lesson's adam_ann's and eve's extras."""
    L = sheet_layout(r)
    formula_cols = len(L.cols) - 1 - 2 * (r.opt == "sgd")  # not epoch, not the estimates
    E = int(r.epoch.max())
    extra = {"adam_ann": 1 + 4 * E if r.rules == "lesson" else 0,  # its annealing
             "eve": 4 * E - 2}.get(r.opt, 0)  # r, d; ft-1, ft-2 but the first epoch's (inputs)
    return r.n_steps * formula_cols + 5 * E + extra


def compare_checks(records) -> int:
    """The compare sheet: each sheet's last loss, b, a and distances, and its loss by epoch."""
    return sum(5 + int(r.epoch.max()) for r in records.runs.values())


def test_every_step_recomputes_to_torchs_values(records, recomputed):
    assert recomputed.errors == []
    report = verify(recomputed, rtol=1e-12)
    assert report.ok, report.failures[:5]
    assert list(recomputed.values)[:len(LINE_SHEETS) + 3] == ["Intro", "data",
                                                             *LINE_SHEETS.values(), COMPARE_SHEET]
    assert report.sheets["data"].checked == len(records.data.x)
    for opt, r in records.runs.items():
        assert report.sheets[LINE_SHEETS[opt]].checked == expected_checks(r)
    assert report.sheets[COMPARE_SHEET].checked == compare_checks(records)
    assert records.runs["eve"].rules == "lesson"  # torch has no Eve: numpy's lesson rules


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


def test_an_edited_lr_or_beta_moves_every_sheet_and_compare_to_a_fresh_run(records, book,
                                                                           engine, tmp_path):
    """Each sheet moves where a fresh torch run (eve: numpy's lesson rules) at the edited
    settings goes, and the compare sheet's losses, b and a follow every sheet."""
    runs = records.runs
    changed = {opt: {"lr": runs[opt].hyper.lr * f}
               for opt, f in [("sgd", 1.5), ("momentum", 0.5), ("adagrad", 0.5),
                              ("rmsprop", 2.0), ("adam", 0.5), ("adamw", 0.5), ("adam_ann", 0.5),
                              ("eve", 0.5)]}
    changed["adam"]["beta1"] = 0.8
    changed["adam_ann"]["beta2"] = 0.95
    changed["eve"] |= {"beta1": 0.8, "beta3": 0.5}  # eve's d follows its own beta too
    changed["momentum"]["weight_decay"] = 0.01  # the weight-decay term moves as torch's does
    changed["adamw"]["weight_decay"] = 0.003  # and AdamW's decoupled decay as torch.optim.AdamW's
    edits = {LINE_SHEETS[opt]: {_ref(runs[opt], k): v for k, v in kv.items()}
             for opt, kv in changed.items()}
    L = sheet_layout(runs["eve"])
    edits["eve"][cell(L.table_row(0), L.table["d"])] = 2.0  # eve's start state, its d
    after = recalc(_edit(openpyxl.load_workbook(book), tmp_path / "edited.xlsx", edits),
                   engine=engine)
    assert after.errors == []
    compare = after.values[COMPARE_SHEET]
    for opt, kv in changed.items():
        h = runs[opt].hyper
        betas = (kv.get("beta1", h.betas[0]), kv.get("beta2", h.betas[1]))
        new = dataclasses.replace(h, lr=kv["lr"], betas=betas, beta3=kv.get("beta3", h.beta3),
                                  weight_decay=kv.get("weight_decay", h.weight_decay))
        fresh = (graddesc.lesson(opt, records.data, new, state={"d": 2.0}) if opt == "eve" else
                 graddesc.train(opt, records.data, new))
        values = after.values[LINE_SHEETS[opt]]
        got_b, got_a = column(values, fresh, "new_b"), column(values, fresh, "new_a")
        assert not np.allclose(got_b, runs[opt].new_b)  # it moved
        np.testing.assert_allclose(got_b, fresh.new_b, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got_a, fresh.new_a, rtol=1e-12, atol=0)
        # compare: the last epoch's loss, b, a (row i under its headers), every epoch's loss
        row = compare_rows(records)[opt]
        loss = fresh.epoch_loss
        assert_close(compare[cell(row, 4)], fresh.new_b[-1], rtol=1e-12)
        assert_close(compare[cell(row, 5)], fresh.new_a[-1], rtol=1e-12)
        assert_close(compare[cell(row, 6)], fresh.new_b[-1] - records.data.b, rtol=1e-12,
                     scale=abs(fresh.new_b[-1]) + records.data.b)
        col = LOSS_COL + 1 + list(records.runs).index(opt)
        got = np.array([compare[cell(END_HEAD + e, col)] for e in range(1, len(loss) + 1)])
        assert_close(got, loss, rtol=1e-12, scale=loss_scale(fresh), err_msg=opt)


def compare_rows(records) -> dict[str, int]:
    """The compare sheet's row of each optimizer in its last-epoch table (0-based)."""
    return {opt: END_HEAD + 1 + i for i, opt in enumerate(records.runs)}


def test_the_intro_lists_where_torch_and_the_lesson_differ(book):
    text = " ".join(str(v) for v in top_rows(book, "Intro", 100).values())
    for phrase in ["(1 - beta)", "no bias correction and no eps", "previous row's average",
                   "previous epoch's squared gradients", "StepLR", *LINE_SHEETS.values()]:
        assert phrase in text, phrase


def test_the_layout_leaves_the_corner_free_and_labels_the_top_cells(records, book):
    for opt, r in records.runs.items():
        L = sheet_layout(r)
        ws = top_rows(book, LINE_SHEETS[opt], L.first_row + 2)
        assert not {"A1", "A2", "B1", "B2"} & ws.keys()  # for the Reset / Run buttons
        assert [ws[k] for k in ("C1", "D1", "C2", "D2", "E1", "F1")] == \
               ["b (intercept)", 1, "a (slope)", 1, "lr", r.hyper.lr]
        new_b = cell(L.first_row, L.cols["new_b"])  # the first step's new b
        first = [ws[cell(L.first_row, L.cols[k])] for k in ("b", "a")]
        assert first + [ws[cell(L.first_row + 1, L.cols["b"])]] == ["=$D$1", "=$D$2", "=" + new_b]
        assert (ws[cell(L.start_row, 0)], ws[cell(L.first_row, 0)]) == ("start", 1)
    r = records.runs["adam"]
    L = sheet_layout(r)
    adam = top_rows(book, "adam", L.head_row + 1)
    heads = [adam[cell(L.head_row, j)] for j in range(L.truth_col + 4) if cell(L.head_row, j) in adam]
    for h in ["exp_avg b", "exp_avg_sq a", "bias_correction1", "bias_correction2", "new b",
              "torch new b", "new b - torch"]:
        assert h in heads, h
    table = [adam[cell(L.band_row, j)] for j in L.table.values()]
    assert table == ["epoch", "loss", "torch loss", "b", "a", "b - true b", "a - true a"]
    assert [adam[k] for k in ("G1", "H1", "G2", "I1")] == ["beta1", 0.9, "beta2", "eps"]


def test_each_chart_is_in_view_under_the_top_cells(book):
    """Every optimizer sheet's Error by epoch chart is anchored at C4, beside its epoch table,
    above the step rows; compare's one chart draws all seven sheets' losses."""
    wb = openpyxl.load_workbook(book)
    for name in LINE_SHEETS.values():
        (chart,) = wb[name]._charts
        anchor = chart.anchor._from
        assert (anchor.row, anchor.col) == (3, 2), name  # C4: in view without scrolling
    with zipfile.ZipFile(book) as z:
        charts = [z.read(n).decode() for n in z.namelist() if re.match(r"xl/charts/chart\d+", n)]
    assert len(charts) == len(LINE_SHEETS) + 1
    assert sum("Error by epoch" in c for c in charts) == len(LINE_SHEETS)
    (compare,) = [c for c in charts if "every optimizer" in c]
    assert compare.count("<c:ser>") == len(LINE_SHEETS) and "<c:logBase" in compare


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
    b, g, ms = (cell(L.row(1) - (k == "ms_b"), L.cols[k]) for k in ("b", "de_db", "ms_b"))
    assert wb["rmsprop"][cell(L.row(1), L.cols["new_b"])].value == f"={b}-{g}*$F$1/SQRT({ms})"
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
        if opt == "eve":  # the lesson's: mom and ms
            assert sorted(r.state) == ["mom", "ms"]
            continue
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
    with pytest.raises(CfxlError, match="torch.optim has no eve"):
        graddesc.train("eve", records.data)
    with pytest.raises(CfxlError, match="lesson's spreadsheet has no adamw"):
        graddesc.lesson("adamw", records.data)


def test_adam_converges_in_the_default_workbook(records):
    """Its last epochs' loss is flat near zero and b and a sit on the true 30 and 2."""
    r = records.runs["adam"]
    loss = r.epoch_loss
    assert loss[-5:].max() < 0.01 * loss[0]
    assert abs(r.new_b[-1] - records.data.b) < 0.01 and abs(r.new_a[-1] - records.data.a) < 0.005


def test_adamw_decays_the_value_not_the_gradient(records, book):
    """adamw's sheet: the gradient is de/db itself, the new value starts from the value shrunk
    by lr * weight_decay; at the default decay b ends visibly short of the true 30 where adam
    reaches it, and with no decay AdamW is Adam bit for bit."""
    r = records.runs["adamw"]
    L = sheet_layout(r)
    ws = top_rows(book, "adamw", L.first_row + 1)
    row = L.first_row
    b, de_db, m, v, bc1, bc2 = (cell(row, L.cols[k]) for k in (
        "b", "de_db", "exp_avg_b", "exp_avg_sq_b", "bias_correction1", "bias_correction2"))
    lr, wd, eps = (cell(*L.params[k], absolute="rc") for k in ("lr", "weight_decay", "eps"))
    assert ws[cell(row, L.cols["grad_b"])] == f"={de_db}"
    assert ws[cell(row, L.cols["new_b"])] == (
        f"={b}*(1-{lr}*{wd})-{lr}/{bc1}*{m}/(SQRT({v})/{bc2}^0.5+{eps})")
    assert r.hyper.weight_decay > 0 and r.hyper.lr == records.runs["adam"].hyper.lr
    np.testing.assert_array_equal(r.grad_used, r.grad)  # the decay is not in the gradient
    assert abs(r.new_b[-1] - records.data.b) > 1 > 100 * abs(records.runs["adam"].new_b[-1]
                                                             - records.data.b)
    plain = graddesc.train("adamw", records.data, dataclasses.replace(r.hyper, weight_decay=0))
    adam = graddesc.train("adam", records.data, dataclasses.replace(r.hyper, weight_decay=0))
    for key in ("new_b", "new_a", "grad_used"):
        np.testing.assert_array_equal(getattr(plain, key), getattr(adam, key))
    assert all(np.array_equal(plain.state[k], adam.state[k]) for k in adam.state)


def test_one_number_format_per_magnitude_class(records, lesson_records, book, lesson_book):
    """State and gradients in 0.000E+00 (adagrad's sum reaches 1e9), settings in General but eps
    in 0E+00 (1E-08 and 1E-10 alike), parameters and predictions 0.0000, counts 0, on every line
    sheet."""
    sci, num = "0.000E+00", "0.0000"
    for recs, path in ((records, book), (lesson_records, lesson_book)):
        wb = openpyxl.load_workbook(path)
        for opt, r in recs.runs.items():
            ws, L = wb[LINE_SHEETS[opt]], sheet_layout(r)
            state = [k for k in L.cols if k[:-2] in r.state or k.startswith(("grad_", "de_d"))]
            assert state, opt
            row = L.row(r.n_steps - 1)  # the last step
            for k in state:
                assert ws[cell(row, L.cols[k])].number_format == sci, (opt, k)
            for k in ("b", "a", "pred", "new_b", "new_a"):
                assert ws[cell(row, L.cols[k])].number_format == num, (opt, k)
            for k in ("epoch", "step"):
                assert ws[cell(row, L.cols[k])].number_format == "0", (opt, k)
            for k, (i, j) in L.params.items():
                want = "0E+00" if k == "eps" else "General"
                assert ws[cell(i, j)].number_format == want, (opt, k)
            first = L.table_row(1)
            assert ws[cell(first, L.table["b_err"])].number_format == sci
        wb.close()
    assert records.runs["adagrad"].state["sum"].max() > 1e6  # what 0.0000 showed as ###


def test_basic_sgd_shows_the_distance_to_the_true_b_and_a(records, recomputed):
    r, values = records.runs["sgd"], recomputed.values["basic SGD"]
    L = sheet_layout(r)
    for e in range(1, L.epochs + 1):
        last = e * L.n_rows - 1
        for p, new, true in (("b", r.new_b, records.data.b), ("a", r.new_a, records.data.a)):
            got = values[cell(L.table_row(e), L.table[p + "_err"])]
            assert_close(got, new[last] - true, scale=abs(new[last]) + true)


def test_eve_is_the_lessons_sheet_cell_for_cell(lesson_records, lesson_book):
    """The lesson's eve (lesson-workbooks.md 3.9): its adam's step divided by d, and d from the
    two losses before each epoch; the Reset's d = 1 and r = 1 make the first epoch's d 1."""
    r = lesson_records.runs["eve"]
    L = sheet_layout(r)
    ws = top_rows(lesson_book, "eve", L.first_row + 2)
    b, mom, ms = (cell(L.first_row, L.cols[k]) for k in ("b", "mom_b", "ms_b"))
    d = cell(L.table_row(1), L.table["d"], absolute="rc")
    assert ws[cell(L.first_row, L.cols["new_b"])] == f"={b}-{mom}*$F$1/SQRT({ms})/{d}"
    f1, f2, r1 = (cell(L.table_row(1), L.table[k]) for k in ("ft_1", "ft_2", "r"))
    assert ws[cell(L.table_row(1), L.table["r"])] == f"=ABS({f1}-{f2})/MIN({f1},{f2})"
    beta3 = cell(*L.params["beta3"], absolute="rc")
    d0 = cell(L.table_row(0), L.table["d"])
    assert ws[cell(L.table_row(1), L.table["d"])] == f"={d0}*{beta3}+(1-{beta3})*{r1}"
    assert r.epoch_extra["r"][0] == 1 and r.epoch_extra["d"][0] == 1
    assert (r.epoch_extra["ft_1"][1:] == r.epoch_loss[:-1]).all()
    assert (r.epoch_extra["ft_2"][1:] == r.epoch_extra["ft_1"][:-1]).all()


def test_the_intro_names_every_sheet_and_the_macro_workbook(tmp_path):
    """Built from the exported workbook's own sheet list: a sheet added later must be named."""
    from test_udfs import small_ratings

    from cfxl.data.ratings import read_ratings
    from cfxl.workbooks import export_graddesc, plan
    path = export_graddesc(plan(tmp_path / "graddesc.xlsx"),
                           read_ratings(small_ratings(tmp_path / "small")), steps=2)
    wb = openpyxl.load_workbook(path, read_only=True)
    sheets = [ws.title for ws in wb.worksheets if ws.sheet_state == "visible"]
    wb.close()
    labels = {str(v) for v in top_rows(path, "Intro", 200).values()}
    assert {"cf_sgd", "gradients", "eve", COMPARE_SHEET} <= set(sheets)
    assert [s for s in sheets if s not in labels and s != "Intro"] == []
    text = " ".join(labels)
    assert "-o graddesc.xlsm" in text
