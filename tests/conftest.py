"""Shared fixtures: tiny files in the MovieLens layouts; one LibreOffice for the session."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch

# Small models train several times faster on one thread, and do not stall when the two cores
# of a CI machine are shared (OpenMP workers spin-wait for each other).
torch.set_num_threads(1)


def write_files(folder: Path, files: dict[str, str | bytes]) -> Path:
    """Write {relative name: text (UTF-8) or bytes} under folder; returns folder."""
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return folder


def zip_files(path: Path, files: dict[str, str | bytes]) -> Path:
    """A deflated zip at path holding {member name: text (UTF-8) or bytes}; returns path."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return path


@pytest.fixture
def ml_files():
    """write_files, for tests that make MovieLens-layout files."""
    return write_files


@pytest.fixture
def ml_zip():
    """zip_files, for tests that make MovieLens-layout zips."""
    return zip_files


@pytest.fixture(scope="session")
def ratings():
    """The embedded sample, read once (modules with data of their own override this)."""
    from cfxl.data.ratings import read_ratings

    return read_ratings()


@pytest.fixture(scope="session")
def seed() -> int:
    """The seed of the small models the recompute-and-compare tests train (cfxl's own, 42,
    unless CFXL_TEST_SEED says otherwise): `make test` runs those tests again with another
    seed, so a tolerance that only holds for one run's numbers shows up."""
    return int(os.environ.get("CFXL_TEST_SEED", "42"))


@pytest.fixture(scope="session")
def engine():
    """One warm LibreOffice (cfxl.proof.recalc.Engine) for all tests that recompute workbooks.

    Where LibreOffice is missing: a failure in CI (CFXL_CI is set), a skip elsewhere.
    """
    from cfxl.errors import CfxlError
    from cfxl.proof.recalc import Engine, find_soffice, find_uno_python

    try:
        find_uno_python(find_soffice())
    except CfxlError as e:
        if os.environ.get("CFXL_CI"):
            pytest.fail(f"CI must recompute workbooks: {e}")
        pytest.skip(str(e))
    with Engine(timeout=120) as warm:
        yield warm


@pytest.fixture(scope="module")
def book(request, tmp_path_factory):
    """The test module's workbook: what its `build(book)` fixture writes, through cfxl's writer."""
    from cfxl.workbooks import write_workbook

    folder = tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))
    return write_workbook(folder / "book.xlsx", request.getfixturevalue("build"))


@pytest.fixture(scope="module")
def recomputed(book, engine):
    """The test module's workbook as LibreOffice recomputes it, every formula forced."""
    from cfxl.proof.recalc import recalc

    return recalc(book, engine=engine)


@pytest.fixture
def no_work(monkeypatch):
    """Reading ratings or training fails the test: a mistake must be told before any work."""
    def work(*args, **kwargs):
        raise AssertionError("data was read or a model trained before the mistake was told")
    for target in ("cfxl.data.ratings.read_ratings", "cfxl.workbooks.read_ratings",
                   "cfxl.workbooks.fit", "cfxl.engine.checkpoint.load"):
        monkeypatch.setattr(target, work)


@pytest.fixture
def read_only(monkeypatch):
    """read_only(folder): the folder refuses writing (mode 555), also where the tests run as
    root, who may write anywhere: os.access then answers for it as for another user."""
    changed = []

    def make(folder):
        folder = Path(folder)
        folder.chmod(0o555)
        changed.append(folder)
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: access(path, mode) and not (
            Path(path) == folder and mode & os.W_OK))
    yield make
    for folder in changed:
        folder.chmod(0o755)


def pytest_collection_modifyitems(config, items):
    """With another seed (CFXL_TEST_SEED, `make test`'s second pass) only the tests whose
    fixtures reach `seed` run: the others would compute exactly what the first pass did."""
    if os.environ.get("CFXL_TEST_SEED", "42") == "42":
        return
    same = [item for item in items if "seed" not in getattr(item, "fixturenames", ())]
    if same:
        config.hook.pytest_deselected(items=same)
        items[:] = [item for item in items if item not in same]


def pytest_addoption(parser):
    parser.addoption("--update-snapshots", action="store_true",
                     help="Rewrite the golden workbook snapshots in tests/snapshots/.")


@pytest.fixture
def assert_matches_snapshot(request):
    """assert_matches_snapshot(workbook, name): the workbook against tests/snapshots/<name>.txt."""
    from golden import check_snapshot

    update = (request.config.getoption("--update-snapshots")
              or os.environ.get("CFXL_UPDATE_SNAPSHOTS") == "1")
    return lambda workbook, name, **kw: check_snapshot(workbook, name, update=update, **kw)


@pytest.fixture(scope="session")
def save_exactly():
    """save_exactly(openpyxl workbook, path) -> path, every float written as the shortest text
    that reads back as itself: openpyxl's own save keeps 16 digits, which moves the last bits
    of numbers a test did not edit."""
    from unittest import mock

    import openpyxl.cell._writer

    from cfxl.excel.update import _exact_string

    def save(wb, path):
        with mock.patch.object(openpyxl.cell._writer, "safe_string", _exact_string):
            wb.save(path)
        return path
    return save
