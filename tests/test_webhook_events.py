"""Each row of DESIGN.md's event table, end to end: signed POST → answer, user row, event log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from conftest import Host
from support import LAYOUTS, NOW, checkout_event, fixture_event, post_event, subscription_event

from flask_stripe_billing.pipeline import run as pipeline

UTC = UTC
CREATED_AT = datetime.fromtimestamp(NOW, UTC)
PERIOD_END = 1_900_000_000
PERIOD_END_AT = datetime(2030, 3, 17, 17, 46, 40, tzinfo=UTC)
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)

MakeHost = Callable[..., Host]


def utc(value: datetime | None) -> datetime | None:
    """A datetime read back from the database as aware UTC (SQLite drops the zone)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def deliver(host: Host, payload: dict[str, Any]) -> dict[str, Any]:
    """POST the event as Stripe does; check the answer; return its event-log row."""
    response = post_event(host.client, payload)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"received": True}
    return log_row(host, payload["id"])


def log_row(host: Host, event_id: str) -> dict[str, Any]:
    rows = [row for row in host.events() if row["id"] == event_id]
    assert len(rows) == 1
    return rows[0]


def subscribed(
    make_host: MakeHost,
    config: dict[str, Any] | None = None,
    *,
    status: str = "active",
    period_end: datetime = PERIOD_END_AT - timedelta(days=30),
    cancel_at_period_end: bool = False,
) -> Host:
    """A host whose user 1 pays for ``sub_test`` (customer ``cus_test``) since long ago.

    The subscription's own ``created`` event, dated ``LONG_AGO``, was delivered and
    applied ``LONG_AGO``: its record is the source of truth, the account its projection.
    """
    host = make_host(config)
    host.add_user(1, stripe_customer_id="cus_test")
    since_long_ago = subscription_event(
        "customer.subscription.created",
        status=status,
        period_end=int(period_end.timestamp()),
        cancel_at_period_end=cancel_at_period_end,
        created=int(LONG_AGO.timestamp()),
    )
    with mock.patch.object(pipeline, "utcnow", return_value=LONG_AGO):
        assert_processed(deliver(host, since_long_ago))
    user = host.user(1)
    assert user.stripe_subscription_id == "sub_test"
    assert user.stripe_subscription_status == status
    assert utc(user.updated_at) == LONG_AGO
    assert utc(host.subscription("sub_test")["last_event_at"]) == LONG_AGO
    return host


def assert_changed_now(
    host: Host,
    user: Any,
    since: datetime,
    *,
    subscription: str = "sub_test",
    watermark: datetime | None = CREATED_AT,
) -> None:
    """The row was written by this delivery (updated_at now), and the subscription's
    record carries this event's time as its watermark (None: only a checkout made it)."""
    updated_at = utc(user.updated_at)
    assert updated_at is not None
    assert since <= updated_at <= datetime.now(UTC)
    record = host.subscription(subscription)
    assert record["user_id"] == str(user.id)
    assert record["status"] == user.stripe_subscription_status
    assert utc(record["last_event_at"]) == watermark


def assert_processed(row: dict[str, Any], *, customer: str = "cus_test", user: str = "1") -> None:
    assert row["status"] == "processed"
    assert row["customer_id"] == customer
    assert row["user_id"] == user
    assert row["error"] is None


def assert_unmatched(row: dict[str, Any], customer: str | None, reason: str) -> None:
    """The event waits, unapplied, with the reason in its ``error`` column."""
    assert row["status"] == "unmatched"
    assert row["customer_id"] == customer
    assert row["user_id"] is None
    assert row["error"] == reason


def assert_untouched(host: Host) -> None:
    """User 1 of the ``host`` fixture as it was created, and no subscription recorded."""
    user = host.user(1)
    assert user.plan == "free"
    assert user.stripe_customer_id == "cus_test"
    assert user.stripe_subscription_id is None
    assert user.stripe_subscription_status is None
    assert user.current_period_end is None
    assert user.updated_at is None
    assert [row["id"] for row in host.subscriptions() if row["user_id"] == "1"] == []


@pytest.fixture
def since() -> datetime:
    return datetime.now(UTC)


# checkout.session.completed, mode subscription, paid or no payment required


@pytest.mark.parametrize("layout", LAYOUTS)
def test_paid_checkout_grants_the_paid_plan(host: Host, since: datetime, layout: str) -> None:
    row = deliver(host, checkout_event(layout=layout))

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "active"
    assert user.stripe_subscription_id == "sub_test"
    assert user.stripe_customer_id == "cus_test"
    assert user.cancel_at_period_end is False
    assert_changed_now(host, user, since, watermark=None)  # checkouts do not move it
    assert_processed(row)
    assert row["type"] == "checkout.session.completed"


def test_checkout_without_payment_required_grants_the_paid_plan(
    host: Host, since: datetime
) -> None:
    row = deliver(host, checkout_event(payment_status="no_payment_required"))

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "active"
    assert user.stripe_subscription_id == "sub_test"
    assert_changed_now(host, user, since, watermark=None)  # checkouts do not move it
    assert_processed(row)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_checkout_links_unknown_customer_to_the_client_reference_id_user(
    host: Host, since: datetime, layout: str
) -> None:
    host.add_user(2)

    row = deliver(host, checkout_event(customer="cus_new", client_reference_id="2", layout=layout))

    user = host.user(2)
    assert user.stripe_customer_id == "cus_new"
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "active"
    assert user.stripe_subscription_id == "sub_test"
    assert_changed_now(host, user, since, watermark=None)  # checkouts do not move it
    assert_processed(row, customer="cus_new", user="2")
    assert_untouched(host)


def test_checkout_links_unknown_customer_to_the_metadata_user_id_user(
    host: Host, since: datetime
) -> None:
    host.add_user(2)

    row = deliver(host, checkout_event(customer="cus_new", metadata={"user_id": "2"}))

    user = host.user(2)
    assert user.stripe_customer_id == "cus_new"
    assert user.plan == "pro"
    assert user.stripe_subscription_id == "sub_test"
    assert_changed_now(host, user, since, watermark=None)  # checkouts do not move it
    assert_processed(row, customer="cus_new", user="2")


def test_checkout_for_unknown_customer_without_user_reference_is_unmatched(
    host: Host, received: dict[str, list[dict[str, Any]]]
) -> None:
    host.add_user(2)

    row = deliver(host, checkout_event(customer="cus_nobody"))

    reason = "no account is linked to customer cus_nobody"
    assert_unmatched(row, "cus_nobody", reason)
    assert_untouched(host)
    assert host.user(2).stripe_customer_id is None
    assert host.user(2).plan == "free"
    assert host.subscriptions() == []
    assert [(c["customer_id"], c["reason"]) for c in received["customer_not_found"]] == [
        ("cus_nobody", reason)
    ]


@pytest.mark.parametrize(
    "reference", ["99", "not-a-number", "1099511627776", "99999999999999999999"]
)
def test_checkout_naming_a_user_that_does_not_exist_is_unmatched(
    host: Host, reference: str
) -> None:
    row = deliver(host, checkout_event(customer="cus_new", client_reference_id=reference))

    assert_unmatched(row, "cus_new", "no account is linked to customer cus_new")
    assert_untouched(host)
    assert host.subscriptions() == []


def test_checkout_with_mapped_price_grants_the_mapped_plan(make_host: MakeHost) -> None:
    host = make_host({"STRIPE_BILLING_PLANS": {"price_team": "team"}})
    host.add_user(1, stripe_customer_id="cus_test")

    row = deliver(host, checkout_event(metadata={"user_id": "1", "price_id": "price_team"}))

    assert host.user(1).plan == "team"
    assert_processed(row)


def test_checkout_after_its_trialing_subscription_keeps_the_trial_and_mapped_plan(
    make_host: MakeHost, received: dict[str, list[dict[str, Any]]]
) -> None:
    host = make_host({"STRIPE_BILLING_PLANS": "price_team=team"})
    host.add_user(1, stripe_customer_id="cus_test")
    deliver(
        host,
        subscription_event(
            "customer.subscription.created",
            status="trialing",
            price="price_team",
            period_end=PERIOD_END,
            created=NOW - 2,
        ),
    )
    trialing = host.user(1)

    row = deliver(host, checkout_event(payment_status="no_payment_required", created=NOW))

    user = host.user(1)
    assert user.plan == "team"
    assert user.stripe_subscription_status == "trialing"
    assert user.stripe_subscription_id == "sub_test"
    assert utc(user.current_period_end) == PERIOD_END_AT
    assert utc(user.updated_at) == utc(trialing.updated_at)
    assert_processed(row)
    assert [(c["old_plan"], c["new_plan"]) for c in received["plan_changed"]] == [("free", "team")]


# checkout.session.completed, payment still pending


def test_pending_checkout_changes_nothing_until_async_payment_succeeds(
    host: Host, since: datetime
) -> None:
    host.add_user(2)
    pending = checkout_event(customer="cus_new", client_reference_id="2", payment_status="unpaid")

    pending_row = deliver(host, pending)

    waiting = host.user(2)
    assert waiting.plan == "free"
    assert waiting.stripe_subscription_status is None
    assert waiting.stripe_subscription_id is None
    assert waiting.stripe_customer_id == "cus_new"  # linked: user 2 had no customer yet
    assert host.subscriptions() == []  # nothing paid, so no subscription recorded
    assert_processed(pending_row, customer="cus_new", user="2")

    succeeded = checkout_event(
        "checkout.session.async_payment_succeeded",
        customer="cus_new",
        client_reference_id="2",
        payment_status="paid",
    )
    row = deliver(host, succeeded)

    user = host.user(2)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "active"
    assert user.stripe_subscription_id == "sub_test"
    assert user.stripe_customer_id == "cus_new"
    assert_changed_now(host, user, since, watermark=None)  # checkouts do not move it
    assert_processed(row, customer="cus_new", user="2")
    assert row["type"] == "checkout.session.async_payment_succeeded"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            lambda: checkout_event(mode="payment", subscription=None, layout="2020"),
            id="payment",
        ),
        pytest.param(
            lambda: checkout_event(
                mode="setup", subscription=None, payment_status="no_payment_required"
            ),
            id="setup",
        ),
    ],
)
def test_checkout_in_payment_or_setup_mode_changes_nothing(
    host: Host, payload: Callable[[], dict[str, Any]]
) -> None:
    row = deliver(host, payload())

    assert_untouched(host)
    assert_processed(row)


def test_real_setup_mode_checkout_without_customer_changes_nothing(host: Host) -> None:
    payload = fixture_event(
        "events/stripe-ruby-mock__checkout.session.completed.setup_mode.json",
        id="evt_setup_mode",
        created=NOW,
    )

    row = deliver(host, payload)

    assert_untouched(host)
    assert_unmatched(row, None, "the event names no customer and no account")


# customer.subscription.created / .updated, active or trialing


@pytest.mark.parametrize("status", ["active", "trialing"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_created_subscription_that_is_paid_grants_the_plan(
    host: Host, since: datetime, layout: str, status: str
) -> None:
    payload = subscription_event("customer.subscription.created", status=status, layout=layout)
    obj = payload["data"]["object"]
    period_end = obj.get("current_period_end") or obj["items"]["data"][0]["current_period_end"]

    row = deliver(host, payload)

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == status
    assert user.stripe_subscription_id == "sub_test"
    assert utc(user.current_period_end) == datetime.fromtimestamp(period_end, UTC)
    assert user.cancel_at_period_end is False
    assert_changed_now(host, user, since)
    assert_processed(row)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_updated_subscription_back_to_active_grants_the_plan_again(
    make_host: MakeHost, since: datetime, layout: str
) -> None:
    host = subscribed(make_host, {"STRIPE_PAST_DUE_KEEPS_PLAN": False}, status="past_due")
    assert host.user(1).plan == "free"

    row = deliver(host, subscription_event(status="active", period_end=PERIOD_END, layout=layout))

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "active"
    assert utc(user.current_period_end) == PERIOD_END_AT
    assert_changed_now(host, user, since)
    assert_processed(row)


def test_subscription_scheduled_to_cancel_keeps_the_plan_and_says_so(
    make_host: MakeHost, since: datetime
) -> None:
    host = subscribed(make_host)

    row = deliver(host, subscription_event(status="active", cancel_at_period_end=True))

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "active"
    assert user.cancel_at_period_end is True
    assert_changed_now(host, user, since)
    assert_processed(row)


@pytest.mark.parametrize(
    "plans",
    [
        pytest.param({"price_team": "team", "price_max": "max"}, id="dict"),
        pytest.param("price_team=team,price_max=max", id="text"),
        pytest.param('{"price_team": "team", "price_max": "max"}', id="json"),
    ],
)
def test_billing_plans_config_gives_the_mapped_plan(make_host: MakeHost, plans: Any) -> None:
    host = make_host({"STRIPE_BILLING_PLANS": plans})
    host.add_user(1, stripe_customer_id="cus_test")

    row = deliver(
        host, subscription_event("customer.subscription.created", price="price_max", layout="basil")
    )

    assert host.user(1).plan == "max"
    assert_processed(row)


def test_unmapped_price_gets_the_pro_plan_name(make_host: MakeHost) -> None:
    host = make_host({"STRIPE_BILLING_PLANS": "price_team=team", "PRO_PLAN_NAME": "premium"})
    host.add_user(1, stripe_customer_id="cus_test")

    deliver(host, subscription_event("customer.subscription.created", price="price_other"))

    assert host.user(1).plan == "premium"


def test_pro_plan_name_config_names_the_paid_plan(make_host: MakeHost) -> None:
    host = make_host({"PRO_PLAN_NAME": "premium"})
    host.add_user(1, stripe_customer_id="cus_test")
    host.add_user(2, stripe_customer_id="cus_two")

    deliver(host, subscription_event("customer.subscription.created", status="trialing"))
    deliver(host, checkout_event(customer="cus_two"))

    assert host.user(1).plan == "premium"
    assert host.user(2).plan == "premium"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_subscription_event_links_the_metadata_user_without_customer(
    host: Host, since: datetime, layout: str
) -> None:
    host.add_user(2)

    row = deliver(
        host,
        subscription_event(
            "customer.subscription.created", customer="cus_new", user_id="2", layout=layout
        ),
    )

    user = host.user(2)
    assert user.stripe_customer_id == "cus_new"
    assert user.plan == "pro"
    assert user.stripe_subscription_id == "sub_test"
    assert user.stripe_subscription_status == "active"
    assert_changed_now(host, user, since)
    assert_processed(row, customer="cus_new", user="2")
    assert_untouched(host)


# customer.subscription.created, any other status


@pytest.mark.parametrize(
    ("status", "plan"),
    [
        pytest.param("incomplete", "free", id="incomplete"),
        # past_due grants the plan while Stripe retries (STRIPE_PAST_DUE_KEEPS_PLAN),
        # whether the subscription is first seen created or updated that way.
        pytest.param("past_due", "pro", id="past_due"),
    ],
)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_created_subscription_not_yet_paid_stores_status_and_plan_by_its_grace(
    host: Host, since: datetime, layout: str, status: str, plan: str
) -> None:
    payload = subscription_event(
        "customer.subscription.created", status=status, period_end=PERIOD_END, layout=layout
    )

    row = deliver(host, payload)

    user = host.user(1)
    assert user.plan == plan
    assert user.stripe_subscription_status == status
    assert user.stripe_subscription_id == "sub_test"
    assert utc(user.current_period_end) == PERIOD_END_AT
    assert_changed_now(host, user, since)
    assert_processed(row)


def test_second_incomplete_subscription_does_not_replace_the_live_one(
    make_host: MakeHost,
) -> None:
    host = subscribed(make_host)

    row = deliver(
        host,
        subscription_event(
            "customer.subscription.created", status="incomplete", subscription="sub_second"
        ),
    )

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_id == "sub_test"
    assert user.stripe_subscription_status == "active"
    assert utc(user.updated_at) == LONG_AGO
    second = host.subscription("sub_second")
    assert second["status"] == "incomplete"
    assert utc(second["last_event_at"]) == CREATED_AT
    assert_processed(row)


# customer.subscription.updated, past_due


@pytest.mark.parametrize("layout", LAYOUTS)
def test_past_due_subscription_keeps_the_plan(
    make_host: MakeHost, since: datetime, layout: str
) -> None:
    host = subscribed(make_host)

    row = deliver(host, subscription_event(status="past_due", period_end=PERIOD_END, layout=layout))

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "past_due"
    assert user.stripe_subscription_id == "sub_test"
    assert utc(user.current_period_end) == PERIOD_END_AT
    assert_changed_now(host, user, since)
    assert_processed(row)


@pytest.mark.parametrize("setting", [False, "false", "0"])
def test_past_due_subscription_loses_the_plan_when_grace_is_off(
    make_host: MakeHost, since: datetime, setting: Any
) -> None:
    host = subscribed(make_host, {"STRIPE_PAST_DUE_KEEPS_PLAN": setting})

    row = deliver(host, subscription_event(status="past_due"))

    user = host.user(1)
    assert user.plan == "free"
    assert user.stripe_subscription_status == "past_due"
    assert_changed_now(host, user, since)
    assert_processed(row)


# customer.subscription.updated, canceled / unpaid / incomplete_expired / paused


@pytest.mark.parametrize("status", ["canceled", "unpaid", "incomplete_expired", "paused"])
def test_ended_subscription_returns_to_free(
    make_host: MakeHost, since: datetime, status: str
) -> None:
    host = subscribed(make_host)

    row = deliver(host, subscription_event(status=status, period_end=PERIOD_END))

    user = host.user(1)
    assert user.plan == "free"
    assert user.stripe_subscription_status == status
    assert user.stripe_subscription_id == "sub_test"
    assert utc(user.current_period_end) == PERIOD_END_AT
    assert_changed_now(host, user, since)
    assert_processed(row)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_canceled_subscription_returns_to_free_in_every_layout(
    make_host: MakeHost, layout: str
) -> None:
    host = subscribed(make_host)

    row = deliver(host, subscription_event(status="canceled", layout=layout))

    user = host.user(1)
    assert user.plan == "free"
    assert user.stripe_subscription_status == "canceled"
    assert_processed(row)


# customer.subscription.deleted


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deleted_event_for_current_subscription_returns_to_free(
    make_host: MakeHost, since: datetime, layout: str
) -> None:
    host = subscribed(make_host, cancel_at_period_end=True)

    row = deliver(
        host,
        subscription_event(
            "customer.subscription.deleted",
            status="canceled",
            cancel_at_period_end=False,
            layout=layout,
        ),
    )

    user = host.user(1)
    assert user.plan == "free"
    assert user.stripe_subscription_status == "canceled"
    assert user.stripe_subscription_id == "sub_test"
    assert user.cancel_at_period_end is False
    assert_changed_now(host, user, since)
    assert_processed(row)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deleted_event_for_other_subscription_keeps_plan(make_host: MakeHost, layout: str) -> None:
    host = subscribed(make_host)

    row = deliver(
        host,
        subscription_event(
            "customer.subscription.deleted",
            status="canceled",
            subscription="sub_old",
            layout=layout,
        ),
    )

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "active"
    assert user.stripe_subscription_id == "sub_test"
    assert utc(user.updated_at) == LONG_AGO
    assert utc(host.subscription("sub_test")["last_event_at"]) == LONG_AGO
    old = host.subscription("sub_old")  # ended, recorded so a late event cannot revive it
    assert old["status"] == "canceled"
    assert old["user_id"] == "1"
    assert utc(old["last_event_at"]) == CREATED_AT
    assert_processed(row)


def test_deleted_event_for_the_only_other_subscription_shows_it_canceled(
    host: Host, since: datetime
) -> None:
    row = deliver(
        host,
        subscription_event(
            "customer.subscription.deleted", status="canceled", subscription="sub_old"
        ),
    )

    user = host.user(1)
    assert user.plan == "free"
    assert user.stripe_subscription_id == "sub_old"
    assert user.stripe_subscription_status == "canceled"
    assert_changed_now(host, user, since, subscription="sub_old")
    assert_processed(row)


# any: same event id seen before


def test_redelivered_event_is_not_applied_twice(make_host: MakeHost) -> None:
    host = subscribed(make_host)
    past_due = subscription_event(status="past_due", event_id="evt_past_due", created=NOW)
    deliver(host, past_due)
    deliver(host, subscription_event(status="active", event_id="evt_active", created=NOW))
    after_both = host.user(1)

    row = deliver(host, past_due)

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "active"
    assert utc(user.updated_at) == utc(after_both.updated_at)
    assert row["status"] == "processed"
    assert row["attempts"] == 2
    assert [(e["id"], e["attempts"]) for e in host.events()][1:] == [
        ("evt_past_due", 2),
        ("evt_active", 1),
    ]


# any: older than the last event applied


def test_event_older_than_the_last_applied_one_changes_nothing(make_host: MakeHost) -> None:
    host = subscribed(make_host)
    deliver(host, subscription_event(status="active", period_end=PERIOD_END, created=NOW + 60))
    newer = host.user(1)

    # (not ``canceled``: an end is never stale against a live record)
    row = deliver(host, subscription_event(status="unpaid", created=NOW))

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "active"
    assert utc(user.updated_at) == utc(newer.updated_at)
    record = host.subscription("sub_test")
    assert record["status"] == "active"
    assert utc(record["last_event_at"]) == CREATED_AT + timedelta(seconds=60)
    assert row["status"] == "stale"
    assert row["user_id"] == "1"


def test_an_older_event_of_another_subscription_is_not_stale(make_host: MakeHost) -> None:
    host = subscribed(make_host)
    deliver(host, subscription_event(status="active", created=NOW + 60))

    row = deliver(
        host,
        subscription_event(
            "customer.subscription.deleted",
            status="canceled",
            subscription="sub_old",
            created=NOW,
        ),
    )

    assert_processed(row)
    assert host.subscription("sub_old")["status"] == "canceled"
    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_id == "sub_test"


# any: customer not known


def test_subscription_event_for_unknown_customer_is_unmatched(host: Host) -> None:
    row = deliver(host, subscription_event(status="canceled", customer="cus_unknown"))

    assert_unmatched(row, "cus_unknown", "no account is linked to customer cus_unknown")
    assert_untouched(host)
    assert host.subscriptions() == []


# types the package does not handle


def test_unhandled_event_type_is_acknowledged_and_ignored(make_host: MakeHost) -> None:
    host = subscribed(make_host)
    payload = fixture_event(
        "events/stripe-ruby-mock__invoice.payment_failed.json", created=NOW, type="invoice.upcoming"
    )
    payload["data"]["object"]["customer"] = "cus_test"

    row = deliver(host, payload)

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "active"
    assert utc(user.updated_at) == LONG_AGO
    assert utc(host.subscription("sub_test")["last_event_at"]) == LONG_AGO
    assert row["status"] == "ignored"
    assert row["type"] == "invoice.upcoming"
    assert row["customer_id"] == "cus_test"
    assert row["user_id"] is None


# an event that changes nothing


def test_updated_event_that_changes_nothing_keeps_updated_at_but_moves_the_watermark(
    make_host: MakeHost,
) -> None:
    host = subscribed(make_host, period_end=PERIOD_END_AT)

    row = deliver(host, subscription_event(status="active", period_end=PERIOD_END))

    user = host.user(1)
    assert user.plan == "pro"
    assert user.stripe_subscription_status == "active"
    assert utc(user.current_period_end) == PERIOD_END_AT
    assert utc(user.updated_at) == LONG_AGO
    assert utc(host.subscription("sub_test")["last_event_at"]) == CREATED_AT
    assert_processed(row)

    # The subscription's watermark moved: an event of it older than this one is stale.
    older = deliver(host, subscription_event(status="unpaid", created=NOW - 1))

    assert older["status"] == "stale"
    assert host.user(1).plan == "pro"
    assert host.subscription("sub_test")["status"] == "active"
