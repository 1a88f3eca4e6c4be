"""A purchase's whole history in the payload shapes of old and new API versions: each
payment-mode session layout (2020-08-27, 2026-03-25 "dahlia") with each charge layout
(refunds as a plain list, as a list object, not listed), refund layout (2020-08-27,
dahlia) and dispute layout (2018-01-23, dahlia), delivered in order and backwards,
ends the same purchase."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Host
from purchase_support import (
    CHARGE_LAYOUTS,
    CONFIG,
    DISPUTE_LAYOUTS,
    PI,
    REFUND_LAYOUTS,
    SESSION_LAYOUTS,
    charge_refunded_event,
    dispute_event,
    refund_event,
    session_event,
)
from support import NOW, post_event

from flask_stripe_billing.testing import record_signals

REFUND = "re_3PurchaseTest000001"
LAYOUTS = list(itertools.product(SESSION_LAYOUTS, CHARGE_LAYOUTS, REFUND_LAYOUTS, DISPUTE_LAYOUTS))


@pytest.fixture
def host(make_host: Callable[..., Host]) -> Host:
    made = make_host(CONFIG)
    made.add_user(1, stripe_customer_id="cus_test")
    return made


def history(session: str, charge: str, refund: str, dispute: str) -> list[dict[str, Any]]:
    """Paid, a 1000 refund (pending, then succeeded) the charge then counts, a dispute
    opened and lost; oldest first. The oldest charge layout lists its refunds without
    ids, so no refund event of its own goes with it (the charge says the refund)."""
    events = [session_event(layout=session, product="lifetime", quantity=1, created=NOW - 100)]
    if charge != "old":
        events += [
            refund_event(
                "refund.created",
                refund_id=REFUND,
                status="pending",
                layout=refund,
                refund_created=NOW - 80,
                created=NOW - 80,
            ),
            refund_event(
                "refund.updated",
                refund_id=REFUND,
                layout=refund,
                refund_created=NOW - 80,
                created=NOW - 70,
            ),
        ]
    events += [
        charge_refunded_event(
            amount_refunded=1000, layout=charge, refund_id=REFUND, created=NOW - 69
        ),
        dispute_event("charge.dispute.created", layout=dispute, created=NOW - 40),
        dispute_event("charge.dispute.closed", status="lost", layout=dispute, created=NOW - 10),
    ]
    return events


def the_purchase(host: Host) -> Any:
    with host.app.app_context():
        (purchase,) = host.billing.purchases(1)
        return purchase


@pytest.mark.parametrize(("session", "charge", "refund", "dispute"), LAYOUTS)
def test_a_purchase_history_in_every_api_layout_ends_the_same(
    host: Host, session: str, charge: str, refund: str, dispute: str
) -> None:
    events = history(session, charge, refund, dispute)
    ends = []
    for order in (events, events[::-1]):
        with host.app.app_context():
            host.db.session.execute(host.db.metadata.tables["stripe_billing_purchases"].delete())
            host.db.session.execute(host.db.metadata.tables["stripe_billing_events"].delete())
            host.db.session.commit()
        with record_signals() as sent:
            for event in order:
                assert post_event(host.client, event).status_code == 200
        statuses = {row["status"] for row in host.events()}
        assert statuses <= {"processed", "stale"}, host.events()
        purchase = the_purchase(host)
        ends.append(
            (
                purchase.id,
                purchase.user_id,
                purchase.product,
                purchase.amount,
                purchase.currency,
                purchase.status,
                purchase.amount_refunded,
                purchase.dispute_status,
                purchase.grants(),
            )
        )
        assert len(sent["purchase_completed"]) == 1
        assert sum(call["refunded_now"] for call in sent["purchase_refunded"]) == 1000

    assert ends[0] == ends[1] == (
        PI, "1", "lifetime", 3000, "usd", "partially_refunded", 1000, "lost", False
    )  # fmt: skip
