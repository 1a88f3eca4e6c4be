"""Purchase events delivered at the same moment on several workers (threads, each its own
connection, PostgreSQL): the same first event twice makes one purchase and one
``purchase_completed``; different events of one purchase racing each other end exactly
as delivering them one by one, in order, does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Host, build_host
from purchase_support import (
    CONFIG,
    PI,
    charge_refunded_event,
    dispute_event,
    refund_event,
    session_event,
)
from support import NOW, post_event
from test_thin_concurrency import together

from flask_stripe_billing.testing import record_signals

pytestmark = pytest.mark.postgres

#: Times the racing deliveries are repeated, so that different interleavings are met.
ROUNDS = 5


@pytest.fixture(scope="module")
def race_host() -> Iterator[Host]:
    host = build_host(CONFIG)
    yield host
    host.drop()


def reset(host: Host) -> None:
    """No events, no purchases, and user 1 (customer ``cus_test``)."""
    host.start_over("stripe_billing_purchases")


def purchase_rows(host: Host) -> list[dict[str, Any]]:
    """The purchase table's rows as stored, without their write time."""
    with host.app.app_context():
        table = host.db.metadata.tables["stripe_billing_purchases"]
        rows = host.db.session.execute(sa.select(table).order_by(table.c.id))
        return [{k: v for k, v in row._mapping.items() if k != "updated_at"} for row in rows]


def outcome(host: Host) -> tuple[Any, ...]:
    """What the deliveries left: the purchase rows and the account's purchased features."""
    with host.app.app_context():
        features = host.billing.account(1).purchased_features
    return purchase_rows(host), features


def delivering(host: Host, event: dict[str, Any]) -> Callable[[], Any]:
    """A delivery of ``event`` on its own test client (its own request, its own connection)."""
    return lambda: post_event(host.app.test_client(), event)


@pytest.mark.parametrize("layout", ["2020", "dahlia"])
@pytest.mark.parametrize("workers", [2, 8])
def test_the_first_purchase_event_delivered_at_once_makes_one_purchase_and_one_signal(
    race_host: Host, workers: int, layout: str
) -> None:
    event = session_event(layout=layout, product="lifetime", quantity=1, created=NOW)
    for _ in range(ROUNDS):
        reset(race_host)
        with record_signals() as sent:
            codes = together([delivering(race_host, event)] * workers)

        assert codes == [200] * workers
        [row] = purchase_rows(race_host)
        assert (row["id"], row["user_id"], row["product"], row["status"]) == (
            PI,
            "1",
            "lifetime",
            "paid",
        )
        [logged] = race_host.events()
        assert (logged["id"], logged["status"]) == (event["id"], "processed")
        [completed] = sent["purchase_completed"]
        assert (completed["user_id"], completed["purchase"].id) == ("1", PI)
        with race_host.app.app_context():
            assert race_host.billing.has_purchased(1, "lifetime")


#: Histories of one purchase, oldest first; the races deliver them all at once.
HISTORIES: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "completed and a refund": lambda: [
        session_event(created=NOW - 100),
        refund_event("refund.created", amount=1000, created=NOW - 50),
    ],
    "completed and charge.refunded": lambda: [
        session_event(created=NOW - 100),
        charge_refunded_event(amount_refunded=3000, created=NOW - 50),
    ],
    "completed, refunds, a lost dispute": lambda: [
        session_event(created=NOW - 100),
        refund_event("refund.created", amount=1000, status="pending", created=NOW - 80),
        refund_event("refund.updated", amount=1000, created=NOW - 70, refund_created=NOW - 80),
        charge_refunded_event(amount_refunded=1000, created=NOW - 69),
        dispute_event("charge.dispute.created", created=NOW - 40),
        dispute_event("charge.dispute.closed", status="lost", created=NOW - 10),
    ],
}


@pytest.mark.parametrize("history", list(HISTORIES))
def test_a_refund_racing_the_completed_event_ends_as_in_order_delivery(
    race_host: Host, history: str
) -> None:
    events = HISTORIES[history]()
    reset(race_host)
    for event in events:
        assert post_event(race_host.client, event).status_code == 200
    in_order = outcome(race_host)
    [row] = in_order[0]
    assert row["status"] in ("partially_refunded", "refunded")

    for _ in range(ROUNDS):
        reset(race_host)
        with record_signals() as sent:
            # every event at once, each delivered twice (Stripe's retries, two workers)
            codes = together([delivering(race_host, event) for event in events * 2])

        assert codes == [200] * (2 * len(events))
        assert outcome(race_host) == in_order
        logged = {row["id"]: row["status"] for row in race_host.events()}
        assert sorted(logged) == sorted(event["id"] for event in events)
        assert set(logged.values()) <= {"processed", "stale"}  # stale: a dispute's older word
        assert len(sent["purchase_completed"]) == 1
        # each refunded amount told once, whichever event said it first
        told = sum(call["refunded_now"] for call in sent["purchase_refunded"])
        assert told == row["amount_refunded"]
        disputes = [call["dispute_status"] for call in sent["purchase_disputed"]]
        assert (row["dispute_status"] in disputes) == (row["dispute_status"] is not None)
