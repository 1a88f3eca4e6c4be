"""Order and duplicates do not matter for a purchase: purchase → refunds → dispute.

A purchase's history (its Checkout session, paid at once or later; up to two refunds,
pending then settled or failed, with the charge's ``charge.refunded`` totals; a dispute
opened, reviewed and closed), delivered in any order with any event repeated through the
real webhook route, must leave the purchase record (and the account) exactly as
delivering it once, in order, does; so must any prefix of it. Events follow one another
at least a second apart, as Stripe's do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ON_POSTGRES, Host, build_host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from purchase_support import (
    CONFIG,
    charge_refunded_event,
    dispute_event,
    refund_event,
    session_event,
)
from support import NOW, sign

T0 = NOW - 30 * 86400
EXAMPLES = 40 if ON_POSTGRES else 80
ORDER_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def histories(draw: Any) -> list[dict[str, Any]]:
    """A purchase's events, oldest first, as facts to build."""
    layout = draw(st.sampled_from(["2020", "dahlia"]), label="session layout")
    facts: list[dict[str, Any]] = []
    if draw(st.booleans(), label="delayed payment"):
        facts.append({"kind": "session", "type": "checkout.session.completed", "paid": False})
        facts.append(
            {"kind": "session", "type": "checkout.session.async_payment_succeeded", "paid": True}
        )
    else:
        facts.append({"kind": "session", "type": "checkout.session.completed", "paid": True})
    refunded = 0
    for number in range(draw(st.integers(min_value=0, max_value=2), label="refunds")):
        refund = f"re_order_{number}"
        amount = draw(st.sampled_from([500, 1000]))
        first = draw(st.sampled_from(["pending", "succeeded"]))
        facts.append({"kind": "refund", "type": "refund.created", "id": refund,
                      "amount": amount, "status": first})  # fmt: skip
        end = first
        if first == "pending":
            end = draw(st.sampled_from(["succeeded", "failed"]))
            settled = "refund.updated" if end == "succeeded" else "refund.failed"
            facts.append({"kind": "refund", "type": settled, "id": refund,
                          "amount": amount, "status": end})  # fmt: skip
        if end != "failed":
            refunded += amount
            if draw(st.booleans(), label="charge.refunded"):
                facts.append({"kind": "charge", "amount_refunded": refunded})
    if draw(st.booleans(), label="dispute"):
        facts.append({"kind": "dispute", "type": "charge.dispute.created",
                      "status": "needs_response"})  # fmt: skip
        if draw(st.booleans()):
            facts.append({"kind": "dispute", "type": "charge.dispute.updated",
                          "status": "under_review"})  # fmt: skip
        if draw(st.booleans()):
            facts.append({"kind": "dispute", "type": "charge.dispute.closed",
                          "status": draw(st.sampled_from(["won", "lost"]))})  # fmt: skip
    created = T0
    events = []
    for number, fact in enumerate(facts):
        created += draw(st.integers(min_value=1, max_value=3600))
        events.append(build(fact, f"evt_p{number:02d}", created, layout))
    return events[: draw(st.integers(min_value=1, max_value=len(events)), label="length")]


def build(fact: dict[str, Any], event_id: str, created: int, layout: str) -> dict[str, Any]:
    """The event of one fact, from the real payloads."""
    kind = fact["kind"]
    if kind == "session":
        return session_event(
            fact["type"],
            payment_status="paid" if fact["paid"] else "unpaid",
            layout=layout,
            event_id=event_id,
            created=created,
        )
    if kind == "refund":
        event = refund_event(
            fact["type"],
            refund_id=fact["id"],
            amount=fact["amount"],
            status=fact["status"],
            event_id=event_id,
            created=created,
        )
        return event
    if kind == "charge":
        return charge_refunded_event(
            amount_refunded=fact["amount_refunded"], event_id=event_id, created=created
        )
    return dispute_event(fact["type"], status=fact["status"], event_id=event_id, created=created)


def with_refund_times(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each refund object made when its first event was (as Stripe's ``created`` says)."""
    made: dict[str, int] = {}
    for event in events:
        obj = event["data"]["object"]
        if obj.get("object") == "refund":
            obj["created"] = made.setdefault(obj["id"], event["created"])
    return events


@st.composite
def deliveries(draw: Any, count: int) -> list[int]:
    """Indexes of the events in delivery order: a permutation, with some delivered again."""
    order = list(draw(st.permutations(range(count))))
    for again in draw(st.lists(st.integers(min_value=0, max_value=count - 1), max_size=count)):
        order.insert(draw(st.integers(min_value=0, max_value=len(order))), again)
    return order


@pytest.fixture(scope="module")
def order_host() -> Iterator[Host]:
    host = build_host(CONFIG)
    yield host
    host.drop()


def reset(host: Host) -> None:
    """No events, no purchases, and user 1 (customer ``cus_test``)."""
    host.start_over("stripe_billing_purchases")


def deliver(host: Host, bodies: list[bytes]) -> tuple[Any, ...]:
    """POST each body to the webhook route; the purchase rows and the account after."""
    for body in bodies:
        response = host.client.post(
            "/stripe/webhook",
            data=body,
            headers={"Stripe-Signature": sign(body)},
            content_type="application/json",
        )
        assert response.status_code == 200, response.get_data(as_text=True)
    with host.app.app_context():
        table = host.db.metadata.tables["stripe_billing_purchases"]
        rows = host.db.session.execute(sa.select(table).order_by(table.c.id))
        purchases = tuple(
            tuple(v for k, v in row._mapping.items() if k != "updated_at") for row in rows
        )
        account = host.billing.account(1)
    return purchases, account.purchased_features, host.user(1).stripe_customer_id


@ORDER_SETTINGS
@given(data=st.data())
def test_any_order_with_duplicates_ends_like_in_order_delivery(order_host: Host, data: Any) -> None:
    events = with_refund_times(data.draw(histories(), label="history"))
    order = data.draw(deliveries(len(events)), label="delivery order")
    bodies = [json.dumps(event).encode() for event in events]

    reset(order_host)
    in_order = deliver(order_host, bodies)

    reset(order_host)
    shuffled = deliver(order_host, [bodies[index] for index in order])

    assert shuffled == in_order
    statuses = {row["id"]: row["status"] for row in order_host.events()}
    assert sorted(statuses) == sorted(event["id"] for event in events)
    assert set(statuses.values()) <= {"processed", "stale"}


def test_a_refund_and_a_dispute_before_the_session_end_as_in_order(order_host: Host) -> None:
    """The regression the design names: a refund or dispute before the session is kept."""
    session = {"kind": "session", "type": "checkout.session.completed", "paid": True}
    refund = {"kind": "refund", "type": "refund.created", "id": "re_1", "amount": 500}
    refund["status"] = "succeeded"
    charge = {"kind": "charge", "amount_refunded": 500}
    dispute = {"kind": "dispute", "type": "charge.dispute.closed", "status": "lost"}
    events = with_refund_times(
        [
            build(session, "evt_s", T0, "dahlia"),
            build(refund, "evt_r", T0 + 10, "dahlia"),
            build(charge, "evt_c", T0 + 11, "dahlia"),
            build(dispute, "evt_d", T0 + 20, "dahlia"),
        ]
    )
    bodies = [json.dumps(event).encode() for event in events]
    reset(order_host)
    in_order = deliver(order_host, bodies)
    reset(order_host)
    backwards = deliver(order_host, bodies[::-1])

    assert backwards == in_order
    (row,) = in_order[0]
    assert "partially_refunded" in row and "lost" in row
