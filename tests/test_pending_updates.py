"""3-D Secure-safe changes: ``payment_behavior="pending_if_incomplete"`` holds a plan or seat
change until its payment goes through; the record keeps the pending update, the plan changes
only once Stripe applies it, and an expired one is dropped, in every delivery order."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
import responses
from conftest import Host
from manage_support import (
    AFTER,
    CUSTOMER,
    SUB,
    SUBSCRIBED_AT,
    answer,
    drop,
    form,
    managed_host,
    reads,
    subscription,
    writes,
)
from support import NOW, envelope, post_event
from test_managing import call, managed  # noqa: F401  (the fixture)

from flask_stripe_billing import PendingUpdate, ValidationError
from flask_stripe_billing.testing import build_event, record_signals

EXPIRES_AT = NOW + 23 * 3600


def pending_update() -> dict[str, Any]:
    """Stripe's ``pending_update``: the swapped item (``small-annual``), held until paid."""
    return {
        "billing_cycle_anchor": None,
        "discounts": None,
        "expires_at": EXPIRES_AT,
        "subscription_items": copy.deepcopy(AFTER["items"]["data"]),
        "trial_end": None,
        "trial_from_plan": None,
    }


def held() -> dict[str, Any]:
    """The subscription as Stripe answers a change made with pending_if_incomplete whose
    payment needs the customer: items unchanged, the change in ``pending_update``."""
    return subscription(pending_update=pending_update())


def event(event_type: str, obj: dict[str, Any], at: int) -> dict[str, Any]:
    return envelope(event_type, obj, created=at, api_version="2025-10-29.clover")


def action_required(at: int) -> dict[str, Any]:
    return build_event(
        "invoice.payment_action_required", customer=CUSTOMER, subscription=SUB, created=at
    )


def asked(at: int) -> dict[str, Any]:
    return event("customer.subscription.updated", held(), at)


def expired(at: int) -> dict[str, Any]:
    return event("customer.subscription.pending_update_expired", subscription(), at)


def applied(at: int) -> dict[str, Any]:
    return event("customer.subscription.pending_update_applied", copy.deepcopy(AFTER), at)


def test_change_plan_pending_if_incomplete_keeps_the_plan_and_records_the_held_change(
    managed: Host,  # noqa: F811
    stripe_api: responses.RequestsMock,
) -> None:
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", held(), at=NOW)

    change = call(
        managed, "change_plan", 1, "small-annual", payment_behavior="pending_if_incomplete"
    )

    [write] = writes(stripe_api)
    assert form(write)["payment_behavior"] == "pending_if_incomplete"
    assert form(write)["items[0][price]"] == "small-annual"
    assert change.pending_update == PendingUpdate(
        ("small-annual",), AFTER["items"]["data"][0]["quantity"], change.pending_update.expires_at
    )
    assert int(change.pending_update.expires_at.timestamp()) == EXPIRES_AT
    assert (change.before.plan, change.after.plan) == ("pro", "pro")
    assert managed.user(1).plan == "pro"
    record = managed.subscription(SUB)
    assert record["price_ids"] == "small-monthly"
    assert '"price_ids": ["small-annual"]' in record["pending_update"]


def test_the_setting_makes_pending_if_incomplete_the_default_of_a_seat_change(
    stripe_api: responses.RequestsMock,
) -> None:
    host = managed_host({"STRIPE_BILLING_PAYMENT_BEHAVIOR": "pending_if_incomplete"})
    try:
        reads(stripe_api)
        answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(), at=NOW)
        change = call(host, "change_quantity", 1, 3)
    finally:
        drop(host)

    assert form(writes(stripe_api)[0])["payment_behavior"] == "pending_if_incomplete"
    assert change.pending_update is None


def test_without_a_payment_behavior_none_is_sent(
    managed: Host,  # noqa: F811
    stripe_api: responses.RequestsMock,
) -> None:
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(), at=NOW)
    call(managed, "change_quantity", 1, 3)

    assert "payment_behavior" not in form(writes(stripe_api)[0])


def test_an_unknown_payment_behavior_is_refused_before_stripe_is_asked(
    managed: Host,  # noqa: F811
    stripe_api: responses.RequestsMock,
) -> None:
    with pytest.raises(ValidationError) as raised:
        call(managed, "change_plan", 1, "small-annual", payment_behavior="pay_later")

    assert raised.value.details == {"field": "payment_behavior"}
    assert list(stripe_api.calls) == []


def test_the_payment_behavior_setting_refuses_an_unknown_choice() -> None:
    with pytest.raises(ValueError, match="STRIPE_BILLING_PAYMENT_BEHAVIOR"):
        managed_host({"STRIPE_BILLING_PAYMENT_BEHAVIOR": "sometimes"})


HISTORIES = {
    # change asked → payment needs action → the hold expires unpaid: plan and price stay
    "expired": (
        [asked(SUBSCRIBED_AT + 10), action_required(SUBSCRIBED_AT + 11), expired(NOW)],
        ("pro", "small-monthly", "pending_update_expired"),
    ),
    # change asked → payment needs action → the customer confirms: the change applies
    "applied": (
        [asked(SUBSCRIBED_AT + 10), action_required(SUBSCRIBED_AT + 11), applied(NOW)],
        ("pro-annual", "small-annual", "pending_update_applied"),
    ),
}


@pytest.mark.parametrize("history", list(HISTORIES))
def test_a_pending_update_history_ends_right_in_every_delivery_order(history: str) -> None:
    events, (plan, price, signal) = HISTORIES[history]
    for order in itertools.permutations(events):
        host = managed_host()
        try:
            with record_signals() as sent:
                for delivered in [*order, order[0]]:  # and a duplicate delivery
                    assert post_event(host.client, delivered).status_code == 200
            record = host.subscription(SUB)
            ends = (host.user(1).plan, record["price_ids"], record["pending_update"])
        finally:
            drop(host)

        assert ends == (plan, price, None), [e["type"] for e in order]
        assert len(sent[signal]) == 1
        assert sent[signal][0]["subscription_id"] == SUB
        [action] = sent["payment_action_required"]
        assert action["hosted_invoice_url"]
        other = {"pending_update_applied", "pending_update_expired"} - {signal}
        assert sent[other.pop()] == []


def test_the_expired_signal_names_the_dropped_change_the_record_kept() -> None:
    host = managed_host()
    try:
        with record_signals() as sent:
            post_event(host.client, asked(SUBSCRIBED_AT + 10))
            assert host.user(1).plan == "pro"
            post_event(host.client, expired(NOW))
    finally:
        drop(host)

    [notice] = sent["pending_update_expired"]
    assert notice["pending_update"].price_ids == ("small-annual",)
    assert notice["user_id"] == "1"


def test_the_applied_signal_carries_the_prices_and_seats_now() -> None:
    host = managed_host()
    try:
        with record_signals() as sent:
            post_event(host.client, asked(SUBSCRIBED_AT + 10))
            post_event(host.client, applied(NOW))
    finally:
        drop(host)

    [notice] = sent["pending_update_applied"]
    assert notice["price_ids"] == ("small-annual",)
    assert notice["quantity"] == AFTER["items"]["data"][0]["quantity"]
    assert [(c["old_plan"], c["new_plan"]) for c in sent["plan_changed"]] == [("pro", "pro-annual")]


def test_the_held_change_is_read_from_the_2020_layout_too() -> None:
    legacy = build_event(
        "customer.subscription.updated",
        customer=CUSTOMER,
        subscription="sub_legacy",
        api_layout="legacy",
        created=NOW,
    )
    legacy["data"]["object"]["pending_update"] = {
        "expires_at": EXPIRES_AT,
        "subscription_items": [{"object": "subscription_item", "price": {"id": "p2"}}],
    }
    host = managed_host()
    try:
        assert post_event(host.client, legacy).status_code == 200
        record = host.subscription("sub_legacy")
    finally:
        drop(host)

    assert record["pending_update"] == (
        f'{{"expires_at": {EXPIRES_AT}, "price_ids": ["p2"], "quantity": null}}'
    )
