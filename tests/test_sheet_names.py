"""Every sheet name of every workbook cfxl writes is one Excel accepts: its length, characters,
apostrophes, the name Excel reserves (History) and uniqueness ignoring case."""

import re
import zipfile
from html import unescape

import pytest

from cfxl.data.ratings import read_ratings
from cfxl.engine.train import Config, fit
from cfxl.workbooks import export_collab, export_graddesc, export_unrolled, plan
from test_udfs import small_ratings

FORBIDDEN = set('[]:*?/\\')  # characters Excel refuses in a sheet name
RESERVED = "history"          # English Excel keeps 'History' for its change tracking, in any case


def sheet_name_problems(names: list[str]) -> list[str]:
    """What Excel would refuse about a workbook's sheet names (none: an empty list)."""
    problems, seen = [], {}
    for name in names:
        if not name.strip():
            problems.append(f"{name!r} is blank")
        if len(name) > 31:
            problems.append(f"{name!r} is longer than 31 characters")
        if FORBIDDEN & set(name):
            problems.append(f"{name!r} holds {''.join(sorted(FORBIDDEN & set(name)))}")
        if name.startswith("'") or name.endswith("'"):
            problems.append(f"{name!r} begins or ends with an apostrophe")
        if name.lower() == RESERVED:
            problems.append(f"{name!r} is reserved by Excel")
        if name.lower() in seen:
            problems.append(f"{name!r} and {seen[name.lower()]!r} are one name to Excel")
        seen.setdefault(name.lower(), name)
    return problems


def sheet_names(path) -> list[str]:
    """The sheet names as the file stores them (xl/workbook.xml), hidden sheets included."""
    with zipfile.ZipFile(path) as zf:
        xml = zf.read("xl/workbook.xml").decode()
    return [unescape(n) for n in re.findall(r'<sheet [^>]*?name="([^"]*)"', xml)]


@pytest.mark.parametrize(("names", "found"), [
    (["users", "xlwings.conf", "_torch", "basic SGD"], []),
    (["History"], ["'History' is reserved by Excel"]),
    (["HISTORY"], ["'HISTORY' is reserved by Excel"]),
    (["a" * 32], [f"{'a' * 32!r} is longer than 31 characters"]),
    (["a/b:c"], ["'a/b:c' holds /:"]),
    (["'quoted"], ['"\'quoted" begins or ends with an apostrophe']),
    ([" "], ["' ' is blank"]),
    (["Users", "users"], ["'users' and 'Users' are one name to Excel"]),
])
def test_the_check_finds_what_excel_refuses(names, found):
    assert sheet_name_problems(names) == found


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return read_ratings(small_ratings(tmp_path_factory.mktemp("data") / "small"))


@pytest.fixture(scope="module")
def workbooks(data, tmp_path_factory):
    """Each workbook cfxl writes, small: collab, graddesc and unrolled, and the macro variants."""
    folder = tmp_path_factory.mktemp("books")
    trained = fit(Config(n_factors=3, epochs=1, bs=64), data, progress=False)
    return {
        "collab.xlsx": export_collab(plan(folder / "collab.xlsx"), trained, data),
        "collab.xlsm": export_collab(plan(folder / "collab.xlsm", model=True), trained, data),
        "graddesc.xlsx": export_graddesc(plan(folder / "graddesc.xlsx"), data, steps=2),
        "graddesc.xlsm": export_graddesc(plan(folder / "graddesc.xlsm"), data, steps=2),
        "unrolled.xlsx": export_unrolled(plan(folder / "unrolled.xlsx"), data, steps=2, n_factors=2),
    }


@pytest.mark.parametrize("name", ["collab.xlsx", "collab.xlsm", "graddesc.xlsx", "graddesc.xlsm",
                                  "unrolled.xlsx"])
def test_every_sheet_name_is_one_excel_accepts(workbooks, name):
    names = sheet_names(workbooks[name])
    assert len(names) >= 2 and sheet_name_problems(names) == []


def test_the_training_sheet_is_epochs_not_history(workbooks):
    names = sheet_names(workbooks["collab.xlsx"])
    assert "epochs" in names and not any(n.lower() == "history" for n in names)
