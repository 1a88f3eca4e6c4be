"""Shared by the subscription-management tests: a host with a paying user whose
subscription is a real Stripe answer (pay-rails' recorded price swap), and Stripe's
API for it mocked with responses."""

from __future__ import annotations

import copy
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

import responses
from conftest import Host, build_host
from flask import Flask, request
from support import NOW, envelope, load, post_event

API = "https://api.stripe.com/v1"
API_KEY = "sk_test_51ManageKey00000000000000"
#: The subscription before and after a price swap, as Stripe's API answered (API 2025-10-29).
BEFORE = load(
    "api-objects/pay-rails-vcr__2025-10-29.clover__subscription.active.before_price_swap.json"
)
AFTER = load(
    "api-objects/pay-rails-vcr__2025-10-29.clover__subscription.active.after_price_swap.json"
)
SUB = BEFORE["id"]
ITEM = BEFORE["items"]["data"][0]["id"]
CUSTOMER = BEFORE["customer"]
PERIOD_END = BEFORE["items"]["data"][0]["current_period_end"]
#: Stripe's own fixtures: a schedule, and an invoice as create_preview answers it.
SCHEDULE = load("stripe-openapi/subscription_schedule.json")
PREVIEW = load("stripe-openapi/invoice.json")
CONFIG = {
    "STRIPE_API_KEY": API_KEY,
    "STRIPE_API_MAX_RETRIES": "0",
    "STRIPE_PRICE_PRO_MONTHLY": "small-monthly",
    "STRIPE_PRICE_PRO_YEARLY": "small-annual",
    "STRIPE_BILLING_PLANS": {"small-monthly": "pro", "small-annual": "pro-annual"},
    "STRIPE_SEATS_MAX": "10",
}
#: When the app first heard of the subscription (its watermark before any change).
SUBSCRIBED_AT = NOW - 600


def managed_host(
    config: dict[str, Any] | None = None, set_up: Callable[[Flask], object] | None = None
) -> Host:
    """User 1 pays (``small-monthly``) as the webhook told the app; user 2 has nothing.
    The current user is named by the X-User header. ``set_up`` runs on the app before
    its first request."""
    host = build_host(
        {**CONFIG, **(config or {})}, current_user_id=lambda: request.headers.get("X-User")
    )
    if set_up is not None:
        set_up(host.app)
    host.add_user(1, stripe_customer_id=CUSTOMER)
    host.add_user(2)
    event = envelope(
        "customer.subscription.updated",
        copy.deepcopy(BEFORE),
        created=SUBSCRIBED_AT,
        api_version="2025-10-29.clover",
    )
    assert post_event(host.client, event).status_code == 200
    assert host.user(1).plan == "pro"
    return host


def drop(host: Host) -> None:
    with host.app.app_context():
        host.db.session.remove()
        host.db.drop_all()
        host.db.engine.dispose()


def subscription(**changes: Any) -> dict[str, Any]:
    """The subscription before the swap, with fields changed."""
    obj = copy.deepcopy(BEFORE)
    obj.update(changes)
    return obj


def swapped(**changes: Any) -> dict[str, Any]:
    """The subscription after the swap to ``small-annual``, with fields changed."""
    obj = copy.deepcopy(AFTER)
    obj.update(changes)
    return obj


def http_date(seconds: int) -> str:
    return formatdate(seconds, usegmt=True)


def answer(
    stripe_api: responses.RequestsMock,
    method: str,
    path: str,
    body: dict[str, Any],
    *,
    at: int | None = None,
) -> None:
    """Stripe answers ``method path`` with ``body``, dated ``at`` (its Date header)."""
    headers = {"Date": http_date(at)} if at is not None else {}
    stripe_api.add(method, f"{API}{path}", json=body, headers=headers)


def reads(stripe_api: responses.RequestsMock, obj: dict[str, Any] | None = None) -> None:
    """``GET /v1/subscriptions/<id>`` answers the subscription (default: before the swap)."""
    answer(stripe_api, "GET", f"/subscriptions/{SUB}", obj or subscription())


def form(call: Any) -> dict[str, str]:
    """A request's form fields (each appears once in these requests)."""
    return dict(parse_qsl(call.request.body or "", keep_blank_values=True))


def writes(stripe_api: responses.RequestsMock) -> list[Any]:
    """The calls that change something at Stripe (all but GETs and previews)."""
    return [
        call
        for call in stripe_api.calls
        if call.request.method != "GET" and "create_preview" not in call.request.url
    ]
