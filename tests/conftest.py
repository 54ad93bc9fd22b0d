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
