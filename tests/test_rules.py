"""The pure decision rules (event + account → change), row by row of DESIGN.md's table.

No Flask app here: events come from the real fixture payloads, accounts are plain
``BillingAccount`` values.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from support import NOW, checkout_event, envelope, load, load_object, subscription_event

from flask_stripe_billing import BillingAccount, Settings
from flask_stripe_billing.events import StripeEvent, parse_event, timestamp
from flask_stripe_billing.rules import (
    HANDLED_EVENT_TYPES,
    decide,
    is_about_current_subscription,
    is_handled,
    is_stale,
    user_id_hint,
)

UTC = timezone.utc
PERIOD_END = 1_900_000_000
PERIOD_END_AT = datetime(2030, 3, 17, 17, 46, 40, tzinfo=UTC)
EARLIER_PERIOD_END_AT = datetime(2030, 2, 17, 17, 46, 40, tzinfo=UTC)
CREATED_AT = datetime.fromtimestamp(NOW, UTC)
DEFAULTS = Settings()

#: A user linked to ``cus_test`` who never subscribed.
FREE = BillingAccount(user_id="1", email="user1@example.com", stripe_customer_id="cus_test")
#: The same user paying for ``sub_test``.
SUBSCRIBED = replace(
    FREE,
    stripe_subscription_id="sub_test",
    plan="pro",
    subscription_status="active",
    current_period_end=EARLIER_PERIOD_END_AT,
    updated_at=CREATED_AT - timedelta(days=30),
    last_event_at=CREATED_AT - timedelta(days=30),
)


def sub(event_type: str = "updated", **facts: Any) -> StripeEvent:
    facts.setdefault("period_end", PERIOD_END)
    return parse_event(subscription_event(f"customer.subscription.{event_type}", **facts))


def checkout(event_type: str = "completed", **facts: Any) -> StripeEvent:
    return parse_event(checkout_event(f"checkout.session.{event_type}", **facts))


PAID = {"plan": "pro", "subscription_status": "active", "stripe_subscription_id": "sub_test"}


def new_subscription(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "stripe_subscription_id": "sub_test",
        "subscription_status": status,
        "current_period_end": PERIOD_END_AT,
        **extra,
    }


# (event, account, settings, expected changes) — one or more rows per row of the
# design's "What each event does" table, in its order.
TABLE = [
    # checkout.session.completed, mode subscription, paid or no payment required
    pytest.param(checkout(), FREE, DEFAULTS, PAID, id="checkout-paid"),
    pytest.param(
        checkout(payment_status="no_payment_required"),
        FREE,
        DEFAULTS,
        PAID,
        id="checkout-no-payment-required",
    ),
    pytest.param(checkout(layout="2020"), FREE, DEFAULTS, PAID, id="checkout-paid-2020-payload"),
    pytest.param(
        checkout(layout="dahlia"), FREE, DEFAULTS, PAID, id="checkout-paid-dahlia-payload"
    ),
    pytest.param(
        checkout(metadata={"user_id": "1", "price_id": "price_team"}),
        FREE,
        Settings(plans={"price_team": "team"}),
        {**PAID, "plan": "team"},
        id="checkout-paid-mapped-price",
    ),
    # checkout.session.completed, payment still pending
    pytest.param(checkout(payment_status="unpaid"), FREE, DEFAULTS, None, id="checkout-pending"),
    pytest.param(
        checkout("async_payment_succeeded"), FREE, DEFAULTS, PAID, id="async-payment-succeeded"
    ),
    pytest.param(checkout("async_payment_failed"), FREE, DEFAULTS, None, id="async-payment-failed"),
    # checkout in other modes (not a subscription) changes nothing
    pytest.param(
        checkout(mode="payment", subscription=None), FREE, DEFAULTS, None, id="checkout-payment"
    ),
    pytest.param(
        checkout(mode="setup", subscription=None, payment_status="no_payment_required"),
        FREE,
        DEFAULTS,
        None,
        id="checkout-setup",
    ),
    # customer.subscription.created / .updated, active or trialing
    pytest.param(
        sub("created", status="active"),
        FREE,
        DEFAULTS,
        new_subscription("active", plan="pro"),
        id="created-active",
    ),
    pytest.param(
        sub("created", status="trialing"),
        FREE,
        DEFAULTS,
        new_subscription("trialing", plan="pro"),
        id="created-trialing",
    ),
    pytest.param(
        sub("created", status="active", price="price_team"),
        FREE,
        Settings(plans={"price_team": "team", "price_other": "other"}),
        new_subscription("active", plan="team"),
        id="created-active-mapped-price",
    ),
    pytest.param(
        sub("created", status="active", price="price_unmapped"),
        FREE,
        Settings(plans={"price_team": "team"}, pro_plan_name="premium"),
        new_subscription("active", plan="premium"),
        id="created-active-unmapped-price",
    ),
    pytest.param(
        sub(status="active"),
        replace(SUBSCRIBED, plan="free", subscription_status="past_due"),
        DEFAULTS,
        {"plan": "pro", "subscription_status": "active", "current_period_end": PERIOD_END_AT},
        id="updated-active-again",
    ),
    pytest.param(
        sub(status="trialing", price="price_team"),
        FREE,
        Settings(plans={"price_team": "team"}),
        new_subscription("trialing", plan="team"),
        id="updated-trialing-mapped-price",
    ),
    # customer.subscription.created, any other status
    pytest.param(
        sub("created", status="incomplete"),
        FREE,
        DEFAULTS,
        new_subscription("incomplete"),
        id="created-incomplete",
    ),
    pytest.param(
        sub("created", status="past_due"),
        FREE,
        DEFAULTS,
        new_subscription("past_due"),
        id="created-past-due",
    ),
    # customer.subscription.updated, past_due
    pytest.param(
        sub(status="past_due"),
        SUBSCRIBED,
        DEFAULTS,
        {"subscription_status": "past_due", "current_period_end": PERIOD_END_AT},
        id="updated-past-due-keeps-plan",
    ),
    pytest.param(
        sub(status="past_due"),
        FREE,
        DEFAULTS,
        new_subscription("past_due", plan="pro"),
        id="updated-past-due-before-its-active-event-grants-the-plan",
    ),
    pytest.param(
        sub(status="past_due"),
        SUBSCRIBED,
        Settings(past_due_keeps_plan=False),
        {"plan": "free", "subscription_status": "past_due", "current_period_end": PERIOD_END_AT},
        id="updated-past-due-no-grace",
    ),
    # customer.subscription.updated, canceled / unpaid / incomplete_expired / paused
    *(
        pytest.param(
            sub(status=status),
            SUBSCRIBED,
            DEFAULTS,
            {"plan": "free", "subscription_status": status, "current_period_end": PERIOD_END_AT},
            id=f"updated-{status}",
        )
        for status in ("canceled", "unpaid", "incomplete_expired", "paused")
    ),
    # customer.subscription.deleted, the account's current subscription
    pytest.param(
        sub("deleted", status="canceled"),
        replace(SUBSCRIBED, cancel_at_period_end=True),
        DEFAULTS,
        {
            "plan": "free",
            "subscription_status": "canceled",
            "current_period_end": PERIOD_END_AT,
            "cancel_at_period_end": False,
        },
        id="deleted-current",
    ),
    pytest.param(
        sub("deleted", status="canceled"),
        replace(FREE, plan="pro", subscription_status="active"),
        DEFAULTS,
        {
            "plan": "free",
            "subscription_status": "canceled",
            "stripe_subscription_id": "sub_test",
            "current_period_end": PERIOD_END_AT,
        },
        id="deleted-when-no-subscription-known",
    ),
    # customer.subscription.deleted, another subscription of the same customer
    pytest.param(
        sub("deleted", status="canceled", subscription="sub_old"),
        SUBSCRIBED,
        DEFAULTS,
        None,
        id="deleted-other-subscription",
    ),
    # any event older than the last one applied
    pytest.param(
        sub(status="canceled", created=NOW - 60),
        replace(SUBSCRIBED, last_event_at=CREATED_AT),
        DEFAULTS,
        None,
        id="stale-updated",
    ),
    pytest.param(
        sub("deleted", status="canceled", created=NOW - 1),
        replace(SUBSCRIBED, last_event_at=CREATED_AT),
        DEFAULTS,
        None,
        id="stale-deleted",
    ),
    pytest.param(
        checkout(created=NOW - 60),
        replace(FREE, last_event_at=CREATED_AT),
        DEFAULTS,
        None,
        id="stale-checkout",
    ),
    # an event that says what the account already holds
    pytest.param(
        sub(status="active"),
        replace(SUBSCRIBED, current_period_end=PERIOD_END_AT),
        DEFAULTS,
        None,
        id="updated-no-difference",
    ),
    pytest.param(checkout(), replace(FREE, **PAID), DEFAULTS, None, id="checkout-no-difference"),
    # types this package does not handle
    pytest.param(
        parse_event(load("events/stripe-ruby-mock__invoice.payment_failed.json")),
        SUBSCRIBED,
        DEFAULTS,
        None,
        id="unhandled-invoice-payment-failed",
    ),
]


@pytest.mark.parametrize(("event", "account", "settings", "expected"), TABLE)
def test_decide_follows_the_design_table(
    event: StripeEvent,
    account: BillingAccount,
    settings: Settings,
    expected: dict[str, Any] | None,
) -> None:
    assert decide(event, account, settings) == expected


@pytest.mark.parametrize("layout", ["2020", "basil", "dahlia"])
@pytest.mark.parametrize("event_type", ["created", "updated"])
def test_active_subscription_in_every_layout_grants_the_plan(layout: str, event_type: str) -> None:
    event = sub(event_type, status="active", layout=layout)

    changes = decide(event, FREE, DEFAULTS)

    assert changes == new_subscription("active", plan="pro")


@pytest.mark.parametrize("layout", ["2020", "basil", "dahlia"])
def test_period_end_in_every_layout_comes_from_the_payload(layout: str) -> None:
    payload = subscription_event(status="active", layout=layout)
    raw = payload["data"]["object"].get("current_period_end") or max(
        item["current_period_end"] for item in payload["data"]["object"]["items"]["data"]
    )

    changes = decide(parse_event(payload), FREE, DEFAULTS)

    assert changes is not None
    assert changes["current_period_end"] == datetime.fromtimestamp(raw, UTC)


def test_cancel_at_period_end_is_stored_and_keeps_the_plan() -> None:
    event = sub(status="active", cancel_at_period_end=True)

    changes = decide(event, replace(SUBSCRIBED, current_period_end=PERIOD_END_AT), DEFAULTS)

    assert changes == {"cancel_at_period_end": True}


def test_pro_plan_name_setting_names_the_paid_plan() -> None:
    settings = Settings(pro_plan_name="premium")

    assert decide(sub("created", status="active"), FREE, settings) == new_subscription(
        "active", plan="premium"
    )
    assert decide(checkout(), FREE, settings) == {**PAID, "plan": "premium"}


def test_plans_mapping_from_config_text_maps_the_price() -> None:
    settings = Settings.from_config(
        {"STRIPE_BILLING_PLANS": "price_team=team, price_max=max"}, environ={}
    )

    changes = decide(sub(status="active", price="price_max"), FREE, settings)

    assert changes is not None
    assert changes["plan"] == "max"


@pytest.mark.parametrize("event_type", ["created", "updated"])
@pytest.mark.parametrize("status", ["incomplete", "incomplete_expired", "canceled", "past_due"])
def test_second_unpaid_subscription_does_not_replace_the_live_current_one(
    event_type: str, status: str
) -> None:
    event = sub(event_type, status=status, subscription="sub_second")

    assert decide(event, SUBSCRIBED, DEFAULTS) is None
    assert decide(event, replace(SUBSCRIBED, subscription_status="trialing"), DEFAULTS) is None


def test_second_active_subscription_becomes_the_current_one() -> None:
    event = sub("created", status="active", subscription="sub_second", price="price_team")

    changes = decide(event, SUBSCRIBED, Settings(plans={"price_team": "team"}))

    assert changes == {
        "stripe_subscription_id": "sub_second",
        "plan": "team",
        "current_period_end": PERIOD_END_AT,
    }


def test_new_subscription_replaces_one_that_already_ended() -> None:
    ended = replace(SUBSCRIBED, plan="free", subscription_status="canceled")
    event = sub("created", status="incomplete", subscription="sub_second")

    changes = decide(event, ended, DEFAULTS)

    assert changes == {
        "stripe_subscription_id": "sub_second",
        "subscription_status": "incomplete",
        "current_period_end": PERIOD_END_AT,
    }


def test_checkout_after_its_trialing_subscription_keeps_status_and_mapped_plan() -> None:
    settings = Settings(plans={"price_team": "team"})
    created = sub("created", status="trialing", price="price_team", created=NOW - 2)
    changes = decide(created, FREE, settings)
    assert changes is not None
    trialing = FREE.with_changes(changes)

    completed = checkout(payment_status="no_payment_required", created=NOW)

    assert decide(completed, trialing, settings) is None


def test_checkout_after_its_incomplete_subscription_grants_the_plan() -> None:
    created = sub("created", status="incomplete", created=NOW - 2)
    changes = decide(created, FREE, DEFAULTS)
    assert changes is not None
    incomplete = FREE.with_changes(changes)

    assert decide(checkout(created=NOW), incomplete, DEFAULTS) == {
        "plan": "pro",
        "subscription_status": "active",
    }


def test_checkout_for_a_new_subscription_replaces_an_ended_one() -> None:
    ended = replace(SUBSCRIBED, plan="free", subscription_status="canceled")

    changes = decide(checkout(subscription="sub_second"), ended, DEFAULTS)

    assert changes == {**PAID, "stripe_subscription_id": "sub_second"}


def test_event_created_in_the_same_second_as_the_last_one_is_applied() -> None:
    account = replace(SUBSCRIBED, last_event_at=CREATED_AT)

    changes = decide(sub(status="canceled", created=NOW), account, DEFAULTS)

    assert changes is not None
    assert changes["plan"] == "free"


def test_newer_event_than_the_last_one_is_applied() -> None:
    account = replace(SUBSCRIBED, last_event_at=CREATED_AT)

    changes = decide(sub("deleted", status="canceled", created=NOW + 1), account, DEFAULTS)

    assert changes == {
        "plan": "free",
        "subscription_status": "canceled",
        "current_period_end": PERIOD_END_AT,
    }


def test_handled_event_types_are_the_five_of_the_design() -> None:
    assert set(HANDLED_EVENT_TYPES) == {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
    assert all(is_handled(event_type) for event_type in HANDLED_EVENT_TYPES)


@pytest.mark.parametrize(
    "event_type",
    [
        "invoice.payment_failed",
        "invoice.paid",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
        "customer.updated",
        "customer.subscription.trial_will_end",
        "",
    ],
)
def test_other_event_types_are_not_handled(event_type: str) -> None:
    assert not is_handled(event_type)


def test_is_stale_compares_with_the_last_applied_event() -> None:
    event = sub(created=NOW)

    assert not is_stale(event, FREE)
    assert not is_stale(event, replace(FREE, last_event_at=CREATED_AT))
    assert not is_stale(event, replace(FREE, last_event_at=CREATED_AT - timedelta(seconds=1)))
    assert is_stale(event, replace(FREE, last_event_at=CREATED_AT + timedelta(seconds=1)))


def test_is_about_current_subscription_only_for_the_held_subscription() -> None:
    assert is_about_current_subscription(sub(), SUBSCRIBED)
    assert not is_about_current_subscription(sub(subscription="sub_other"), SUBSCRIBED)
    assert not is_about_current_subscription(sub(), FREE)
    assert not is_about_current_subscription(checkout(), SUBSCRIBED)


def test_user_id_hint_of_checkout_prefers_the_client_reference_id() -> None:
    both = checkout(client_reference_id="7", metadata={"user_id": "8"})
    metadata_only = checkout(metadata={"user_id": "8"})

    assert user_id_hint(both) == "7"
    assert user_id_hint(metadata_only) == "8"
    assert user_id_hint(checkout()) is None


def test_user_id_hint_of_subscription_is_its_metadata_user_id() -> None:
    assert user_id_hint(sub(user_id="9")) == "9"
    assert user_id_hint(sub()) is None


def test_user_id_hint_of_other_objects_is_none() -> None:
    invoice = load_object("events/pay-rails__invoice.payment_failed.DATA_ONLY.json")
    invoice["metadata"] = {"user_id": "1"}

    assert user_id_hint(parse_event(envelope("invoice.payment_failed", invoice))) is None


def test_an_ended_subscription_never_comes_back_even_in_the_same_second() -> None:
    account = BillingAccount(
        user_id="1",
        stripe_customer_id="cus_test",
        stripe_subscription_id="sub_test",
        subscription_status="canceled",
        last_event_at=timestamp(NOW),
    )
    late_active = parse_event(subscription_event(status="active", created=NOW))
    late_expired = parse_event(subscription_event(status="incomplete_expired", created=NOW))
    newer_other = parse_event(
        subscription_event(status="active", subscription="sub_new", created=NOW + 1)
    )

    assert is_stale(late_active, account)
    assert not is_stale(late_expired, account)
    assert not is_stale(newer_other, account)


def test_a_created_event_is_stale_beside_a_same_second_event_of_its_subscription() -> None:
    account = BillingAccount(
        user_id="1",
        stripe_customer_id="cus_test",
        stripe_subscription_id="sub_test",
        subscription_status="past_due",
        last_event_at=timestamp(NOW),
    )
    created = parse_event(subscription_event("customer.subscription.created", created=NOW))
    updated = parse_event(subscription_event(status="active", created=NOW))

    assert is_stale(created, account)
    assert not is_stale(updated, account)
