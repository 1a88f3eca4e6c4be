"""Seats: Checkout's ``quantity`` within the configured bounds, the subscription's quantity
stored and shown as ``BillingAccount.seats``, and ``seats_changed`` once per event id."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from conftest import Host
from flask import request
from support import LAYOUTS, load_object, post_event, subscription_event
from test_checkout import API, CONFIG, SESSION, as_user, form, stripe_calls

from flask_stripe_billing import BillingAccount
from flask_stripe_billing.config import Settings
from flask_stripe_billing.core import rules
from flask_stripe_billing.core.events import parse_event
from flask_stripe_billing.core.rules import AccountMatch
from flask_stripe_billing.state import get_state
from flask_stripe_billing.testing import record_signals

TRIALING = "api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json"


@pytest.fixture
def team_shop(make_host: Callable[..., Host]) -> Callable[..., Host]:
    """A host selling seats; user 1 is customer ``cus_team`` already."""

    def make(**config: Any) -> Host:
        made = make_host(
            {**CONFIG, **config}, current_user_id=lambda: request.headers.get("X-User")
        )
        made.add_user(1, email="team@example.com", stripe_customer_id="cus_team")
        return made

    return make


def with_quantity(event: dict[str, Any], quantity: int) -> dict[str, Any]:
    """The event with its subscription for ``quantity`` seats, in its own layout."""
    subscription = event["data"]["object"]
    if "quantity" in subscription:
        subscription["quantity"] = quantity  # before API 2025-03-31 Stripe also sets it here
    for item in subscription["items"]["data"]:
        item["quantity"] = quantity
    return event


def seats_event(quantity: int, layout: str = "2020", **options: Any) -> dict[str, Any]:
    return with_quantity(
        subscription_event(customer="cus_team", subscription="sub_team", layout=layout, **options),
        quantity,
    )


# Checkout's quantity


def test_checkout_sends_the_quantity_asked_for_as_the_line_items_quantity(
    team_shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = team_shop(STRIPE_SEATS_MIN=2, STRIPE_SEATS_MAX=50)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    answer = host.client.post(
        "/billing/checkout-session", json={"quantity": 12}, headers=as_user("1")
    )

    assert answer.status_code == 200
    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    assert form(call)["line_items[0][quantity]"] == "12"


def test_checkout_without_a_quantity_buys_the_minimum(
    team_shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = team_shop(STRIPE_SEATS_MIN=3, STRIPE_SEATS_MAX=10)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    host.client.post("/billing/checkout-session", json={}, headers=as_user("1"))

    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    assert form(call)["line_items[0][quantity]"] == "3"


def test_another_quantity_is_another_idempotency_key(
    team_shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = team_shop(STRIPE_SEATS_MAX=10)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    for quantity in (2, 2, 3):
        host.client.post(
            "/billing/checkout-session", json={"quantity": quantity}, headers=as_user("1")
        )

    keys = [
        c.request.headers["Idempotency-Key"] for c in stripe_calls(stripe_api, "/checkout/sessions")
    ]
    assert keys[0] == keys[1]  # a double click: the same session back
    assert keys[2] != keys[0]  # other seats: Stripe would refuse the same key with new fields


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        (0, "quantity must be from 2 to 50"),
        (51, "quantity must be from 2 to 50"),
        (-3, "quantity must be from 2 to 50"),
        ("5", "quantity must be a whole number"),
        (2.5, "quantity must be a whole number"),
        (True, "quantity must be a whole number"),
        ([5], "quantity must be a whole number"),
    ],
)
def test_a_quantity_out_of_bounds_or_not_a_whole_number_is_400(
    team_shop: Callable[..., Host], stripe_api: Any, quantity: Any, message: str
) -> None:
    host = team_shop(STRIPE_SEATS_MIN="2", STRIPE_SEATS_MAX="50")

    answer = host.client.post(
        "/billing/checkout-session", json={"quantity": quantity}, headers=as_user("1")
    )

    assert answer.status_code == 400
    assert answer.json == {
        "error": "validation_error",
        "message": message,
        "details": {"field": "quantity", "min": 2, "max": 50},
    }
    assert len(stripe_api.calls) == 0


def test_without_seat_settings_checkout_sells_one_seat(
    team_shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = team_shop()

    answer = host.client.post(
        "/billing/checkout-session", json={"quantity": 2}, headers=as_user("1")
    )

    assert answer.status_code == 400
    assert answer.json["message"] == "quantity must be 1"
    assert answer.json["details"] == {"field": "quantity", "min": 1, "max": 1}
    assert len(stripe_api.calls) == 0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"STRIPE_SEATS_MIN": 5, "STRIPE_SEATS_MAX": 4}, "must not be below STRIPE_SEATS_MIN"),
        ({"STRIPE_SEATS_MIN": 0}, "STRIPE_SEATS_MIN must be at least 1"),
        ({"STRIPE_SEATS_MAX": "many"}, "STRIPE_SEATS_MAX must be a whole number"),
    ],
)
def test_seat_bounds_that_make_no_sense_are_refused_at_set_up(
    team_shop: Callable[..., Host], config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        team_shop(**config)


# The subscription's quantity: stored, shown as seats, signalled


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_subscriptions_quantity_is_stored_and_shown_as_seats(
    team_shop: Callable[..., Host], layout: str
) -> None:
    host = team_shop()

    assert post_event(host.client, seats_event(7, layout)).status_code == 200

    assert host.user(1).subscription_quantity == 7
    assert host.subscription("sub_team")["quantity"] == 7
    with host.app.app_context():
        account = get_state().user_store.get("1")
    assert account is not None and account.seats == 7


def test_seats_changed_is_sent_once_per_event_and_only_when_the_quantity_changes(
    team_shop: Callable[..., Host],
) -> None:
    host = team_shop()
    start = int(datetime.now(UTC).timestamp()) - 100
    first = seats_event(5, created=start)
    more = seats_event(8, layout="basil", created=start + 10)
    same_seats_past_due = seats_event(8, status="past_due", created=start + 20)

    with record_signals() as sent:
        for event in (first, more, more, same_seats_past_due, more):
            assert post_event(host.client, event).status_code == 200

    changes = [(c["user_id"], c["old_seats"], c["new_seats"]) for c in sent["seats_changed"]]
    assert changes == [("1", None, 5), ("1", 5, 8)]
    assert [c["event"].id for c in sent["seats_changed"]] == [first["id"], more["id"]]
    assert sent["seats_changed"][1]["account"].seats == 8
    assert sent["seats_changed"][0]["sender"] is host.app
    assert [row["status"] for row in host.events()] == ["processed", "processed", "processed"]
    assert host.user(1).subscription_quantity == 8


def test_a_late_event_with_old_seats_changes_nothing_and_sends_nothing(
    team_shop: Callable[..., Host],
) -> None:
    host = team_shop()
    start = int(datetime.now(UTC).timestamp()) - 100
    post_event(host.client, seats_event(9, created=start + 50))

    with record_signals() as sent:
        post_event(host.client, seats_event(3, created=start))

    assert sent["seats_changed"] == []
    assert host.user(1).subscription_quantity == 9
    assert [row["status"] for row in host.events()] == ["processed", "stale"]


def test_the_rules_give_a_seats_changed_notice_for_a_new_quantity() -> None:
    """Pure: no app, no database; the notice is what the pipeline sends after the commit."""
    settings = Settings()
    account = BillingAccount(
        user_id="7",
        stripe_customer_id="cus_team",
        stripe_subscription_id="sub_team",
        plan="pro",
        subscription_status="active",
        subscription_quantity=4,
    )
    event = parse_event(seats_event(6))

    decision = rules.decide(
        event, AccountMatch(account, by_customer=True), [], settings, datetime.now(UTC)
    )

    seats = [n for n in decision.notices if n.signal == "seats_changed"]
    assert [(n.kwargs["old_seats"], n.kwargs["new_seats"]) for n in seats] == [(4, 6)]
    assert decision.after is not None and decision.after.seats == 6


def test_flask_billing_sync_sends_seats_changed_for_the_quantity_stripe_has_now(
    team_shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = team_shop()
    post_event(host.client, seats_event(2, created=int(datetime.now(UTC).timestamp()) - 600))
    subscription = load_object(TRIALING)
    subscription.update(id="sub_team", customer="cus_team", status="active")
    subscription["quantity"] = subscription["items"]["data"][0]["quantity"] = 6
    listed = {
        "object": "list",
        "data": [subscription],
        "has_more": False,
        "url": "/v1/subscriptions",
    }
    stripe_api.add(responses.GET, f"{API}/subscriptions", json=listed)

    with record_signals() as sent:
        result = host.app.test_cli_runner().invoke(args=["billing", "sync", "--no-features", "1"])

    assert result.exit_code == 0, result.output
    assert [(c["old_seats"], c["new_seats"]) for c in sent["seats_changed"]] == [(2, 6)]
    assert host.user(1).subscription_quantity == 6
