"""What ``flask billing check`` says about the settings: the signing secrets (the
webhook's and the thin endpoint's) and the installed dependencies' versions."""

from __future__ import annotations

import re
from importlib import metadata

from ...config import Settings
from ...web.blueprint import THIN_WEBHOOK_PATH
from ..reports import plural
from .findings import Finding


def webhook_secrets(
    secrets: tuple[str, ...], name: str = "STRIPE_WEBHOOK_SECRET", *, thin: bool = False
) -> Finding:
    """A signing secret setting; the snapshot one is required unless thin events are on."""
    if not secrets and thin:
        return Finding("missing", name, "the webhook answers 503; thin events only")
    if not secrets:
        return Finding("missing", name, "required: the webhook answers 503 without it", True)
    odd = sum(1 for secret in secrets if not secret.startswith("whsec_"))
    detail = plural(len(secrets), "signing secret")
    if odd:
        return Finding("invalid", name, f"{detail}, {odd} not starting with whsec_", True)
    return Finding("set", name, detail)


def thin_secrets(settings: Settings) -> Finding:
    """The thin-event endpoint's secrets; with them, it needs the API key to fetch."""
    name = "STRIPE_THIN_WEBHOOK_SECRET"
    if not settings.thin_webhook_secrets:
        return Finding("default", name, f"none: thin events off ({THIN_WEBHOOK_PATH}: 503)")
    if not settings.api_key:
        return Finding("invalid", name, "set, but STRIPE_API_KEY is needed to fetch", True)
    return webhook_secrets(settings.thin_webhook_secrets, name)


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
