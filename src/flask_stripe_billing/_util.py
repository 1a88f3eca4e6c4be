"""Small helpers every layer shares: the current time, in UTC, in one place; the key of
the extension's state in ``app.extensions``."""

from __future__ import annotations

from datetime import UTC, datetime

#: Where the extension keeps each app's state: ``app.extensions["stripe_billing"]``.
EXTENSION_KEY = "stripe_billing"


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime; naive is taken as UTC (SQLite drops the zone)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
