"""The public API is what ``__init__`` lists: docs, README and examples name nothing else.

Public are the top-level names in ``flask_stripe_billing.__all__`` and the two documented
faces, ``flask_stripe_billing.signals`` and ``flask_stripe_billing.testing``; the layers
below them (core, pipeline, actions, web, stores, cli) are internal.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import click
import pytest
from blinker import NamedSignal

import flask_stripe_billing
from flask_stripe_billing import signals, testing

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = flask_stripe_billing.__name__

#: The modules a user may import, and so name in a dotted path.
FACES: dict[str, ModuleType] = {
    PACKAGE: flask_stripe_billing,
    signals.__name__: signals,
    testing.__name__: testing,
}

#: A dotted path into the package, not part of a longer name (``pytest_flask_stripe_billing``).
DOTTED_PATH = re.compile(rf"(?<![\w.]){PACKAGE}(?:\.[A-Za-z_]\w*)+")
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
#: An autodoc or module directive of a ``{eval-rst}`` block and its target.
DIRECTIVE = re.compile(
    r"^\.\. (auto\w+|module|currentmodule|data|class|function|exception):: ([\w.]+)", re.M
)


def documents() -> list[Path]:
    """Every file a user reads or copies from: the docs pages, README, examples, benchmarks."""
    pages = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    examples = [
        path
        for folder in ("examples", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]
    return pages + examples


def public_names(face: ModuleType) -> set[str]:
    """The names a face offers: its ``__all__``, else (signals) its blinker signals."""
    listed = getattr(face, "__all__", None)
    if listed is not None:
        return set(listed)
    return {name for name, value in vars(face).items() if isinstance(value, NamedSignal)}


def resolves_publicly(path: str) -> bool:
    """Whether ``path`` is a face, or a public name of a face followed by its attributes."""
    if path in FACES:
        return True
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        face = FACES.get(".".join(parts[:cut]))
        if face is None:
            continue
        if parts[cut] not in public_names(face):
            return False
        value: object = getattr(face, parts[cut])
        for attribute in parts[cut + 1 :]:
            if not hasattr(value, attribute):
                return False
            value = getattr(value, attribute)
        return True
    return False


def python_sources(path: Path) -> Iterator[str]:
    """The Python a file holds: the file itself, or a Markdown page's ``python`` blocks that
    name the package (a block inside a list is indented like the list)."""
    if path.suffix == ".py":
        yield path.read_text()
    elif path.suffix == ".md":
        blocks = (textwrap.dedent(block) for block in PYTHON_BLOCK.findall(path.read_text()))
        yield from (block for block in blocks if PACKAGE in block)


def imported_paths(source: str) -> Iterator[str]:
    """Each package path a piece of Python imports: ``from X import y`` gives ``X.y``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == PACKAGE:
                yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith(PACKAGE))


def autodoc_paths(text: str) -> Iterator[str]:
    """The full path of each autodoc target, read against the current ``.. module::``."""
    current = PACKAGE
    for directive, target in DIRECTIVE.findall(text):
        full = target if target.split(".")[0] == PACKAGE else f"{current}.{target}"
        if directive in ("module", "currentmodule", "automodule"):
            current = full
        yield full


def mentioned_paths() -> list[tuple[str, str]]:
    """(file, path) for every package path the user-facing files name, import or autodoc."""
    found: set[tuple[str, str]] = set()
    for path in documents():
        text = path.read_text(errors="replace")
        name = str(path.relative_to(ROOT))
        found.update((name, dotted) for dotted in DOTTED_PATH.findall(text))
        found.update((name, dotted) for dotted in autodoc_paths(text))
        for source in python_sources(path):
            found.update((name, imported) for imported in imported_paths(source))
    return sorted(found)


def package_modules() -> list[ModuleType]:
    """Every module of the package, imported."""
    names = [PACKAGE] + [
        info.name for info in pkgutil.walk_packages(flask_stripe_billing.__path__, f"{PACKAGE}.")
    ]
    return [importlib.import_module(name) for name in names]


def test_the_user_facing_files_name_some_package_paths() -> None:
    """The scan below finds what it looks for (a broken pattern would pass everything)."""
    paths = {path for _, path in mentioned_paths()}

    assert "flask_stripe_billing.testing.build_event" in paths
    assert "flask_stripe_billing.StripeBilling" in paths
    assert "flask_stripe_billing.StripeBilling.init_app" not in paths  # :members: is no path
    assert "flask_stripe_billing.BillingError" in paths


def test_internal_paths_are_refused() -> None:
    """A layer's module path, or a face's private name, is not public."""
    assert not resolves_publicly("flask_stripe_billing.core.rules.decide")
    assert not resolves_publicly("flask_stripe_billing.stores.StoreUnavailableError")
    assert not resolves_publicly("flask_stripe_billing.web.http.HTTP_ANSWERS")
    assert not resolves_publicly("flask_stripe_billing.testing.get_state")
    assert not resolves_publicly("flask_stripe_billing.signals.logger")
    assert not resolves_publicly("flask_stripe_billing.BillingAccount.no_such_field")
    assert resolves_publicly("flask_stripe_billing.BillingAccount.is_paying")
    assert resolves_publicly("flask_stripe_billing.signals.plan_changed")


@pytest.mark.parametrize(("document", "path"), mentioned_paths())
def test_every_path_the_docs_name_is_public(document: str, path: str) -> None:
    assert resolves_publicly(path), f"{document} names {path}, which is not a public name"


@pytest.mark.parametrize("face", FACES.values(), ids=list(FACES))
def test_every_listed_name_is_defined_in_the_package(face: ModuleType) -> None:
    """Each public name is the package's own object, the very one its module defines."""
    modules = package_modules()
    for name in public_names(face):
        value = getattr(face, name)
        if inspect.ismodule(value):
            assert value.__name__.startswith(f"{PACKAGE}."), name
        elif inspect.isclass(value) or inspect.isfunction(value):
            defining = importlib.import_module(value.__module__)
            assert value.__module__.startswith(f"{PACKAGE}."), name
            assert getattr(defining, value.__qualname__) is value, name
        else:
            # A constant re-exported by a face is found in the module that defines it;
            # the signals face defines its signals itself.
            owners = [
                module.__name__
                for module in modules
                if (module is signals or module not in FACES.values())
                and getattr(module, name, None) is value
            ]
            assert owners, f"{name} is defined in no module of the package"


def test_every_name_in_all_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec(f"from {PACKAGE} import *", namespace)  # the star import a user may write

    assert set(flask_stripe_billing.__all__) <= set(namespace)


def test_every_exception_is_defined_in_errors_and_importable_from_the_top() -> None:
    """``errors.py`` holds every exception the package raises; each is a top-level name.

    The CLI's ``click.ClickException`` subclasses are exit statuses click itself turns
    into a message and an exit code; they never reach the host's code.
    """
    exceptions = [
        value
        for module in package_modules()
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
        and not issubclass(value, click.ClickException)
    ]

    assert flask_stripe_billing.StoreUnavailableError in exceptions
    for exception in exceptions:
        assert exception.__module__ == f"{PACKAGE}.errors", exception
        assert exception.__name__ in flask_stripe_billing.__all__, exception
        assert getattr(flask_stripe_billing, exception.__name__) is exception


def test_the_api_reference_documents_every_public_name() -> None:
    documented = set(autodoc_paths((ROOT / "docs" / "api.md").read_text()))

    for name in flask_stripe_billing.__all__:
        assert f"{PACKAGE}.{name}" in documented, f"docs/api.md does not document {name}"
