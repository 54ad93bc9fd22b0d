"""The README says what is true: its commands exist, its layout is the package's, its Python runs."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cfxl.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text under a `## title` heading, up to the next heading of that level."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert found, f"README.md has no '## {title}' section"
    return found.group(1)


def blocks(text: str, lang: str = "") -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def commands() -> list[list[str]]:
    """Each `cfxl ...` line of the Commands section's first block, as the words before options."""
    out = []
    text = blocks(section("Commands"), "sh")[0].replace("\\\n", " ")  # joined continuations
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("cfxl "):
            words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))[1:]
            out.append([w for w in words[:2] if re.fullmatch(r"[a-z][a-z-]*", w)][:2])
    return out


def test_every_command_in_the_readme_exists_and_explains_itself():
    found = commands()
    assert len(found) >= 10
    for words in found:
        group = cli
        for i, word in enumerate(words):
            if not hasattr(group, "commands"):
                break
            assert word in group.commands, f"README names `cfxl {' '.join(words[:i + 1])}`"
            group = group.commands[word]
        result = CliRunner().invoke(cli, [*words[:i + 1], "--help"])
        assert result.exit_code == 0 and "Example" in result.output, words


def test_every_command_is_in_the_readme():
    named = {" ".join(w) for w in commands()} | {w[0] for w in commands()}
    for name, command in cli.commands.items():
        subs = getattr(command, "commands", {})
        for full in ([f"{name} {s}" for s in subs] if subs else [name]):
            assert full in named, f"`cfxl {full}` is missing from the README's Commands"


def layout() -> dict[str, str]:
    """{path: description} of the Layout tree: two spaces of indent per level, folders end in /."""
    tree = blocks(section("Layout"))[0]
    paths, stack = {}, []
    for line in tree.splitlines():
        if not line.strip():
            continue
        indent = (len(line) - len(line.lstrip())) // 2
        name, _, text = line.strip().partition(" ")
        stack[indent:] = [name]
        paths["".join(stack)] = text.strip()
    return paths


def test_the_readme_layout_is_the_package():
    listed = layout()
    assert "cfxl/" in listed
    for path in listed:
        assert (ROOT / path).exists(), f"README's Layout lists {path}, which does not exist"
    package = ROOT / "cfxl"
    modules = [p for p in package.rglob("*.py") if p.name != "__init__.py"]
    folders = [p.parent for p in package.rglob("__init__.py")]
    for p in modules:
        assert str(p.relative_to(ROOT)) in listed, f"{p.relative_to(ROOT)} is not in README's Layout"
    for folder in folders:
        assert f"{folder.relative_to(ROOT)}/" in listed, f"{folder.relative_to(ROOT)}/ is not listed"
    assert all(text for text in listed.values()), "every line of the Layout says what it holds"


def test_the_readme_python_runs(tmp_path):
    code = blocks(README, "python")
    assert code, "README.md shows how to use cfxl from Python"
    for snippet in code:
        done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("name", ["demo", "test"])
def test_the_readme_shows_the_two_commands_of_a_fresh_machine(name):
    start = section("Quick start (fresh Debian machine, Python 3.11)")
    assert re.search(rf"^make {name}\b", start, re.M)
    assert re.search(rf"^{name}:", (ROOT / "Makefile").read_text(), re.M)
