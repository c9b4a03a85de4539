"""The house keeps its shape: who may import whom, and no import circles.

A small import-graph check over the source (``ast``, no new dependency). Every
``import`` in the project's packages (those pyproject.toml ships) becomes an edge
``module → module`` of one of three kinds:

- ``module``: runs when the module is imported (top level, class bodies, top-level
  ``try``/``if``, the ``else`` of ``if TYPE_CHECKING``);
- ``type_checking``: under ``if TYPE_CHECKING:`` — never runs, but the module still
  depends on what it names;
- ``function``: inside a function — runs when it is called, after every module has
  finished loading (the usual way to defer a heavy or optional import).

**Layer rules** look at every edge, whatever its kind: a dependency hidden in a
function or a type hint is still a dependency (``schedules`` naming a ``broadcaster``
type knows about ``broadcaster``).

**Circles.** The ones that break things are runtime circles: modules that import each
other at load time see each other half-initialised, and the result depends on which
is imported first. Those are checked over ``module`` edges and must never appear. The
design (docs: "No import circles anywhere") also forbids two modules that depend on
each other through type hints — each needs the other to be understood — so a second
check adds ``type_checking`` edges. Function-local imports are left out of both: they
cannot see a half-loaded module, and counting them would outlaw the lazy imports the
command line uses on purpose; layer rules still see them.

An edge points at the deepest project module named (``from .store import Store`` →
``broadcaster.store``; ``from . import cap`` → ``broadcaster.alerts.cap``); the parent
packages' ``__init__`` that Python also runs are not edges of their own (ours hold
only docstrings).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODULE, TYPE_CHECKING, FUNCTION = "module", "type_checking", "function"
RUNTIME = frozenset({MODULE})
STATIC = frozenset({MODULE, TYPE_CHECKING})


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, dotted
    target: str  # imported module, dotted (deepest project module, or as written)
    path: str  # file of the import, relative to the root
    line: int
    kind: str  # MODULE, TYPE_CHECKING or FUNCTION

    def where(self) -> str:
        return f"{self.path}:{self.line} ({self.kind})"


@dataclass(frozen=True)
class Rule:
    """What one package may import. ``allow``: the only project modules it may import
    (itself always); ``forbid``: modules (project or third-party) it must not import.
    A name covers its submodules."""

    package: str
    allow: frozenset[str] | None = None
    forbid: frozenset[str] = frozenset()
    why: str = ""


#: The rules, as each package's ``__init__`` docstring states them.
RULES = (
    Rule("loa", allow=frozenset(), why="the shared kernel imports no other package"),
    Rule(
        "devices",
        allow=frozenset({"loa"}),
        why="the wire protocol is written once, on the shared kernel alone",
    ),
    Rule(
        "schedules",
        forbid=frozenset({"broadcaster", "firmware_sim", "aiomqtt", "devices.transport"}),
        why="schedules speak to the rest through interfaces they define, and know no MQTT",
    ),
    Rule(
        "audio",
        allow=frozenset({"loa"}),
        forbid=frozenset({"aiomqtt", "starlette", "uvicorn", "httpx"}),
        why="audio knows nothing of MQTT or HTTP, nor of the rest of the project",
    ),
    Rule(
        "conformance",
        allow=frozenset({"devices", "loa"}),
        why="the conformance kit judges any speaker by the wire protocol alone",
    ),
    Rule(
        "firmware_sim",
        allow=frozenset({"devices", "loa", "audio.mp3"}),
        why="the reference speaker follows docs/protocol.md: devices/ (and the pure MP3 "
        "frame splitter of audio/), never the controller",
    ),
)


def project_packages(root: Path = ROOT) -> list[str]:
    """The top-level packages pyproject.toml ships (so a new one is checked too)."""
    with (root / "pyproject.toml").open("rb") as fh:
        config = tomllib.load(fh)
    return list(config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement with its kind."""

    def walk(
        nodes: Iterable[ast.AST], kind: str
    ) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield node, kind
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from walk(ast.iter_child_nodes(node), FUNCTION)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                inner = kind if kind == FUNCTION else TYPE_CHECKING
                yield from walk(node.body, inner)
                yield from walk(node.orelse, kind)
            else:
                yield from walk(ast.iter_child_nodes(node), kind)

    yield from walk(tree.body, MODULE)


def _deepest(name: str, known: set[str]) -> str:
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return name


def edges_of(root: Path, path: Path, known: set[str], packages: set[str]) -> list[Edge]:
    source = module_name(root, path)
    is_package = path.name == "__init__.py"
    here = source if is_package else source.rpartition(".")[0]
    rel = str(path.relative_to(root))
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    out: list[Edge] = []
    for node, kind in _imports(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                up = here.split(".")
                up = up[: len(up) - (node.level - 1)] if node.level > 1 else up
                base = ".".join([*up, node.module] if node.module else up)
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        for t in targets:
            target = _deepest(t, known) if t.split(".")[0] in packages else t
            out.append(Edge(source, target, rel, node.lineno, kind))
    return out


def import_graph(root: Path, packages: Iterable[str]) -> list[Edge]:
    pkgs = set(packages)
    files = sorted(p for pkg in pkgs for p in (root / pkg).rglob("*.py"))
    known = {module_name(root, p) for p in files}
    return [e for p in files for e in edges_of(root, p, known, pkgs)]


def _covers(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_violations(
    edges: Iterable[Edge], rules: Iterable[Rule], packages: Iterable[str]
) -> list[str]:
    pkgs = set(packages)
    out = []
    for rule in rules:
        for e in edges:
            if not _covers(e.source, rule.package) or _covers(e.target, rule.package):
                continue
            in_project = e.target.split(".")[0] in pkgs
            allowed = rule.allow is None or any(_covers(e.target, a) for a in rule.allow)
            if (in_project and not allowed) or any(_covers(e.target, f) for f in rule.forbid):
                out.append(f"{e.source} imports {e.target} at {e.where()}: {rule.why}")
    return out


def circles(edges: Iterable[Edge], kinds: frozenset[str]) -> list[str]:
    """Every strongly connected group of modules, as one circle through it with the
    imports that close it (Tarjan's algorithm, iterative)."""
    graph: dict[str, dict[str, Edge]] = {}
    for e in edges:
        if e.kind in kinds and e.source != e.target:
            graph.setdefault(e.source, {}).setdefault(e.target, e)
            graph.setdefault(e.target, {})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    group.append(top)
                    if top == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return [_describe(group, graph) for group in groups]


def _describe(group: list[str], graph: dict[str, dict[str, Edge]]) -> str:
    """One shortest circle through the group's first module, with where each import is."""
    members, first = set(group), group[0]
    came: dict[str, Edge] = {}
    frontier = [first]
    while frontier and first not in came:
        nxt = []
        for node in frontier:
            for target, edge in sorted(graph[node].items()):
                if target in members and target not in came:
                    came[target] = edge
                    nxt.append(target)
        frontier = nxt
    path: list[Edge] = []
    node = first
    while True:
        edge = came[node]
        path.append(edge)
        node = edge.source
        if node == first:
            break
    path.reverse()
    steps = " → ".join(f"{e.target} [{e.where()}]" for e in path)
    return f"{first} → {steps}" + (f" (circle of {len(group)} modules)" if len(group) > 2 else "")


# --- the project ------------------------------------------------------------------------


def test_the_packages_keep_to_their_layers() -> None:
    packages = project_packages()
    assert {r.package for r in RULES} <= set(packages)
    edges = import_graph(ROOT, packages)
    assert len(edges) > 500  # the graph was read (not an empty walk that always passes)
    assert layer_violations(edges, RULES, packages) == []


def test_no_runtime_import_circles() -> None:
    edges = import_graph(ROOT, project_packages())
    assert circles(edges, RUNTIME) == []


def test_no_import_circles_even_through_type_hints() -> None:
    edges = import_graph(ROOT, project_packages())
    assert circles(edges, STATIC) == []


def test_every_package_says_what_lives_there() -> None:
    """Each package's ``__init__`` docstring: one line on what lives there (and the
    rules above say what it may import)."""
    for pkg in project_packages():
        for init in sorted((ROOT / pkg).rglob("__init__.py")):
            doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
            assert doc and doc.strip(), f"{init.relative_to(ROOT)} has no docstring"


# --- the checker itself, on a small tree that breaks every rule -------------------------


def _tree(root: Path, files: dict[str, str]) -> None:
    (root / "pyproject.toml").write_text(
        "[tool.hatch.build.targets.wheel]\n"
        'packages = ["loa", "broadcaster", "devices", "schedules", "audio", "firmware_sim"]\n',
        encoding="utf-8",
    )
    for pkg in ("loa", "broadcaster", "broadcaster/alerts", "devices", "schedules", "audio"):
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").write_text('"""x"""\n', encoding="utf-8")
    (root / "firmware_sim").mkdir(exist_ok=True)
    (root / "firmware_sim" / "__init__.py").write_text("", encoding="utf-8")
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")


def test_the_checker_finds_circles_of_each_kind(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            # a runtime circle of two, through relative imports and a class body
            "broadcaster/dispatcher.py": "from .live import Live\n",
            "broadcaster/live.py": "class Live:\n    from . import dispatcher\n",
            # a circle of three through a type hint
            "broadcaster/alerts/a.py": "from . import b\n",
            "broadcaster/alerts/b.py": "from ..store import Store\n",
            "broadcaster/store.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from .alerts.a import A\n"
                "else:\n    import json\n"
            ),
            # a lazy import both ways: not a circle
            "broadcaster/cli.py": "def main():\n    from broadcaster import demo\n",
            "broadcaster/demo.py": "async def run():\n    import broadcaster.cli\n",
        },
    )
    edges = import_graph(tmp_path, project_packages(tmp_path))
    runtime = circles(edges, RUNTIME)
    assert len(runtime) == 1
    assert runtime[0].startswith("broadcaster.dispatcher → broadcaster.live")
    assert "broadcaster/live.py:2 (module)" in runtime[0]
    static = circles(edges, STATIC)
    assert len(static) == 2
    assert any(
        "broadcaster.alerts.a → broadcaster.alerts.b" in c
        and "broadcaster/store.py:3 (type_checking)" in c
        and "circle of 3" in c
        for c in static
    ), static
    assert not any("broadcaster.cli" in c for c in runtime + static)


def test_the_checker_finds_forbidden_imports(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "broadcaster/store.py": "",
            "schedules/engine.py": (
                "from loa.clock import Clock\n"
                "def start():\n    from broadcaster.store import Store\n"
            ),
            "devices/topics.py": "import loa.errors\n",
            "devices/transport.py": "import aiomqtt\n",
            "audio/encode.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from broadcaster.alerts import a\n"
            ),
            "audio/mp3.py": "import aiomqtt\n",
            "audio/ffmpeg.py": "from loa import errors\n",
            "firmware_sim/speaker.py": (
                "from devices.topics import x\nfrom audio.mp3 import y\nfrom . import spec\n"
                "from audio.ffmpeg import z\nfrom schedules import engine\n"
            ),
            "firmware_sim/spec.py": "",
            "loa/clock.py": "from devices import topics\n",
            "broadcaster/alerts/a.py": "from schedules.engine import start\nimport aiomqtt\n",
        },
    )
    packages = project_packages(tmp_path)
    found = layer_violations(import_graph(tmp_path, packages), RULES, packages)
    assert sorted(v.split(":")[0] for v in found) == sorted(
        [
            "schedules.engine imports broadcaster.store at schedules/engine.py",
            "audio.encode imports broadcaster.alerts.a at audio/encode.py",
            "audio.mp3 imports aiomqtt at audio/mp3.py",
            "firmware_sim.speaker imports audio.ffmpeg at firmware_sim/speaker.py",
            "firmware_sim.speaker imports schedules.engine at firmware_sim/speaker.py",
            "loa.clock imports devices.topics at loa/clock.py",
        ]
    ), found
    assert any(v.startswith("schedules.engine") and ":3 (function)" in v for v in found)
    assert any(v.startswith("audio.encode") and ":3 (type_checking)" in v for v in found)
