"""Lifecycle events (invoice paid / failed / action required, trial ends soon): recorded,
matched to the account by customer, no change to it, one signal per event id."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import Host
from support import NOW, envelope, load, load_object, post_event, subscription_event

from flask_stripe_billing import BillingAccount, SubscriptionRecord, signals
from flask_stripe_billing.config import Settings
from flask_stripe_billing.core.events import parse_event
from flask_stripe_billing.core.rules import AccountMatch, decide
from flask_stripe_billing.testing import SignalRecorder, build_event, record_signals

RUBY_MOCK_INVOICE = "events/stripe-ruby-mock__invoice.payment_failed.json"
BASIL_INVOICE = "events/pay-rails__invoice.payment_failed.DATA_ONLY.json"
DAHLIA_INVOICE = (
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__"
    "invoice.paid.subscription_create.connect_direct.json"
)
DAHLIA_TRIAL = "api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json"
RUBY_MOCK_SUBSCRIPTION = "events/stripe-ruby-mock__customer.subscription.created.json"
LIFECYCLE_SIGNALS = ("payment_failed", "payment_succeeded", "payment_action_required")
LIFECYCLE_SIGNALS += ("trial_will_end",)


_ids = itertools.count(1)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def legacy_invoice(event_type: str, **fields: Any) -> dict[str, Any]:
    """stripe-ruby-mock's invoice event (API 2020-08-27) for ``cus_test``, as ``event_type``."""
    event = load(RUBY_MOCK_INVOICE)
    event.update(id=f"evt_invoice_{next(_ids)}", type=event_type, created=NOW)
    event["data"]["object"].update(customer="cus_test", subscription="sub_old", **fields)
    return event


def current_invoice(event_type: str, fixture: str, **fields: Any) -> dict[str, Any]:
    """A current-layout invoice (subscription in ``parent``) for ``cus_test``."""
    obj = load_object(fixture)
    obj.update(customer="cus_test", **fields)
    return envelope(event_type, obj, created=NOW, api_version="2026-03-25.dahlia")


def post(host: Host, event: dict[str, Any]) -> tuple[int, SignalRecorder]:
    with record_signals() as recorded:
        response = post_event(host.client, event)
    return response.status_code, recorded


def row(host: Host, event_id: str) -> dict[str, Any]:
    (found,) = [r for r in host.events() if r["id"] == event_id]
    return found


def without_event_and_account(call: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in call.items() if k not in ("event", "account", "sender")}


# each signal with its arguments, from real payloads of both layouts


CASES = [
    pytest.param(
        legacy_invoice("invoice.payment_failed"),
        "payment_failed",
        {
            "user_id": "1",
            "amount_due": 2000,
            "currency": "usd",
            "attempt_count": 1,
            "next_payment_attempt": None,
            "hosted_invoice_url": load(RUBY_MOCK_INVOICE)["data"]["object"]["hosted_invoice_url"],
            "invoice_id": "in_000000000000000000000000",
            "subscription_id": "sub_old",
        },
        id="payment_failed-2020",
    ),
    pytest.param(
        current_invoice("invoice.payment_failed", BASIL_INVOICE),
        "payment_failed",
        {
            "user_id": "1",
            "amount_due": 24900,
            "currency": "usd",
            "attempt_count": 1,
            "next_payment_attempt": at(1745552783),
            "hosted_invoice_url": "https://invoice.stripe.com/",
            "invoice_id": "in_1234",
            "subscription_id": "sub_1234",
        },
        id="payment_failed-basil",
    ),
    pytest.param(
        legacy_invoice("invoice.paid", status="paid", amount_paid=2000, paid=True),
        "payment_succeeded",
        {
            "user_id": "1",
            "amount_paid": 2000,
            "currency": "usd",
            "hosted_invoice_url": load(RUBY_MOCK_INVOICE)["data"]["object"]["hosted_invoice_url"],
            "invoice_pdf": load(RUBY_MOCK_INVOICE)["data"]["object"]["invoice_pdf"],
            "invoice_id": "in_000000000000000000000000",
            "subscription_id": "sub_old",
        },
        id="payment_succeeded-2020",
    ),
    pytest.param(
        current_invoice("invoice.paid", DAHLIA_INVOICE),
        "payment_succeeded",
        {
            "user_id": "1",
            "amount_paid": 1000,
            "currency": "usd",
            "hosted_invoice_url": load(DAHLIA_INVOICE)["hosted_invoice_url"],
            "invoice_pdf": load(DAHLIA_INVOICE)["invoice_pdf"],
            "invoice_id": "in_1TGnErQK2ZHS99Rk4nuhpuoB",
            "subscription_id": "sub_1TGnErQK2ZHS99RkHpVN5MOi",
        },
        id="payment_succeeded-dahlia",
    ),
    pytest.param(
        legacy_invoice("invoice.payment_action_required"),
        "payment_action_required",
        {
            "user_id": "1",
            "hosted_invoice_url": load(RUBY_MOCK_INVOICE)["data"]["object"]["hosted_invoice_url"],
            "invoice_id": "in_000000000000000000000000",
        },
        id="payment_action_required-2020",
    ),
    pytest.param(
        current_invoice("invoice.payment_action_required", BASIL_INVOICE),
        "payment_action_required",
        {
            "user_id": "1",
            "hosted_invoice_url": "https://invoice.stripe.com/",
            "invoice_id": "in_1234",
        },
        id="payment_action_required-basil",
    ),
    pytest.param(
        envelope(
            "customer.subscription.trial_will_end",
            load_object(DAHLIA_TRIAL) | {"customer": "cus_test"},
            created=NOW,
            api_version="2026-03-25.dahlia",
        ),
        "trial_will_end",
        {
            "user_id": "1",
            "subscription_id": "sub_1TGnFJKXBGcbgpbZqZC2HAM0",
            "trial_end": at(1776201677),
        },
        id="trial_will_end-dahlia",
    ),
    pytest.param(
        envelope(
            "customer.subscription.trial_will_end",
            load_object(RUBY_MOCK_SUBSCRIPTION)
            | {"customer": "cus_test", "status": "trialing", "trial_end": 1650998510},
            created=NOW,
        ),
        "trial_will_end",
        {
            "user_id": "1",
            "subscription_id": "sub_000000000000000000000000",
            "trial_end": at(1650998510),
        },
        id="trial_will_end-2020",
    ),
]


@pytest.mark.parametrize(("event", "signal", "expected"), CASES)
def test_a_lifecycle_event_sends_its_signal_with_its_facts_and_changes_nothing(
    host: Host, event: dict[str, Any], signal: str, expected: dict[str, Any]
) -> None:
    before = host.user(1)

    status, recorded = post(host, event)

    assert status == 200
    stored = row(host, event["id"])
    assert (stored["status"], stored["user_id"]) == ("processed", "1")
    (call,) = recorded[signal]
    assert without_event_and_account(call) == expected
    assert call["sender"] is host.app
    assert call["event"].id == event["id"]
    assert call["account"].user_id == "1"
    assert call["account"].stripe_customer_id == "cus_test"
    for other in LIFECYCLE_SIGNALS:
        assert len(recorded[other]) == (other == signal)
    assert [c["status"] for c in recorded["webhook_received"]] == ["processed"]
    assert recorded["plan_changed"] == recorded["subscription_status_changed"] == []
    after = host.user(1)
    assert (after.plan, after.stripe_subscription_id, after.updated_at) == (
        before.plan,
        before.stripe_subscription_id,
        None,
    )
    assert host.subscriptions() == []


@pytest.mark.parametrize("layout", ["current", "legacy"])
@pytest.mark.parametrize(
    ("event_type", "signal"),
    [
        ("invoice.payment_failed", "payment_failed"),
        ("invoice.paid", "payment_succeeded"),
        ("invoice.payment_action_required", "payment_action_required"),
        ("customer.subscription.trial_will_end", "trial_will_end"),
    ],
)
def test_built_test_events_of_both_layouts_send_their_signal(
    host: Host, layout: Any, event_type: str, signal: str
) -> None:
    event = build_event(event_type, subscription="sub_built", api_layout=layout)

    status, recorded = post(host, event)

    assert status == 200
    assert row(host, event["id"])["status"] == "processed"
    (call,) = recorded[signal]
    assert call["user_id"] == "1"
    assert call.get("subscription_id", "sub_built") == "sub_built"


# once per event id


def test_a_duplicate_delivery_sends_nothing_again(host: Host) -> None:
    event = legacy_invoice("invoice.payment_failed")

    first_status, first = post(host, event)
    second_status, second = post(host, event)

    assert (first_status, second_status) == (200, 200)
    assert len(first["payment_failed"]) == 1
    assert second["payment_failed"] == []
    assert [c["status"] for c in second["webhook_received"]] == ["duplicate"]
    assert row(host, event["id"])["status"] == "processed"


def test_two_events_of_one_invoice_send_two_signals(host: Host) -> None:
    """Once per event id, not per invoice: Stripe's second failed attempt is news."""
    first = legacy_invoice("invoice.payment_failed")
    second = legacy_invoice("invoice.payment_failed", attempt_count=2)

    _, one = post(host, first)
    _, two = post(host, second)

    assert [c["attempt_count"] for c in one["payment_failed"] + two["payment_failed"]] == [1, 2]


# no account


def test_an_unknown_customer_gets_no_signal_but_customer_not_found(host: Host) -> None:
    event = legacy_invoice("invoice.payment_failed")
    event["data"]["object"]["customer"] = "cus_nobody"

    status, recorded = post(host, event)

    assert status == 200
    assert recorded["payment_failed"] == []
    (missing,) = recorded["customer_not_found"]
    assert missing["customer_id"] == "cus_nobody"
    assert missing["reason"] == "no account is linked to customer cus_nobody"
    assert row(host, event["id"])["status"] == "unmatched"


def test_an_unmatched_lifecycle_event_sends_its_signal_once_replayed_after_linking(
    host: Host,
) -> None:
    event = legacy_invoice("invoice.payment_failed")
    event["data"]["object"]["customer"] = "cus_later"
    post(host, event)
    host.add_user(2, stripe_customer_id="cus_later")

    with host.app.app_context(), record_signals() as recorded:
        outcome = host.billing.process_event(event["id"])
        again = host.billing.process_event(event["id"])

    assert (outcome.status, again.status) == ("processed", "duplicate")
    (call,) = recorded["payment_failed"]
    assert call["user_id"] == "2"


def test_a_lifecycle_event_never_links_the_account_it_names(host: Host) -> None:
    """Only subscription and Checkout events link a customer; a trial notice waits."""
    host.add_user(3)
    obj = load_object(DAHLIA_TRIAL) | {"customer": "cus_new", "metadata": {"user_id": "3"}}
    event = envelope("customer.subscription.trial_will_end", obj, created=NOW)

    _, recorded = post(host, event)

    assert recorded["trial_will_end"] == []
    assert len(recorded["customer_not_found"]) == 1
    assert row(host, event["id"])["status"] == "unmatched"
    assert host.user(3).stripe_customer_id is None


# receivers and watermarks


def test_a_failing_receiver_is_logged_and_the_webhook_still_succeeds(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("mail server down")

    signals.payment_failed.connect(broken)
    try:
        status, recorded = post(host, legacy_invoice("invoice.payment_failed"))
    finally:
        signals.payment_failed.disconnect(broken)

    assert status == 200
    assert len(recorded["payment_failed"]) == 1  # the other receiver still ran
    assert host.events()[0]["status"] == "processed"
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage().splitlines()[0] for r in failures] == [
        "Receiver of signal 'payment-failed' raised"
    ]
    assert "mail server down" in failures[0].getMessage()


def test_a_lifecycle_event_leaves_its_subscriptions_watermark_alone(host: Host) -> None:
    post(host, subscription_event(status="trialing", event_id="evt_first", created=NOW - 100))
    watermark = host.subscription("sub_test")["last_event_at"]
    trial = subscription_event(
        "customer.subscription.trial_will_end", status="trialing", created=NOW
    )
    invoice = legacy_invoice("invoice.payment_failed")
    invoice["data"]["object"]["subscription"] = "sub_test"

    _, trial_signals = post(host, trial)
    _, invoice_signals = post(host, invoice)

    assert len(trial_signals["trial_will_end"]) == len(invoice_signals["payment_failed"]) == 1
    assert host.subscription("sub_test")["last_event_at"] == watermark
    # A subscription event older than the notices still applies: they set no watermark.
    later = subscription_event(status="active", event_id="evt_later", created=NOW - 50)
    post(host, later)
    assert row(host, "evt_later")["status"] == "processed"
    assert host.user(1).stripe_subscription_status == "active"


def test_a_lifecycle_event_older_than_its_subscriptions_watermark_is_not_stale() -> None:
    """Signals are about their own event; a newer subscription event does not hide them."""
    event = parse_event(
        subscription_event("customer.subscription.trial_will_end", status="trialing", created=NOW)
    )
    account = BillingAccount(user_id="1", stripe_customer_id="cus_test", plan="pro")
    newer = SubscriptionRecord(
        id="sub_test",
        user_id="1",
        customer_id="cus_test",
        status="trialing",
        price_ids=("price_test",),
        plan="pro",
        quantity=1,
        trial_end=at(NOW + 86400),
        current_period_end=at(NOW + 86400),
        cancel_at_period_end=False,
        cancel_at=None,
        ended_at=None,
        created=at(NOW - 600),
        last_event_at=at(NOW + 100),
    )
    match = AccountMatch(account, by_customer=True)

    decision = decide(event, match, (newer,), Settings(), at(NOW))

    assert decision.status == "processed"
    assert decision.records == ()
    assert decision.account_changes == {}
    (notice,) = decision.notices
    assert notice.signal == "trial_will_end"
    assert notice.kwargs["subscription_id"] == "sub_test"
    assert notice.kwargs["account"] is account
