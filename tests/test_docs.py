"""Docs drift fails a test: every setting, endpoint and command is documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.routing import Route, WebSocketRoute

from broadcaster.app import ROUTES
from broadcaster.cli import parser
from broadcaster.settings import describe

ROOT = Path(__file__).parent.parent


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [n for n, _, _ in describe()])
def test_every_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in read("docs/operations.md"), f"{name} missing from docs/operations.md"


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if isinstance(r, Route | WebSocketRoute)], ids=lambda r: r.path
)
def test_every_endpoint_is_documented(route: Route | WebSocketRoute) -> None:
    doc = read("docs/api.md")
    methods = {"WS"} if isinstance(route, WebSocketRoute) else (route.methods or {"GET"})
    for method in sorted(methods - {"HEAD"}):
        assert f"| {method} | `{route.path}` |" in doc, f"{method} {route.path} not in docs/api.md"


def test_every_command_is_documented() -> None:
    sub = next(a for a in parser()._actions if a.dest == "command")
    readme, ops = read("README.md"), read("docs/operations.md")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"loa {name}" in readme + ops, f"loa {name} is not documented"


def test_readme_commands_are_the_ones_ci_runs() -> None:
    readme, ci = read("README.md"), read(".ci/run")
    test_cmd = "scripts/install --test && .venv/bin/python -m pytest -q -n 2"
    assert test_cmd in readme
    assert ci.strip().splitlines()[-1] == test_cmd
    assert "scripts/install && .venv/bin/loa demo" in readme
    headless = ".venv/bin/loa demo --headless --duration 30"
    assert f"`{headless}`" in readme
    lines = ci.strip().splitlines()
    assert f"scripts/install && {headless}" in lines[:-1], "CI must run the first command too"
