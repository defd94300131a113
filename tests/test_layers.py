"""gate's layers, read from the source with the AST (nothing is imported or run):

- the core (CORE below) imports no web framework, not even lazily inside a function or under
  TYPE_CHECKING, and imports only other core modules (else the framework comes in through them);
- gate/recording/ records and reports: it never imports the request path (gate.proxy) or the rewriter
  (gate.rewrite);
- no import cycles among gate's modules, lazy imports included (a lazy import that only dodges a cycle
  is still one); an import under ``if TYPE_CHECKING:`` never runs and only names a type, so it makes
  no cycle (it still counts against the core: the core does not even name a web framework's types).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

GATE = Path(__file__).resolve().parent.parent / "gate"

# The core: what reads pages and decides what they may load (URLs, JavaScript, charsets, the HTML
# stream, the vendor registry, the rewriter, decoders), the consent and its tokens, the texts the
# visitor reads, the settings and the store. Kept free of the server (starlette, uvicorn) and the HTTP
# client (httpx, httpcore) so it can be read, tested and benchmarked without either, and reused by
# `gate scan` and `gate check`. A new module that imports neither joins this list.
CORE = frozenset(
    {
        "gate",
        "gate.urls",
        "gate.jsscan",
        "gate.charset",
        "gate.htmlstream",
        "gate.vendors",
        "gate.rewrite",
        "gate.units",
        "gate.streams",
        "gate.nested",
        "gate.inject",
        "gate.verdict",
        "gate.decisions",
        "gate.treestate",
        "gate.matcher",
        "gate.inert",
        "gate.decoders",
        "gate.transform",
        "gate.headers",
        "gate.errors",
        "gate.consent",
        "gate.tokens",
        "gate.expiry",
        "gate.consentmode",
        "gate.guard",
        "gate.csp",
        "gate.banner",
        "gate.pages_text",
        "gate.settings",
        "gate.limits",
        "gate.later",
        "gate.shares",
        "gate.recording",
        "gate.recording.store",
        "gate.recording.journal",
        "gate.recording.report_page",
        "gate.recording.metrics_setup",
    }
)
# Core modules mypy does not check strictly yet (pyproject.toml's strict override lists the rest): the
# rewriter's, until issue 13's split of them lands.
NOT_YET_STRICT: frozenset[str] = frozenset()  # every core module is strict
WEB_FRAMEWORKS = ("starlette", "uvicorn", "httpx", "httpcore")
# What recording must not import: it records what the gate decided, it does not gate.
NOT_FROM_RECORDING = ("gate.proxy", "gate.rewrite")


@dataclass(frozen=True)
class Import:
    module: str  # absolute, e.g. "gate.urls" or "starlette.requests"
    line: int
    typing_only: bool = False  # under ``if TYPE_CHECKING:``


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file under ``root`` (the package directory)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str] | dict[str, Path]) -> Iterator[Import]:
    """Every import in the file, wherever it stands (module level, function body, TYPE_CHECKING block,
    try/except), as absolute module names; ``from pkg import mod`` yields pkg.mod when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, id(node) in typing_only)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield Import(module, node.lineno, id(node) in typing_only)
            for alias in node.names:
                if f"{module}.{alias.name}" in known:
                    yield Import(f"{module}.{alias.name}", node.lineno, id(node) in typing_only)


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def graph(root: Path) -> dict[str, list[Import]]:
    mods = modules(root)
    return {name: sorted(imports(name, path, mods), key=lambda i: i.line) for name, path in mods.items()}


def _is(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def core_violations(g: dict[str, list[Import]], core: frozenset[str]) -> list[str]:
    out = []
    for name in sorted(core & g.keys()):
        for imp in g[name]:
            if _is(imp.module, WEB_FRAMEWORKS):
                out.append(f"{name} (line {imp.line}) imports {imp.module}: the core imports no web framework")
            elif imp.module in g and imp.module not in core and imp.module != name:
                out.append(f"{name} (line {imp.line}) imports {imp.module}, which is not core")
    return out


def recording_violations(g: dict[str, list[Import]], package: str = "gate.recording") -> list[str]:
    return [
        f"{name} (line {imp.line}) imports {imp.module}: recording records, it does not gate"
        for name in sorted(g)
        if _is(name, (package,))
        for imp in g[name]
        if _is(imp.module, NOT_FROM_RECORDING)
    ]


def cycles(g: dict[str, list[Import]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), as a path. Imports
    under TYPE_CHECKING are left out: they never run."""
    edges = {
        n: sorted({i.module for i in imps if i.module in g and i.module != n and not i.typing_only})
        for n, imps in g.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_path_in(component, edges) for component in components]


def _path_in(component: set[str], edges: dict[str, list[str]]) -> list[str]:
    """A cycle through the component's first module: breadth-first back to where it started."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in edges[v]:
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w in component and w not in came_from:
                    came_from[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # a component of two or more always has one


# -- gate itself ------------------------------------------------------------------------------------
GRAPH = graph(GATE)


def test_the_core_list_names_modules_that_exist():
    assert sorted(CORE - GRAPH.keys()) == []


def test_the_core_imports_no_web_framework_not_even_lazily():
    found = core_violations(GRAPH, CORE)
    assert not found, "\n".join(found)


def test_mypy_checks_the_core_strictly():
    config = tomllib.loads((GATE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    strict = [o for o in config["tool"]["mypy"]["overrides"] if o.get("disallow_untyped_defs")]
    assert len(strict) == 1, "one strict override in pyproject.toml"
    assert sorted(strict[0]["module"]) == sorted(CORE - NOT_YET_STRICT)


def test_recording_never_imports_the_request_path_or_the_rewriter():
    found = recording_violations(GRAPH)
    assert not found, "\n".join(found)


def test_no_import_cycles_among_gate_modules():
    found = cycles(GRAPH)
    assert found == [], "import cycles: " + "; ".join(" -> ".join(c) for c in found)


# -- the checks catch what they are for -------------------------------------------------------------
@pytest.fixture
def fake(tmp_path: Path):
    """A package named gate under tmp_path, written file by file."""
    root = tmp_path / "gate"
    (root / "recording").mkdir(parents=True)
    for init in (root / "__init__.py", root / "recording" / "__init__.py"):
        init.write_text("")

    def write(relative: str, source: str) -> Path:
        path = root / relative
        path.write_text(source)
        return root

    return write


def test_a_lazy_import_of_starlette_in_a_core_module_is_caught(fake):
    root = fake("urls.py", "def parse():\n    from starlette.requests import Request\n    return Request\n")
    assert core_violations(graph(root), frozenset({"gate.urls"})) == [
        "gate.urls (line 2) imports starlette.requests: the core imports no web framework"
    ]


def test_a_type_checking_import_and_a_non_core_neighbour_are_caught(fake):
    fake("proxy.py", "import httpx\n")
    root = fake(
        "csp.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import httpx\nfrom . import proxy\n"
    )
    assert core_violations(graph(root), frozenset({"gate", "gate.csp"})) == [
        "gate.csp (line 3) imports httpx: the core imports no web framework",
        "gate.csp (line 4) imports gate.proxy, which is not core",
    ]


def test_recording_importing_the_rewriter_is_caught(fake):
    fake("rewrite.py", "class Outcome: ...\n")
    root = fake("recording/ledger.py", "from ..rewrite import Outcome\n")
    assert recording_violations(graph(root)) == [
        "gate.recording.ledger (line 1) imports gate.rewrite: recording records, it does not gate"
    ]


def test_a_type_checking_import_makes_no_cycle(fake):
    fake("context.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .readiness import Readiness\n")
    root = fake("readiness.py", "def check():\n    from .context import gate_of\n")
    assert cycles(graph(root)) == []


def test_a_cycle_through_a_lazy_import_is_reported_as_a_path(fake):
    fake("recording/report.py", "from .receipts import RETRY_AFTER\n")
    fake("recording/receipts.py", "from .recorder import ReceiptsFull\n")
    root = fake("recording/recorder.py", "def full():\n    from gate.recording import report\n")
    assert cycles(graph(root)) == [
        ["gate.recording.receipts", "gate.recording.recorder", "gate.recording.report", "gate.recording.receipts"]
    ]
