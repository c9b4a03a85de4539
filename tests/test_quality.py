"""The house tools pass on the packages: ruff (lint and format) and mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    "argv",
    [("ruff", "check", "."), ("ruff", "format", "--check", ".")],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff(argv: tuple[str, ...]) -> None:
    r = run(*argv)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict() -> None:
    r = run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr
