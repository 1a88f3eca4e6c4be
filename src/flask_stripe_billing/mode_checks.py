"""Whether the API key, the webhook endpoints and the events received are of one Stripe mode.

A test-mode key with a live-mode signing secret (or the reverse) passes every
offline check, yet Checkout's customers never appear in the events the webhook
receives. ``flask billing check`` warns where it can tell: from the last event
in the log, and online from the key's mode's webhook endpoints.
"""

from __future__ import annotations

import json
import re

from .errors import StripeServiceError
from .findings import Finding
from .rules import HANDLED_EVENT_TYPES
from .state import BillingState
from .stripe_api import StripeGateway

#: The path of the webhook route; an endpoint's URL ends with it (whatever the prefix).
WEBHOOK_PATH = "/stripe/webhook"


def mode_mismatch(state: BillingState) -> Finding | None:
    """A warning when the last event received is of the other mode than the API key.

    Events from a live endpoint and a test key (or the reverse) mean Checkout and
    the portal work in one Stripe mode while the webhook hears the other: the
    customers Checkout creates never appear in the events.
    """
    mode = key_mode(state.settings.api_key)
    if mode is None:
        return None
    try:
        with state.event_log.transaction():
            events = state.event_log.list_events(limit=1)
        livemode = json.loads(events[0].payload).get("livemode") if events else None
    except Exception:
        return None  # a diagnostic: the table's state was reported already
    if not isinstance(livemode, bool) or livemode == (mode == "live"):
        return None
    event_mode = "live" if livemode else "test"
    return Finding(
        "warning",
        "event log",
        f"the last event received ({events[0].id}) is {event_mode}-mode but STRIPE_API_KEY "
        f"is a {mode}-mode key: Checkout and the portal act in {mode} mode while the "
        f"webhook receives {event_mode}-mode events; use keys and secrets of one mode",
    )


def webhook_endpoints(gateway: StripeGateway, mode: str | None) -> list[Finding]:
    """Warnings about the key's mode's webhook endpoints (nothing if they cannot be listed)."""
    try:
        endpoints = gateway.list_webhook_endpoints()
    except StripeServiceError:
        return []  # a restricted key may not read them; the check is a help, not a rule
    where = f"{mode}-mode " if mode else ""
    subject = "webhook endpoints"
    if not endpoints:
        return [
            Finding(
                "warning",
                subject,
                f"this account has no {where}endpoint: unless STRIPE_WEBHOOK_SECRET comes from "
                "`stripe listen`, it belongs to an endpoint of the other mode, and its events "
                "will not match this key's customers",
            )
        ]
    ours = [e for e in endpoints if str(e.get("url", "")).rstrip("/").endswith(WEBHOOK_PATH)]
    if not ours:
        urls = ", ".join(str(e.get("url")) for e in endpoints[:3])
        return [
            Finding(
                "warning",
                subject,
                f"no {where}endpoint ends in {WEBHOOK_PATH} ({urls}): the signing secret may "
                "be of another endpoint or mode",
            )
        ]
    found = []
    for endpoint in ours:
        url = endpoint.get("url")
        enabled = endpoint.get("enabled_events") or []
        missing = [] if "*" in enabled else [t for t in HANDLED_EVENT_TYPES if t not in enabled]
        if endpoint.get("status") != "enabled":
            found.append(Finding("warning", subject, f"{url} is {endpoint.get('status')}"))
        elif missing:
            found.append(Finding("warning", subject, f"{url} does not send {', '.join(missing)}"))
        else:
            found.append(Finding("ok", subject, f"{url} ({where}enabled, every handled event)"))
    return found


def key_mode(key: str | None) -> str | None:
    """``test`` or ``live`` for a Stripe key, else None."""
    match = re.match(r"(?:sk|rk)_(test|live)_", key or "")
    return match.group(1) if match else None
