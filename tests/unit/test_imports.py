"""The package's structure: no import cycle among its modules, no oversized module.

The import graph is read from the source with ``ast``: every ``import`` statement, those
inside functions included (a cycle hidden in a function is still a cycle), relative
imports resolved as Python resolves them. ``from package import name`` depends on the
submodule ``package.name`` when there is one, else on the package, as import-linter and
grimp count it; a parent package imported implicitly is no edge. Imports under
``if TYPE_CHECKING:`` never run and are not counted.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

import starburst_dask

ROOT = Path(starburst_dask.__file__).parent
PACKAGE = "starburst_dask"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST):
    """The tree's nodes, less the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` (at ``path``) imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # ``import a.b.c`` runs a.b.c; keep the longest name that is one of ours.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@functools.cache
def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(name, path, known) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The shortest cycle through each module that is in one, as a path; each cycle once.

    Modules in a cycle are those of a strongly connected group (Tarjan).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the package's size
        index[node] = low[node] = len(index)
        stack.append(node)
        for after in sorted(graph[node]):
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    found: dict[tuple[str, ...], list[str]] = {}
    for group in groups:
        for start in sorted(group):
            cycle = _cycle_through(graph, group, start)
            first = cycle.index(min(cycle))  # the same cycle from another start: once
            found.setdefault(tuple(cycle[first:-1] + cycle[:first]), cycle)
    return list(found.values())


def _cycle_through(graph: dict[str, set[str]], group: set[str], start: str) -> list[str]:
    """A shortest cycle through ``start``, staying inside its group."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for after in sorted(graph[node] & group):
                if after == start:
                    return [*paths[node], start]
                if after not in paths:
                    paths[after] = [*paths[node], after]
                    following.append(after)
        frontier = following
    raise AssertionError(f"no cycle in {group}")  # a strongly connected group has one


def _describe(found: list[list[str]]) -> str:
    return "; ".join(" -> ".join(m.removeprefix(PACKAGE + ".") for m in c) for c in found)


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert graph["starburst_dask.ecs.pacing"] >= {
        "starburst_dask.fargate",  # from .. import fargate
        "starburst_dask.aws.throttling",  # from ..aws.throttling import TokenBucket
    }
    # account_report imports aiobotocore and aws.clients inside the function
    assert "starburst_dask.aws.clients" in graph["starburst_dask.ecs.quota"]


def test_cycles_are_found_and_named():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"} - {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b", "c"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"], ["c", "a", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, f"import cycles (function-level imports included): {_describe(found)}"


def oversized() -> dict[str, int]:
    return {
        name: lines
        for name, path in modules().items()
        if not name.startswith(f"{PACKAGE}.local")
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }


def test_no_module_over_400_lines_outside_the_local_fargate():
    found = oversized()
    assert not found, f"modules over {MAX_LINES} lines (split them): {found}"
