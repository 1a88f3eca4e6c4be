"""The RQ job a host app writes for dispatch mode (imported by the worker by name)."""

from __future__ import annotations

from typing import Any

#: The host the in-process test worker works for (a real app would build it here).
HOST: Any = None


def process_stripe_event(event_id: str) -> str:
    """Process one recorded Stripe event, as ``billing.process_event`` in an app context."""
    with HOST.app.app_context():
        outcome = HOST.billing.process_event(event_id)
    return str(outcome.status)


def send_stripe_usage() -> int:
    """Send pending usage to Stripe's meters, as ``billing.send_usage`` in an app context."""
    with HOST.app.app_context():
        return int(HOST.billing.send_usage().sent)
