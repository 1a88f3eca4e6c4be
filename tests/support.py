"""Build signed Stripe events from the real payloads in tests/fixtures/ (copied from shared/)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
from pathlib import Path
from typing import Any

from flask_stripe_billing.testing import post_stripe_event

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "whsec_test_secret"

#: Where each layout's subscription object comes from.
SUBSCRIPTION_FIXTURES = {
    # API 2020-08-27: period dates on the subscription itself.
    "2020": ("events/stripe-ruby-mock__customer.subscription.updated.json", "2020-08-27"),
    # API 2025-03-31 (basil): period dates only on the items.
    "basil": (
        "events/pay-rails__customer.subscription.updated.DATA_ONLY.json",
        "2025-03-31.basil",
    ),
    # API 2026-03-25 (dahlia): an object returned by Stripe's test-mode API.
    "dahlia": (
        "api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json",
        "2026-03-25.dahlia",
    ),
}
CHECKOUT_FIXTURES = {
    "2020": ("events/stripe-ruby-mock__checkout.session.completed.json", "2020-08-27"),
    "basil": (
        "events/pay-rails__checkout.session.completed.DATA_ONLY.json",
        "2025-03-31.basil",
    ),
    "dahlia": (
        "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json",
        "2026-03-25.dahlia",
    ),
}
LAYOUTS = tuple(SUBSCRIPTION_FIXTURES)

_ids = itertools.count(1)
NOW = int(time.time())


def load(name: str) -> dict[str, Any]:
    """A fixture file, parsed."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def load_object(name: str) -> dict[str, Any]:
    """The Stripe object in a fixture: ``data.object`` of an event, or the object itself."""
    data = load(name)
    if "data" in data and isinstance(data["data"], dict):
        return copy.deepcopy(data["data"]["object"])
    if data.get("object") != "event" and isinstance(data.get("object"), dict):
        return copy.deepcopy(data["object"])  # pay-rails DATA_ONLY files
    return copy.deepcopy(data)


def envelope(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    api_version: str = "2020-08-27",
) -> dict[str, Any]:
    """Wrap a Stripe object as an event, in the envelope of the 2020 fixture event."""
    event = load("events/stripe-ruby-mock__customer.subscription.updated.json")
    event.update(
        id=event_id or f"evt_test_{next(_ids):06d}",
        type=event_type,
        created=NOW if created is None else created,
        api_version=api_version,
        data={"object": obj},
    )
    return event


def subscription_event(
    event_type: str = "customer.subscription.updated",
    *,
    status: str = "active",
    customer: str = "cus_test",
    subscription: str = "sub_test",
    price: str | None = None,
    period_end: int | None = None,
    cancel_at_period_end: bool | None = None,
    user_id: str | None = None,
    layout: str = "2020",
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A subscription event from the real payload of ``layout``, with the given facts."""
    name, api_version = SUBSCRIPTION_FIXTURES[layout]
    obj = load_object(name)
    obj.update(id=subscription, customer=customer, status=status)
    if cancel_at_period_end is not None:
        obj["cancel_at_period_end"] = cancel_at_period_end
    if user_id is not None:
        obj["metadata"] = {"user_id": user_id}
    for item in obj["items"]["data"]:
        if price is not None:
            item["price"]["id"] = price
            if item.get("plan"):
                item["plan"]["id"] = price
        if period_end is not None and "current_period_end" in item:
            item["current_period_end"] = period_end
    if period_end is not None and "current_period_end" in obj:
        obj["current_period_end"] = period_end
    return envelope(event_type, obj, event_id=event_id, created=created, api_version=api_version)


def checkout_event(
    event_type: str = "checkout.session.completed",
    *,
    customer: str | None = "cus_test",
    subscription: str | None = "sub_test",
    mode: str = "subscription",
    payment_status: str = "paid",
    client_reference_id: str | None = None,
    metadata: dict[str, str] | None = None,
    layout: str = "basil",
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A Checkout session event from the real payload of ``layout``."""
    name, api_version = CHECKOUT_FIXTURES[layout]
    obj = load_object(name)
    obj.update(
        customer=customer,
        subscription=subscription,
        mode=mode,
        payment_status=payment_status,
        status="complete",
        client_reference_id=client_reference_id,
        metadata=metadata or {},
    )
    return envelope(event_type, obj, event_id=event_id, created=created, api_version=api_version)


def fixture_event(name: str, **changes: Any) -> dict[str, Any]:
    """A full event fixture as delivered, with top-level fields changed."""
    event = load(name)
    event.update(changes)
    return event


def sign(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header made the way Stripe makes it."""
    ts = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={signature}"


def post_event(
    client: Any,
    event: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    path: str = "/stripe/webhook",
) -> Any:
    """POST an event signed with ``secret``, as Stripe would: through the public helper
    host apps use (``flask_stripe_billing.testing.post_stripe_event``)."""
    return post_stripe_event(client, event, secret=secret, timestamp=timestamp, path=path)
