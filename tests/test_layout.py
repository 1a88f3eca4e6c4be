"""The package's layout: folders name layers and no module imports a layer above its own,
the core is pure, no import cycles, and production code never imports the test helpers."""

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


# The layers, lowest first: a module may import its own layer and the layers below it.
#: Each layer's members: package modules (a folder's name covers everything inside it).
LAYERS: list[set[str]] = [
    {"_util", "errors"},
    {"config", "redact"},
    {"core"},
    {"signals", "stripe_api", "stores"},
    {"state"},
    {"pipeline"},
    {"actions"},
    {"web"},
    {"cli", "testing"},
    {"extension"},
    {""},  # the package's face
]
#: What the pure core may import of the package besides itself.
CORE_MAY_IMPORT = {f"{ROOT}.{name}" for name in ("config", "errors", "_util")}
#: Third-party packages the pure core must never reach, even through another module.
NOT_PURE = {"flask", "werkzeug", "sqlalchemy", "flask_sqlalchemy", "stripe", "requests", "blinker"}
#: At most this many modules at the package root (folders hold the rest).
MAX_ROOT_MODULES = 10


def group_of(module: str) -> str:
    """The top-level name a module belongs to: ``core`` for ``flask_stripe_billing.core.x``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int:
    group = group_of(module)
    return next(index for index, members in enumerate(LAYERS) if group in members)


def external_imports(path: Path) -> set[str]:
    """The top-level names of the non-package modules ``path`` imports (anywhere in it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found - {ROOT}


def reachable(start: str) -> set[str]:
    """Every package module ``start`` imports, directly or through other package modules."""
    seen: set[str] = set()
    pending = [start]
    while pending:
        for imported in GRAPH[pending.pop()]:
            if imported not in seen:
                seen.add(imported)
                pending.append(imported)
    return seen


def test_every_module_belongs_to_a_layer() -> None:
    for module in MODULES:
        assert layer_of(module) >= 0, module


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = sorted(
        f"{module} -> {imported}"
        for module, imported_modules in GRAPH.items()
        for imported in imported_modules
        if layer_of(imported) > layer_of(module)
        or (layer_of(imported) == layer_of(module) and group_of(imported) != group_of(module))
    )
    assert upward == []


def test_the_core_is_pure() -> None:
    """``core`` imports only itself, config, errors and _util, and reaches no Flask,
    database, HTTP or Stripe client, not even through another module of the package."""
    core = {module for module in MODULES if group_of(module) == "core"}
    for module in sorted(core):
        outside = {m for m in GRAPH[module] if group_of(m) != "core"} - CORE_MAY_IMPORT
        assert outside == set(), f"{module} imports {sorted(outside)}"
        modules = {module, *reachable(module)}
        impure = {
            f"{m}: {name}" for m in modules for name in external_imports(MODULES[m]) & NOT_PURE
        }
        assert impure == set(), f"{module} reaches {sorted(impure)}"


def test_the_pipeline_uses_only_the_store_contract() -> None:
    """The pipeline knows the stores by their contract, never a concrete store."""
    for module in sorted(m for m in MODULES if group_of(m) == "pipeline"):
        stores = {m for m in GRAPH[module] if group_of(m) == "stores"}
        assert stores <= {f"{ROOT}.stores", f"{ROOT}.stores.base"}, module


def test_the_package_root_keeps_few_modules() -> None:
    root_modules = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(root_modules) <= MAX_ROOT_MODULES, root_modules


def test_no_function_imports_a_package_module() -> None:
    """Imports of the package's own modules sit at the top of each module, where the
    import graph above sees them."""
    late = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if (isinstance(inner, ast.ImportFrom) and inner.level) or (
                    isinstance(inner, ast.ImportFrom | ast.Import)
                    and ROOT in ast.unparse(inner).split()[1]
                ):
                    late.append(f"{module}:{inner.lineno}")
    assert late == []
