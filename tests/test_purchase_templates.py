"""``build_event`` for one-time purchases: a payment-mode session, its charge's refunds and
its dispute, in both layouts, applied by the webhook as Stripe's own events are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import Host
from purchase_support import CONFIG
from support import NOW

from flask_stripe_billing.testing import build_event, post_stripe_event, record_signals

LAYOUTS = ("current", "legacy")


@pytest.fixture
def host(make_host: Callable[..., Host]) -> Host:
    made = make_host(CONFIG)
    made.add_user(1, stripe_customer_id="cus_test")
    return made


def post(host: Host, event: dict[str, Any]) -> str:
    """POST the event; it is answered 200; its status in the event log."""
    assert post_stripe_event(host.client, event).status_code == 200
    [row] = [row for row in host.events() if row["id"] == event["id"]]
    return str(row["status"])


def the_purchase(host: Host) -> Any:
    with host.app.app_context():
        (purchase,) = host.billing.purchases(1)
        return purchase


@pytest.mark.parametrize("layout", LAYOUTS)
def test_built_purchase_events_buy_refund_and_dispute_through_the_webhook(
    host: Host, layout: Any
) -> None:
    bought = build_event(
        "checkout.session.completed",
        mode="payment",
        product="lifetime",
        amount=3000,
        user_id=1,
        api_layout=layout,
        created=NOW - 100,
    )
    with record_signals() as sent:
        assert post(host, bought) == "processed"
        purchase = the_purchase(host)
        assert (purchase.id, purchase.user_id, purchase.product, purchase.quantity) == (
            "pi_test",
            "1",
            "lifetime",
            1,
        )
        assert (purchase.amount, purchase.status) == (3000, "paid")
        with host.app.app_context():
            assert host.billing.has_purchased(1, "lifetime")

        refund = build_event(
            "refund.updated", refund_amount=1000, api_layout=layout, created=NOW - 50
        )
        assert post(host, refund) == "processed"
        assert (the_purchase(host).status, the_purchase(host).amount_refunded) == (
            "partially_refunded",
            1000,
        )
        charge = build_event(
            "charge.refunded", amount=3000, refund_amount=1000, api_layout=layout, created=NOW - 49
        )
        assert post(host, charge) == "processed"
        assert the_purchase(host).amount_refunded == 1000  # the same refund, counted once

        opened = build_event("charge.dispute.created", api_layout=layout, created=NOW - 20)
        assert post(host, opened) == "processed"
        assert the_purchase(host).dispute_status == "needs_response"
        closed = build_event("charge.dispute.closed", api_layout=layout, created=NOW - 10)
        assert post(host, closed) == "processed"

    purchase = the_purchase(host)
    assert (purchase.status, purchase.dispute_status, purchase.grants()) == (
        "partially_refunded",
        "lost",
        False,
    )
    with host.app.app_context():
        assert not host.billing.has_purchased(1, "lifetime")
    assert len(sent["purchase_completed"]) == 1
    assert [c["refunded_now"] for c in sent["purchase_refunded"]] == [1000]
    disputes = [(c["old_dispute_status"], c["dispute_status"]) for c in sent["purchase_disputed"]]
    assert disputes == [(None, "needs_response"), ("needs_response", "lost")]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_built_delayed_payment_is_pending_then_paid(host: Host, layout: Any) -> None:
    kwargs: dict[str, Any] = {"mode": "payment", "product": "credits_100", "quantity": 3}
    pending = build_event(
        "checkout.session.completed",
        payment_status="unpaid",
        user_id=1,
        api_layout=layout,
        created=NOW - 100,
        **kwargs,
    )
    assert post(host, pending) == "processed"
    assert (the_purchase(host).status, the_purchase(host).quantity) == ("pending", 3)

    paid = build_event(
        "checkout.session.async_payment_succeeded",
        user_id=1,
        api_layout=layout,
        created=NOW - 50,
        **kwargs,
    )
    assert post(host, paid) == "processed"
    assert the_purchase(host).status == "paid"


def test_a_built_full_refund_takes_the_purchase_back(host: Host) -> None:
    post(host, build_event("checkout.session.completed", mode="payment", product="lifetime",
                           user_id=1, created=NOW - 100))  # fmt: skip
    post(host, build_event("charge.refunded", created=NOW - 50))

    purchase = the_purchase(host)
    assert (purchase.status, purchase.amount_refunded) == ("refunded", purchase.amount)
    assert not purchase.grants()


def test_a_built_failed_refund_gives_nothing_back(host: Host) -> None:
    post(host, build_event("checkout.session.completed", mode="payment", product="lifetime",
                           user_id=1, created=NOW - 100))  # fmt: skip
    post(host, build_event("refund.created", status="pending", created=NOW - 50))
    post(host, build_event("refund.failed", created=NOW - 40))

    assert (the_purchase(host).status, the_purchase(host).amount_refunded) == ("paid", 0)


@pytest.mark.parametrize(
    ("event_type", "options", "message"),
    [
        ("customer.subscription.created", {"mode": "payment"}, "mode is a Checkout session's"),
        ("checkout.session.completed", {"mode": "gift"}, "mode must be one of"),
        ("checkout.session.completed", {"product": "lifetime"}, "product is a one-time"),
        ("invoice.paid", {"refund_amount": 10}, "refund_amount is a one-time"),
        ("charge.refunded", {"status": "lost"}, "status is a refund's or a dispute's"),
        ("charge.refunded", {"amount": 500, "refund_amount": 600}, "between 1 and the amount"),
        ("refund.created", {"amount": 0}, "amount must be at least 1"),
        ("refund.created", {"payment_status": "paid"}, "payment_status is a Checkout"),
        ("checkout.session.completed", {"mode": "payment", "quantity": 0}, "quantity must be"),
        (
            "checkout.session.completed",
            {"mode": "payment", "status": "paid"},
            "give payment_status",
        ),
    ],
)
def test_build_event_refuses_an_option_a_purchase_event_does_not_have(
    event_type: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_event(event_type, **options)
