"""The pure decision rules (event + account + its records → decision), row by row of the
design's v2 event table. No Flask app and no database: events come from the real
fixture payloads, accounts and subscription records are plain values.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support import NOW, checkout_event, subscription_event

from flask_stripe_billing import BillingAccount, Settings, SubscriptionRecord
from flask_stripe_billing.core.account import primary_subscription, project
from flask_stripe_billing.core.events import StripeEvent, parse_event, timestamp
from flask_stripe_billing.core.rules import (
    HANDLED_EVENT_TYPES,
    AccountMatch,
    Decision,
    decide,
    is_handled,
    is_stale,
)

UTC = UTC
PERIOD_END = 1_900_000_000
CREATED_AT = timestamp(NOW)
EARLIER = CREATED_AT - timedelta(days=30)
DECIDED_AT = datetime(2031, 1, 1, tzinfo=UTC)
DEFAULTS = Settings()
NO_GRACE = Settings(past_due_keeps_plan=False)
TIERS = Settings(plans={"price_basic": "basic", "price_pro": "pro", "price_team": "team"})

#: A user linked to ``cus_test`` who never subscribed.
FREE = BillingAccount(user_id="1", email="user1@example.com", stripe_customer_id="cus_test")


def sub(event_type: str = "updated", **facts: Any) -> StripeEvent:
    facts.setdefault("period_end", PERIOD_END)
    return parse_event(subscription_event(f"customer.subscription.{event_type}", **facts))


def checkout(event_type: str = "completed", **facts: Any) -> StripeEvent:
    return parse_event(checkout_event(f"checkout.session.{event_type}", **facts))


def record(
    subscription: str = "sub_test",
    status: str = "active",
    *,
    plan: str = "pro",
    created: datetime = EARLIER,
    last_event_at: datetime | None = EARLIER,
    **fields: Any,
) -> SubscriptionRecord:
    """A stored subscription record of user 1."""
    values: dict[str, Any] = {
        "id": subscription,
        "user_id": "1",
        "customer_id": "cus_test",
        "status": status,
        "price_ids": (),
        "plan": plan,
        "quantity": 1,
        "trial_end": None,
        "current_period_end": timestamp(PERIOD_END),
        "cancel_at_period_end": False,
        "cancel_at": None,
        "ended_at": None,
        "created": created,
        "last_event_at": last_event_at,
    }
    return SubscriptionRecord(**(values | fields))


def projected(*records: SubscriptionRecord, settings: Settings = DEFAULTS) -> BillingAccount:
    """User 1's account as the projection of ``records`` shows it."""
    return FREE.with_changes(project(records, settings))


def run(
    event: StripeEvent,
    *records: SubscriptionRecord,
    account: BillingAccount | None = None,
    by_customer: bool = True,
    settings: Settings = DEFAULTS,
) -> Decision:
    """Decide ``event`` for user 1 holding ``records`` (account: their projection)."""
    if account is None:
        account = projected(*records, settings=settings)
    return decide(event, AccountMatch(account, by_customer), records, settings, DECIDED_AT)


# (event, records held, settings, expected status, expected account fields after)
# — rows of the design's event table, in its order.
TABLE = [
    # subscription events: that subscription's record updated, the account re-projected
    pytest.param(sub("created", status="active"), (), DEFAULTS, "processed",
                 {"plan": "pro", "subscription_status": "active"}, id="created-active"),
    pytest.param(sub("created", status="trialing"), (), DEFAULTS, "processed",
                 {"plan": "pro", "subscription_status": "trialing"}, id="created-trialing"),
    pytest.param(sub("created", status="incomplete"), (), DEFAULTS, "processed",
                 {"plan": "free", "subscription_status": "incomplete"}, id="created-incomplete"),
    pytest.param(sub(status="past_due"), (record(),), DEFAULTS, "processed",
                 {"plan": "pro", "subscription_status": "past_due"}, id="past-due-grace"),
    pytest.param(sub(status="past_due"), (record(),), NO_GRACE, "processed",
                 {"plan": "free", "subscription_status": "past_due"}, id="past-due-no-grace"),
    *[
        pytest.param(sub(status=status), (record(),), DEFAULTS, "processed",
                     {"plan": "free", "subscription_status": status}, id=f"updated-{status}")
        for status in ("canceled", "unpaid", "incomplete_expired", "paused")
    ],
    pytest.param(sub("deleted", status="canceled"), (record(),), DEFAULTS, "processed",
                 {"plan": "free", "subscription_status": "canceled"}, id="deleted-current"),
    pytest.param(sub(price="price_team"), (), TIERS, "processed",
                 {"plan": "team"}, id="mapped-price"),
    # deleted for another subscription: the live one stays primary
    pytest.param(sub("deleted", status="canceled", subscription="sub_old"), (record(),),
                 DEFAULTS, "processed",
                 {"plan": "pro", "subscription_status": "active",
                  "stripe_subscription_id": "sub_test"}, id="deleted-other-keeps-plan"),
    # incomplete retry never displaces a live primary
    pytest.param(sub("created", status="incomplete", subscription="sub_retry"), (record(),),
                 DEFAULTS, "processed",
                 {"plan": "pro", "stripe_subscription_id": "sub_test"},
                 id="incomplete-beside-live"),
    # stale only against the same subscription's watermark
    pytest.param(sub(status="past_due", created=NOW - 60),
                 (record(last_event_at=CREATED_AT),), DEFAULTS, "stale",
                 {"plan": "pro", "subscription_status": "active"}, id="older-than-its-watermark"),
    # an end is never stale against a record that has not ended, whatever the times say
    pytest.param(sub(status="canceled", created=NOW - 60),
                 (record(last_event_at=CREATED_AT),), DEFAULTS, "processed",
                 {"plan": "free", "subscription_status": "canceled"},
                 id="end-older-than-a-live-watermark-applies"),
    pytest.param(sub("deleted", status="active", created=NOW - 60),
                 (record(last_event_at=CREATED_AT),), DEFAULTS, "processed",
                 {"plan": "free", "subscription_status": "canceled"},
                 id="deletion-older-than-a-live-watermark-applies"),
    pytest.param(sub(status="active", created=NOW + 60),
                 (record(status="canceled", last_event_at=None),), DEFAULTS, "stale",
                 {}, id="an-ended-record-without-watermark-never-comes-back"),
    pytest.param(sub(status="active", subscription="sub_new", created=NOW - 60),
                 (record("sub_old", "incomplete_expired", plan="pro",
                         last_event_at=CREATED_AT),), DEFAULTS, "processed",
                 {"plan": "pro", "stripe_subscription_id": "sub_new"},
                 id="older-than-another-subscriptions-watermark-applies"),
    # checkout: creates the record only when absent
    pytest.param(checkout(), (), DEFAULTS, "processed",
                 {"plan": "pro", "subscription_status": "active",
                  "stripe_subscription_id": "sub_test"}, id="checkout-paid"),
    pytest.param(checkout(payment_status="no_payment_required"), (), DEFAULTS, "processed",
                 {"plan": "pro", "subscription_status": "active"}, id="checkout-no-payment"),
    pytest.param(checkout(layout="2020"), (), DEFAULTS, "processed",
                 {"plan": "pro"}, id="checkout-2020-payload"),
    pytest.param(checkout(layout="dahlia"), (), DEFAULTS, "processed",
                 {"plan": "pro"}, id="checkout-dahlia-payload"),
    pytest.param(checkout(metadata={"user_id": "1", "price_id": "price_team"}), (), TIERS,
                 "processed", {"plan": "team"}, id="checkout-mapped-price"),
    pytest.param(checkout("async_payment_succeeded"), (), DEFAULTS, "processed",
                 {"plan": "pro"}, id="async-payment-succeeded"),
    pytest.param(checkout(), (record(status="trialing"),), DEFAULTS, "processed",
                 {"plan": "pro", "subscription_status": "trialing"},
                 id="checkout-never-changes-an-existing-record"),
    pytest.param(checkout(payment_status="unpaid"), (), DEFAULTS, "processed",
                 {"plan": "free", "subscription_status": None}, id="checkout-pending"),
    pytest.param(checkout(mode="payment", subscription=None), (), DEFAULTS, "processed",
                 {"plan": "free"}, id="checkout-payment-mode"),
    pytest.param(checkout(mode="setup", subscription=None,
                          payment_status="no_payment_required"), (), DEFAULTS, "processed",
                 {"plan": "free"}, id="checkout-setup-mode"),
]  # fmt: skip


@pytest.mark.parametrize(("event", "records", "settings", "status", "expected"), TABLE)
def test_event_table(
    event: StripeEvent,
    records: tuple[SubscriptionRecord, ...],
    settings: Settings,
    status: str,
    expected: dict[str, Any],
) -> None:
    decision = run(event, *records, settings=settings)

    assert decision.status == status
    after = decision.after
    assert after is not None
    assert {field: getattr(after, field) for field in expected} == expected


def test_subscription_event_records_every_fact_of_its_subscription() -> None:
    event = sub("created", status="trialing", price="price_team", period_end=PERIOD_END)

    decision = run(event, settings=TIERS)

    (saved,) = decision.records
    assert saved.id == "sub_test"
    assert saved.user_id == "1"
    assert saved.customer_id == "cus_test"
    assert saved.status == "trialing"
    assert saved.price_ids == ("price_team",)
    assert saved.plan == "team"
    assert saved.current_period_end == timestamp(PERIOD_END)
    assert saved.last_event_at == event.created
    assert saved.created is not None
    assert decision.account_changes["updated_at"] == DECIDED_AT
    assert decision.account_changes["stripe_subscription_id"] == "sub_test"


def test_checkout_record_has_no_watermark_so_the_subscriptions_own_events_apply() -> None:
    (created,) = run(checkout()).records
    assert created.last_event_at is None
    older_update = sub(status="past_due", created=NOW - 3600)

    decision = run(older_update, created)

    assert decision.status == "processed"
    assert decision.records[0].status == "past_due"


def test_event_applied_again_writes_nothing_and_keeps_updated_at() -> None:
    event = sub(status="active", created=NOW)
    first = run(event)
    account = replace(FREE.with_changes(first.account_changes), updated_at=EARLIER)

    again = run(event, *first.records, account=account)

    assert first.records and first.account_changes
    assert again.status == "processed"
    assert again.records == ()
    assert again.account_changes == {}
    assert again.after == account


def test_plan_and_status_changes_become_notices_with_the_new_account() -> None:
    decision = run(sub("created", status="active"))

    notices = {notice.signal: dict(notice.kwargs) for notice in decision.notices}
    assert notices["plan_changed"]["old_plan"] == "free"
    assert notices["plan_changed"]["new_plan"] == "pro"
    assert notices["plan_changed"]["account"] == decision.after
    assert notices["subscription_status_changed"]["new_status"] == "active"


def test_no_notice_when_nothing_the_host_sees_changes() -> None:
    decision = run(sub("deleted", status="canceled", subscription="sub_old"), record())

    assert decision.status == "processed"
    assert decision.notices == ()


# Accounts set up before subscription records existed


V1_PAYING = replace(
    FREE,
    stripe_subscription_id="sub_v1",
    plan="pro",
    subscription_status="active",
    current_period_end=timestamp(PERIOD_END),
)


def test_account_without_records_keeps_the_subscription_it_shows_beside_another() -> None:
    late_end = sub("deleted", status="canceled", subscription="sub_older", created=NOW)

    decision = run(late_end, account=V1_PAYING)

    assert decision.status == "processed"
    assert decision.account_changes == {}
    assert sorted(record.id for record in decision.records) == ["sub_older", "sub_v1"]
    carried = next(record for record in decision.records if record.id == "sub_v1")
    assert (carried.status, carried.plan, carried.last_event_at) == ("active", "pro", None)


def test_account_without_records_takes_its_own_subscriptions_event_as_usual() -> None:
    decision = run(sub(status="past_due", subscription="sub_v1", created=NOW), account=V1_PAYING)

    (saved,) = decision.records
    assert (saved.id, saved.status, saved.last_event_at) == ("sub_v1", "past_due", CREATED_AT)
    assert decision.account_changes["subscription_status"] == "past_due"


# Linking a customer


def test_unknown_customer_links_to_the_named_account_without_customer() -> None:
    account = replace(FREE, stripe_customer_id=None)
    event = checkout(customer="cus_new", client_reference_id="1")

    decision = run(event, account=account, by_customer=False)

    assert decision.status == "processed"
    assert decision.account_changes["stripe_customer_id"] == "cus_new"
    assert decision.after is not None and decision.after.plan == "pro"


def test_account_linked_to_another_customer_is_never_relinked_by_an_event() -> None:
    account = replace(FREE, stripe_customer_id="cus_b")
    event = checkout(customer="cus_x", client_reference_id="1")

    decision = run(event, account=account, by_customer=False)

    assert decision.status == "unmatched"
    assert decision.account_changes == {}
    assert decision.records == ()
    assert decision.reason is not None and "cus_b" in decision.reason
    (notice,) = decision.notices
    assert notice.signal == "customer_not_found"
    assert notice.kwargs["customer_id"] == "cus_x"
    assert notice.kwargs["reason"] == decision.reason


def test_event_without_a_customer_applies_to_the_account_it_names() -> None:
    account = replace(FREE, stripe_customer_id="cus_b")
    event = checkout(mode="payment", customer=None, subscription=None, client_reference_id="1")

    decision = run(event, account=account, by_customer=False)

    assert decision.status == "processed"
    assert decision.account_changes == {}


def test_event_for_no_account_is_unmatched_with_a_reason() -> None:
    decision = decide(
        sub(customer="cus_unknown"), AccountMatch(None, False), (), DEFAULTS, DECIDED_AT
    )

    assert decision.status == "unmatched"
    assert decision.reason == "no account is linked to customer cus_unknown"


def test_unhandled_type_is_ignored_without_looking_at_the_account() -> None:
    event = parse_event(subscription_event("invoice.finalized"))
    decision = decide(event, AccountMatch(None, False), (), DEFAULTS, DECIDED_AT)

    assert decision.status == "ignored"
    assert decision.notices == ()


# Staleness and same-second ties


def test_is_stale_compares_with_its_own_subscriptions_watermark_only() -> None:
    event = sub(created=NOW)
    assert not is_stale(event, None)
    assert not is_stale(event, record(last_event_at=None))
    assert not is_stale(event, record(last_event_at=CREATED_AT))
    assert not is_stale(event, record(last_event_at=CREATED_AT - timedelta(seconds=1)))
    assert is_stale(event, record(last_event_at=CREATED_AT + timedelta(seconds=1)))


def test_ended_subscription_never_comes_back_even_in_the_same_second() -> None:
    ended = record(status="canceled", last_event_at=CREATED_AT)
    assert is_stale(sub(status="active", created=NOW), ended)
    assert not is_stale(sub(status="canceled", created=NOW), ended)
    assert not is_stale(sub("deleted", status="canceled", created=NOW), ended)


def test_created_event_never_overrides_a_same_second_event_of_its_subscription() -> None:
    held = record(status="past_due", last_event_at=CREATED_AT)
    assert is_stale(sub("created", status="active", created=NOW), held)
    assert not is_stale(sub("updated", status="active", created=NOW), held)


# The projection


def test_primary_is_best_status_then_highest_plan_then_newest() -> None:
    old_active = record("sub_a", "active", created=EARLIER)
    new_active = record("sub_b", "active", created=CREATED_AT)
    newest_past_due = record("sub_c", "past_due", created=CREATED_AT + timedelta(days=1))
    newest_incomplete = record("sub_d", "incomplete", created=CREATED_AT + timedelta(days=2))
    basic = record("sub_basic", "active", plan="basic", created=CREATED_AT + timedelta(days=3))
    team = record("sub_team", "active", plan="team", created=EARLIER)

    def primary(*records: SubscriptionRecord, settings: Settings = DEFAULTS) -> str | None:
        chosen = primary_subscription(records, settings)
        return None if chosen is None else chosen.id

    assert primary() is None
    assert primary(old_active, new_active) == "sub_b"
    assert primary(old_active, newest_past_due, newest_incomplete) == "sub_a"
    assert primary(newest_past_due, newest_incomplete) == "sub_c"
    assert primary(basic, team, settings=TIERS) == "sub_team"
    assert primary(record("sub_x", "canceled"), newest_incomplete) == "sub_d"


def test_no_records_project_to_free_without_a_subscription() -> None:
    account = projected()
    assert (account.plan, account.subscription_status, account.stripe_subscription_id) == (
        "free",
        None,
        None,
    )


def test_projection_carries_the_primarys_trial_and_seats() -> None:
    trial_end = CREATED_AT + timedelta(days=14)
    account = projected(record(status="trialing", trial_end=trial_end, quantity=5))

    assert account.trial_end == trial_end
    assert account.subscription_quantity == 5


def test_handled_event_types_are_those_of_the_design() -> None:
    assert set(HANDLED_EVENT_TYPES) == {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        # A change held until its payment went through (3-D Secure): applied, or dropped
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
        # lifecycle events: signals only
        "invoice.payment_failed",
        "invoice.paid",
        "invoice.payment_action_required",
        "customer.subscription.trial_will_end",
        # Stripe Entitlements: the customer's active features
        "entitlements.active_entitlement_summary.updated",
        # One-time purchases: a delayed payment's failure, refunds and disputes
        "checkout.session.async_payment_failed",
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
    }
    for event_type in (
        "invoice.finalized",
        "invoice.upcoming",
        "customer.created",
        "checkout.session.expired",
    ):
        assert not is_handled(event_type)
