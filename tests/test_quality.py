"""The linter, the formatter and the type checker, run as CI runs the suite (`bash tests/run`): each
finding fails here with the tool's own output. Configured in pyproject.toml ([tool.ruff],
[tool.mypy]); installed by the [test] extra, pinned to a minor release so a new rule cannot fail a tree
nobody changed. To fix: `ruff format .`, `ruff check --fix .`, then what mypy says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHECKS = {
    "ruff check": ["-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
    "ruff format": ["-m", "ruff", "format", "--no-cache", "--check", "--diff", "."],
    "mypy": ["-m", "mypy"],  # files, strictness and overrides come from pyproject.toml
}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", CHECKS)
def test_the_tree_is_clean(name: str):
    result = run(CHECKS[name], ROOT)
    assert result.returncode == 0, f"{name} found something (exit {result.returncode}):\n{result.stdout}{result.stderr}"
