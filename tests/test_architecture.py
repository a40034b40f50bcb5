"""The package map of docs/architecture.md holds: web → services → storage, rtc a leaf,
no cycles between packages. Every import counts, also those inside functions. And the
tests share tests/helpers.py, never each other's modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "smartpractice"
# Only these may build on the web layer: it is what they start.
MAY_IMPORT_WEB = {"web", "app", "cli"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The project modules a file imports, relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # `from smartpractice.rooms import call` imports the module rooms.call.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module == "smartpractice" or module.startswith("smartpractice.")}


def _unit(module: str) -> str:
    """The first-level package (or top-level module) a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")
               if "migrations" not in path.parts}
    known_units = {_unit(name) for name in modules}
    return {name: {m for m in imported if _unit(m) in known_units} for name, imported in modules.items()}


GRAPH = _graph()


def _violations(rule) -> list[str]:
    return sorted(f"{module} imports {imported}" for module, imports in GRAPH.items()
                  for imported in imports if rule(module, imported))


def test_the_map_sees_every_package():
    assert {"web", "rooms", "rtc", "storage", "accounts", "scheduling"} <= {_unit(m) for m in GRAPH}
    assert any(imported.startswith("smartpractice.storage") for imported in GRAPH["smartpractice.audit"])


def test_rtc_is_a_leaf():
    assert _violations(lambda m, i: _unit(m) == "rtc" and _unit(i) != "rtc") == []


def test_only_web_app_and_cli_import_web():
    assert _violations(lambda m, i: _unit(i) == "web" and _unit(m) not in MAY_IMPORT_WEB) == []


def test_web_never_reads_storage():
    assert _violations(lambda m, i: _unit(m) == "web" and _unit(i) == "storage") == []


def _names(path: Path):
    """Every name, attribute and imported module or name in a file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, ast.alias):
            yield node.name
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ""


def test_web_never_holds_the_database_engine():
    # Handlers ask services; the engine (keys.engine_key) is for the app's own tasks and the CLI.
    used = {f"{path.relative_to(PACKAGE)}: {name}" for path in (PACKAGE / "web").rglob("*.py")
            for name in _names(path) if name in {"engine", "engine_key"} or name.startswith("sqlalchemy")}
    assert used == set()


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle in a directed graph, as the list of its nodes, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_package_depends_on_itself_through_another():
    edges: dict[str, set[str]] = {}
    for module, imports in GRAPH.items():
        edges.setdefault(_unit(module), set()).update(
            _unit(i) for i in imports if _unit(i) != _unit(module))
    assert _cycle(edges) is None


@pytest.mark.parametrize(("edges", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
])
def test_the_cycle_finder_finds_cycles(edges, expected):
    assert _cycle(edges) == expected


def test_no_module_is_too_long_to_read():
    long = [f"{path.relative_to(PACKAGE)}: {n}" for path in PACKAGE.rglob("*.py")
            if "migrations" not in path.parts and (n := len(path.read_text().splitlines())) > 400]
    assert long == []


def test_test_modules_share_helpers_not_each_other():
    # Shared test code lives in tests/helpers.py; conftest.py holds fixtures only.
    tests = PACKAGE.parent / "tests"
    imported = {f"{path.name}: {node.module}" for path in tests.glob("*.py")
                for node in ast.walk(ast.parse(path.read_text(), str(path)))
                if isinstance(node, ast.ImportFrom) and node.module
                and (node.module == "tests.conftest" or node.module.startswith("tests.test_"))}
    assert imported == set()
