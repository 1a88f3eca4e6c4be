"""The package's layout: no import cycles, and production code never imports the test helpers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import flask_stripe_billing

PACKAGE = Path(flask_stripe_billing.__file__).parent
ROOT = "flask_stripe_billing"
#: Modules for tests (and the plugin that loads them); nothing else may import them.
TEST_HELPERS = {f"{ROOT}.testing"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The package modules ``path`` imports at import time (the __init__ of each package
    it imports from too, which Python runs first)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:  # module level only
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        target = f"{base}.{node.module}" if node.module else base
        candidates = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
        for candidate in candidates:
            parts = candidate.split(".")
            found.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    # Its own parent packages are being imported already when it runs: no edge.
    ancestors = {name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1)}
    return {module for module in found if module in MODULES and module not in {name, *ancestors}}


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_the_package_has_no_import_cycles() -> None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in visiting:
            cycle = [*visiting[visiting.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        visiting.append(module)
        for imported in sorted(GRAPH[module]):
            visit(imported)
        visiting.pop()
        done.add(module)

    assert len(GRAPH) > 30
    for module in sorted(GRAPH):
        visit(module)


def test_production_code_never_imports_the_test_helpers() -> None:
    importers = {
        module
        for module, imported in GRAPH.items()
        if imported & TEST_HELPERS and module not in TEST_HELPERS
    }
    assert importers == set()
    assert GRAPH[f"{ROOT}.testing"]  # the graph does see the helpers' own imports
