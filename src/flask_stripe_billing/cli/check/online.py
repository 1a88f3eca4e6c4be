"""Whether the API key, the webhook endpoints, the thin event destinations and the events
received are of one Stripe mode and send what the package handles.

A test-mode key with a live-mode signing secret (or the reverse) passes every
offline check, yet Checkout's customers never appear in the events the webhook
receives. ``flask billing check`` warns where it can tell: from the last event
in the log, and online from the key's mode's webhook endpoints and event
destinations.
"""

from __future__ import annotations

import json
import re

from ...core.entitlements import SUMMARY_EVENT
from ...core.rules import HANDLED_EVENT_TYPES
from ...errors import StripeServiceError
from ...pipeline.fetch import THIN_EVENT_TYPES
from ...state import BillingState
from ...stripe_api import StripeGateway
from ...web.blueprint import THIN_WEBHOOK_PATH, WEBHOOK_PATH
from .findings import Finding

#: Types an endpoint may leave out: needed only by apps that use Stripe Entitlements.
OPTIONAL_TYPES = frozenset({SUMMARY_EVENT, "v1." + SUMMARY_EVENT})


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
    return [
        _sending(subject, str(endpoint.get("url")), endpoint, HANDLED_EVENT_TYPES, where)
        for endpoint in ours
    ]


def thin_destinations(gateway: StripeGateway, mode: str | None) -> list[Finding]:
    """Warnings about the key's mode's event destinations of thin events (nothing if they
    cannot be listed)."""
    try:
        destinations = gateway.list_event_destinations()
    except StripeServiceError:
        return []
    where = f"{mode}-mode " if mode else ""
    subject = "event destinations"
    ours = [
        (_destination_url(d), d)
        for d in destinations
        if d.get("event_payload") == "thin" and _destination_url(d).endswith(THIN_WEBHOOK_PATH)
    ]
    if not ours:
        return [
            Finding(
                "warning",
                subject,
                f"no {where}event destination sends thin events to a URL ending in "
                f"{THIN_WEBHOOK_PATH}: STRIPE_THIN_WEBHOOK_SECRET may be of another destination "
                "or mode (flask billing create-webhook-endpoint --thin makes one)",
            )
        ]
    return [_sending(subject, url, d, THIN_EVENT_TYPES, where) for url, d in ours]


def _sending(
    subject: str, url: str, target: dict[str, object], handled: tuple[str, ...], where: str
) -> Finding:
    """Whether an endpoint or destination is enabled and sends every handled type (the
    entitlement summary only noted: apps without Stripe Entitlements need not send it)."""
    enabled = target.get("enabled_events") or []
    assert isinstance(enabled, list)
    missing = [] if "*" in enabled else [t for t in handled if t not in enabled]
    required = [t for t in missing if t not in OPTIONAL_TYPES]
    if target.get("status") != "enabled":
        return Finding("warning", subject, f"{url} is {target.get('status')}")
    if required:
        return Finding("warning", subject, f"{url} does not send {', '.join(missing)}")
    if missing:
        return Finding(
            "ok",
            subject,
            f"{url} ({where}enabled, every handled event but {missing[0]}: add it if you use "
            "Stripe Entitlements)",
        )
    return Finding("ok", subject, f"{url} ({where}enabled, every handled event)")


def _destination_url(destination: dict[str, object]) -> str:
    endpoint = destination.get("webhook_endpoint")
    url = endpoint.get("url") if isinstance(endpoint, dict) else None
    return str(url or "").rstrip("/")


def key_mode(key: str | None) -> str | None:
    """``test`` or ``live`` for a Stripe key, else None."""
    match = re.match(r"(?:sk|rk)_(test|live)_", key or "")
    return match.group(1) if match else None
