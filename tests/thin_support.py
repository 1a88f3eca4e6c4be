"""Thin event notifications for tests: from Stripe's published example, signed as Stripe signs."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime
from typing import Any

import responses
from support import FIXTURES, load, load_object

THIN_SECRET = "whsec_thin_test_secret"
API_KEY = "sk_test_thin_0123456789"
API = "https://api.stripe.com"
#: The real subscription (Stripe's test-mode API, 2026-03-25 "dahlia") the stand-in serves.
SUBSCRIPTION_OBJECT = "api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json"
INVOICE_OBJECT = (
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__invoice.paid.subscription_create"
    ".connect_direct.json"
)
EXAMPLE = "thin/stripe-docs__v1.billing.meter.error_report_triggered.json"
RELATED_PATHS = {"subscription": "/v1/subscriptions", "invoice": "/v1/invoices"}

_ids = itertools.count(1)
assert (FIXTURES / EXAMPLE).exists()


def notification(
    event_type: str = "v1.customer.subscription.updated",
    related_id: str = "sub_test",
    *,
    related_type: str = "subscription",
    event_id: str | None = None,
    created: datetime | None = None,
    snapshot_event: str | None = None,
    context: str | None = None,
) -> dict[str, Any]:
    """A thin notification: Stripe's published v2 event, without its fetched ``data``."""
    body = copy.deepcopy(load(EXAMPLE))
    del body["data"]
    body.update(
        id=event_id or f"evt_test_thin_{next(_ids):06d}",
        type=event_type,
        related_object={
            "id": related_id,
            "type": related_type,
            "url": f"{RELATED_PATHS[related_type]}/{related_id}",
        },
        context=context,
    )
    if created is not None:
        body["created"] = created.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    if snapshot_event is not None:
        body["snapshot_event"] = snapshot_event
    return body


def subscription_object(
    *,
    subscription: str = "sub_test",
    customer: str = "cus_test",
    status: str = "active",
    price: str | None = None,
    user_id: str | None = None,
    period_end: int | None = None,
) -> dict[str, Any]:
    """A subscription as Stripe's API answers it today (periods on the items)."""
    obj = load_object(SUBSCRIPTION_OBJECT)
    obj.update(id=subscription, customer=customer, status=status)
    if period_end is not None:
        for item in obj["items"]["data"]:
            item["current_period_end"] = period_end
    if user_id is not None:
        obj["metadata"] = {"user_id": user_id}
    if price is not None:
        for item in obj["items"]["data"]:
            item["price"]["id"] = price
    return obj


def serve(mock: responses.RequestsMock, obj: dict[str, Any], *, status: int = 200) -> Any:
    """Stripe's API answers GET of the object's path with ``obj`` (or an error)."""
    path = RELATED_PATHS[obj.get("object", "subscription")]
    if status != 200:
        body: dict[str, Any] = {"error": {"type": "api_error", "message": "boom"}}
        return mock.get(f"{API}{path}/{obj['id']}", json=body, status=status)
    return mock.get(f"{API}{path}/{obj['id']}", json=obj)


def thin_config(**extra: Any) -> dict[str, Any]:
    """An app configured for thin events: their signing secret and an API key."""
    return {"STRIPE_THIN_WEBHOOK_SECRET": THIN_SECRET, "STRIPE_API_KEY": API_KEY, **extra}


def event_destination(
    url: str,
    events: list[str],
    *,
    payload: str = "thin",
    signing_secret: str | None = None,
) -> dict[str, Any]:
    """An event destination as Stripe's v2 API answers it (Stripe's published example)."""
    return {
        "id": "ed_test_61RM8ltWcTW4mbsxf16RJyfa2xSQLHJJh1sxm7H0KVT6",
        "object": "v2.core.event_destination",
        "created": "2024-10-22T16:20:09.931Z",
        "description": None,
        "enabled_events": events,
        "event_payload": payload,
        "events_from": ["self"],
        "livemode": False,
        "metadata": {},
        "name": "flask-stripe-billing thin events",
        "snapshot_api_version": None,
        "status": "enabled",
        "status_details": None,
        "type": "webhook_endpoint",
        "updated": "2024-10-22T16:20:09.937Z",
        "webhook_endpoint": {"signing_secret": signing_secret, "url": url},
    }
