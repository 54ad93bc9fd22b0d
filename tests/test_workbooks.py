"""The example workbooks in workbooks/ are what `cfxl demo` writes: regenerated and compared."""

from pathlib import Path

import pytest

from cfxl.data.ratings import read_ratings
from cfxl.presets import WORKBOOK_MODEL
from cfxl.workbooks import demo_outputs, lesson_config, write_workbooks
from cfxl.proof.diff import diff, format_diff
from cfxl.engine.train import fit

WORKBOOKS = Path(__file__).parent.parent / "workbooks"
# Training runs thousands of float32 steps: another CPU may round the last bits differently,
# so values compare to 1e-6 relative; formulas, text and structure must match exactly.
TOLERANCE = dict(rtol=1e-6, atol=1e-9)
LONG_SHEETS = {"users": 30, "movies": 30, "predictions": 30,  # first rows only: reviewable text
               "cf_sgd": 40, "cf_momentum": 40, "cf_adam": 40, "cf_adamw": 40, "_torch": 40,
               "train": 300}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("SOURCE_DATE_EPOCH", "1767225600")  # the demo's fixed date
    data = read_ratings()
    trained = fit(lesson_config(WORKBOOK_MODEL), data, progress=False)
    return write_workbooks(trained, data, demo_outputs(tmp_path_factory.mktemp("workbooks")))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_committed_workbooks_match_the_code(regenerated):
    for book in regenerated:
        committed = WORKBOOKS / book.name
        assert committed.exists(), f"{committed} is missing: run `make demo` and commit it"
        found = diff(committed, book, **TOLERANCE)
        assert not found, (f"{committed} drifted from the code; run `make demo` and commit it:\n"
                           + format_diff(found))


def test_demo_workbooks_match_their_golden_snapshots(regenerated, assert_matches_snapshot):
    assert sorted(b.name for b in regenerated) == ["collab_filter.xlsx", "graddesc.xlsx", "unrolled.xlsx"]
    for book in regenerated:
        assert_matches_snapshot(book, book.stem, head=LONG_SHEETS, **TOLERANCE)
