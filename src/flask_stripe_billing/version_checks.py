"""Whether the installed dependencies are ones this package supports (for ``billing check``)."""

from __future__ import annotations

import re
from importlib import metadata

from .findings import Finding

#: The oldest version of each dependency this package supports (pyproject.toml's floors,
#: tested by ``nox -s lowest``); older ones break at runtime (Flask 2: no webhook at all).
MIN_VERSIONS = {
    "flask": (3, 0),
    "werkzeug": (3, 0),
    "sqlalchemy": (2, 0, 16),
    "flask-sqlalchemy": (3, 1),
    "stripe": (16, 0),
}


def check_versions() -> list[Finding]:
    """A problem for each installed dependency older than this package supports."""
    found = []
    for name, minimum in MIN_VERSIONS.items():
        installed = installed_version(name)
        if installed is not None and _release(installed) < minimum:
            needed = ".".join(map(str, minimum))
            found.append(
                Finding(
                    "invalid",
                    name,
                    f"{installed} is older than {needed}, the oldest flask-stripe-billing "
                    f"supports: upgrade it (pip install '{name}>={needed}')",
                    problem=True,
                )
            )
    return found


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    """``(3, 0, 0)`` from ``3.0.0``, ``3.1.0rc1`` or ``2.0.16.post1``."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])
