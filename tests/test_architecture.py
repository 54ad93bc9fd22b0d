"""The layout's rules, enforced: the sheets never meet torch or LibreOffice, data flows one way,
and no module grows past what one reader can hold."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cfxl"
SHEETS = sorted((PACKAGE / "sheets").glob("*.py"))
# what the workbook layer may import from cfxl (style.md: records.types, proof.contract, errors)
SHEETS_MAY_IMPORT = ("cfxl.records.types", "cfxl.proof.contract", "cfxl.errors", "cfxl.sheets")
MAX_LINES, MAX_CLI_LINES = 400, 300  # the CLI's modules: click only, a few calls each


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def cfxl_imports(path: Path) -> set[str]:
    """Every cfxl module a file imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "cfxl"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "cfxl":
            found |= {f"{node.module}.{a.name}" if node.module == "cfxl" else node.module
                      for a in node.names}
    return found


def test_the_sheets_import_without_torch_or_libreoffice():
    """Each sheets module in a fresh interpreter where torch, uno and cfxl's LibreOffice driver
    cannot be imported: the workbook layer meets the engine only through numpy records."""
    blocked = ("torch", "uno", "cfxl.proof.recalc", "cfxl.engine")
    code = (f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
            + "".join(f"import {module_name(p)}\n" for p in SHEETS))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parent, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("path", SHEETS, ids=lambda p: p.name)
def test_the_sheets_import_only_records_contract_and_errors(path):
    wrong = {m for m in cfxl_imports(path) if not m.startswith(SHEETS_MAY_IMPORT)}
    assert not wrong, f"{path.name} imports {sorted(wrong)}"


def test_data_flows_one_way():
    """Nothing upstream imports what sits downstream of it in the pipeline."""
    order = ["errors", "presets", "io", "data", "engine", "records", "sheets", "proof", "excel",
             "workbooks", "report", "cli"]
    rank = {name: i for i, name in enumerate(order)}
    for path in PACKAGE.rglob("*.py"):
        here = module_name(path).split(".")
        if len(here) < 2 or here[1] not in rank:
            continue
        for m in cfxl_imports(path):
            there = m.split(".")
            if m.startswith("cfxl.proof.contract"):
                continue  # the proof's contract: what the sheets write and proof reads back
            if len(there) > 1 and there[1] in rank and there[1] != here[1]:
                assert rank[there[1]] < rank[here[1]], f"{module_name(path)} imports {m}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: module_name(p))
def test_no_module_is_too_long(path):
    lines = len(path.read_text().splitlines())
    limit = MAX_CLI_LINES if path.parent.name == "cli" else MAX_LINES
    assert lines < limit, f"{path.relative_to(PACKAGE.parent)} has {lines} lines"
