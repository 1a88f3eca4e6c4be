"""The blinker signals a host app receives for webhook events, and their arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import Host
from support import NOW, fixture_event, post_event, subscription_event

from flask_stripe_billing import BillingAccount, StripeEvent

T0 = NOW - 3600


def deliver(host: Host, event: dict[str, Any]) -> None:
    response = post_event(host.client, event)
    assert response.status_code == 200
    assert response.get_json() == {"received": True}


def test_plan_changed_is_sent_by_the_app_with_plans_account_and_event(
    host: Host, received: Any
) -> None:
    deliver(host, subscription_event(status="active", event_id="evt_upgrade"))

    [call] = received["plan_changed"]
    assert set(call) == {"sender", "user_id", "old_plan", "new_plan", "account", "event"}
    assert call["sender"] is host.app
    assert (call["user_id"], call["old_plan"], call["new_plan"]) == ("1", "free", "pro")
    account = call["account"]
    assert isinstance(account, BillingAccount)
    assert (account.user_id, account.plan, account.subscription_status) == ("1", "pro", "active")
    assert (account.stripe_customer_id, account.stripe_subscription_id) == ("cus_test", "sub_test")
    assert isinstance(call["event"], StripeEvent)
    assert (call["event"].id, call["event"].type) == (
        "evt_upgrade",
        "customer.subscription.updated",
    )
    with host.app.app_context():
        assert account == host.billing.user_store.get("1")
    assert host.user(1).plan == "pro"


def test_subscription_status_changed_carries_old_and_new_status(host: Host, received: Any) -> None:
    deliver(host, subscription_event(status="trialing", event_id="evt_trial", created=T0))

    [call] = received["subscription_status_changed"]
    assert call["sender"] is host.app
    assert (call["user_id"], call["old_status"], call["new_status"]) == ("1", None, "trialing")
    assert call["account"].subscription_status == "trialing"
    assert call["event"].id == "evt_trial"
    assert host.user(1).stripe_subscription_status == "trialing"


def test_status_only_change_sends_no_plan_changed(host: Host, received: Any) -> None:
    deliver(host, subscription_event(status="active", event_id="evt_active", created=T0))
    received.clear()

    deliver(host, subscription_event(status="past_due", event_id="evt_past_due", created=T0 + 10))

    assert set(received) == {"webhook_received", "subscription_status_changed"}
    [call] = received["subscription_status_changed"]
    assert (call["old_status"], call["new_status"]) == ("active", "past_due")
    assert call["account"].plan == "pro"
    assert call["event"].id == "evt_past_due"
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "past_due")


def test_customer_not_found_names_the_customer(host: Host, received: Any) -> None:
    deliver(host, subscription_event(customer="cus_nobody", event_id="evt_nobody"))

    assert set(received) == {"webhook_received", "customer_not_found"}
    [call] = received["customer_not_found"]
    assert call["sender"] is host.app
    assert call["customer_id"] == "cus_nobody"
    assert call["reason"] == "no account is linked to customer cus_nobody"
    assert call["event"].id == "evt_nobody"
    assert [(row["id"], row["status"]) for row in host.events()] == [("evt_nobody", "unmatched")]
    assert host.user(1).plan == "free"


def test_duplicate_sends_nothing_but_webhook_received(host: Host, received: Any) -> None:
    event = subscription_event(status="active", event_id="evt_twice")
    deliver(host, event)
    received.clear()

    deliver(host, event)

    assert set(received) == {"webhook_received"}
    [call] = received["webhook_received"]
    assert (call["sender"], call["status"], call["event"].id) == (
        host.app,
        "duplicate",
        "evt_twice",
    )
    assert host.user(1).plan == "pro"


def deliver_processed(host: Host, monkeypatch: Any) -> str:
    deliver(host, subscription_event(event_id="evt_status"))
    return "processed"


def deliver_duplicate(host: Host, monkeypatch: Any) -> str:
    event = subscription_event(event_id="evt_status")
    deliver(host, event)
    deliver(host, event)
    return "processed"


def deliver_ignored(host: Host, monkeypatch: Any) -> str:
    invoice = fixture_event(
        "events/stripe-ruby-mock__invoice.payment_failed.json",
        id="evt_status",
        type="invoice.upcoming",
    )
    deliver(host, invoice)  # a type this package does not handle
    return "ignored"


def deliver_stale(host: Host, monkeypatch: Any) -> str:
    deliver(host, subscription_event(event_id="evt_newer", created=T0 + 10))
    deliver(host, subscription_event(status="past_due", event_id="evt_status", created=T0))
    return "stale"


def deliver_unmatched(host: Host, monkeypatch: Any) -> str:
    deliver(host, subscription_event(customer="cus_nobody", event_id="evt_status"))
    return "unmatched"


def deliver_failed(host: Host, monkeypatch: Any) -> str:
    def broken_decide(*args: Any) -> None:
        raise RuntimeError("handler bug")

    monkeypatch.setattr("flask_stripe_billing.core.rules.decide", broken_decide)
    deliver(host, subscription_event(event_id="evt_status"))
    return "failed"


STATUS_SCENARIOS = [
    (deliver_processed, "processed"),
    (deliver_duplicate, "duplicate"),
    (deliver_ignored, "ignored"),
    (deliver_stale, "stale"),
    (deliver_unmatched, "unmatched"),
    (deliver_failed, "failed"),
]


@pytest.mark.parametrize(
    ("scenario", "status"), STATUS_SCENARIOS, ids=[status for _, status in STATUS_SCENARIOS]
)
def test_webhook_received_is_sent_for_every_verified_event_with_its_status(
    host: Host,
    received: Any,
    monkeypatch: Any,
    scenario: Callable[[Host, Any], str],
    status: str,
) -> None:
    stored_status = scenario(host, monkeypatch)

    last = received["webhook_received"][-1]
    assert last["sender"] is host.app
    assert (last["event"].id, last["status"]) == ("evt_status", status)
    rows = {row["id"]: row["status"] for row in host.events()}
    assert rows["evt_status"] == stored_status


def test_unverified_event_sends_no_signal(host: Host, received: Any) -> None:
    response = post_event(host.client, subscription_event(), secret="whsec_wrong")

    assert response.status_code == 400
    assert received == {}
    assert host.events() == []
    assert host.user(1).plan == "free"
