"""``flask billing trigger`` for one-time purchases: a payment-mode session, then the
refund and the dispute of the user's newest purchase, through the app's own webhook."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Host
from purchase_support import CONFIG

from flask_stripe_billing import PurchaseRecord
from flask_stripe_billing.testing import build_event, post_stripe_event


@pytest.fixture
def shop(make_host: Callable[..., Host]) -> Host:
    host = make_host(CONFIG)
    host.add_user(1, stripe_customer_id="cus_test")
    return host


def trigger(host: Host, *args: str) -> Any:
    return host.app.test_cli_runner().invoke(args=["billing", "trigger", *args])


def purchases(host: Host) -> list[PurchaseRecord]:
    with host.app.app_context():
        return host.billing.purchases(1)


def test_trigger_a_purchase_then_its_refund_and_a_lost_dispute(shop: Host) -> None:
    bought = trigger(
        shop,
        "checkout.session.completed",
        "--mode", "payment", "--product", "lifetime", "--amount", "4900", "--user", "1",
    )  # fmt: skip

    assert bought.exit_code == 0, bought.output
    [purchase] = purchases(shop)
    assert (purchase.product, purchase.amount, purchase.status) == ("lifetime", 4900, "paid")
    assert purchase.id.startswith("pi_test_")
    lines = bought.output.splitlines()
    assert f"payment_intent {purchase.id}" in lines[0]
    assert "product lifetime, quantity 1, amount 4900, user 1" in lines[0]
    assert lines[2] == "  event log: processed"
    assert lines[-1] == (
        f"  purchase: {purchase.id}: lifetime x1, paid, 4900 usd, refunded 0, dispute none"
    )

    refunded = trigger(shop, "refund.updated", "--user", "1", "--refund-amount", "900")
    assert refunded.exit_code == 0, refunded.output
    assert "refund.updated evt_test_" in refunded.output
    assert f"payment_intent {purchase.id}, amount 900, status succeeded" in refunded.output
    assert refunded.output.splitlines()[-1] == (
        f"  purchase: {purchase.id}: lifetime x1, partially_refunded, 4900 usd, refunded 900,"
        " dispute none"
    )

    disputed = trigger(shop, "charge.dispute.closed", "--user", "1")
    assert disputed.exit_code == 0, disputed.output
    assert "amount 4900, status lost" in disputed.output
    [purchase] = purchases(shop)
    assert (purchase.dispute_status, purchase.grants()) == ("lost", False)


def test_trigger_charge_refunded_refunds_the_whole_newest_purchase(shop: Host) -> None:
    older = build_event(
        "checkout.session.completed",
        mode="payment",
        product="credits_100",
        user_id=1,
        payment_intent="pi_older",
        created=int(time.time()) - 3600,
    )
    assert post_stripe_event(shop.client, older).status_code == 200
    args = ["--mode", "payment", "--product", "lifetime", "--user", "1"]
    assert trigger(shop, "checkout.session.completed", *args).exit_code == 0

    result = trigger(shop, "charge.refunded", "--user", "1", "--legacy-layout")

    assert result.exit_code == 0, result.output
    by_product = {p.product: p for p in purchases(shop)}
    assert (by_product["lifetime"].status, by_product["credits_100"].status) == (
        "refunded",
        "paid",
    )


def test_trigger_a_payment_mode_session_defaults_to_the_first_configured_product(
    shop: Host,
) -> None:
    result = trigger(shop, "checkout.session.completed", "--mode", "payment", "--user", "1")

    assert result.exit_code == 0, result.output
    assert [p.product for p in purchases(shop)] == ["credits_100"]


def test_trigger_a_refund_of_a_payment_nobody_has_is_kept_until_its_session(shop: Host) -> None:
    result = trigger(shop, "refund.created", "--payment-intent", "pi_elsewhere")

    assert result.exit_code == 0, result.output
    assert "payment_intent pi_elsewhere, amount 1500, status succeeded" in result.output
    assert result.output.splitlines()[-1] == (
        "  purchase: pi_elsewhere: no Checkout session of it yet; kept: refunded 1500, dispute none"
    )
    assert purchases(shop) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["customer.subscription.created", "--mode", "payment"], "--mode payment is a one-time"),
        (["invoice.paid", "--product", "lifetime"], "--product is a one-time purchase's"),
        (["customer.subscription.updated", "--payment-intent", "pi_x"], "--payment-intent is"),
        (["charge.refunded", "--amount", "500", "--refund-amount", "600"], "between 1 and"),
        (["charge.refunded", "--status", "lost"], "status is a refund's or a dispute's"),
        (["refund.created", "--quantity", "0"], "0 is not in the range x>=1"),
    ],
)
def test_trigger_refuses_a_purchase_option_that_does_not_fit(
    shop: Host, args: list[str], message: str
) -> None:
    result = trigger(shop, *args)

    assert result.exit_code == 2
    assert message in result.output
    assert shop.events() == []
