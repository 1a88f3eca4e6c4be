"""Order and duplicates do not matter: any delivery of a history ends where in-order delivery does.

Stripe retries, duplicates and reorders events. A subscription's history
(created → updated … → deleted → a new subscription created) delivered in any
order, with any event repeated, through the real webhook route, must leave the
account exactly as delivering it once, in order, does. So must any prefix of
such a history (the rest not sent yet).

Each event of the history is created at least a second after the previous one,
as Stripe's are when they follow one another; events created in the same second
are a known limit (the last test).
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
from support import NOW, sign, subscription_event

T0 = NOW - 86400
#: Statuses a live subscription moves through (``active`` twice: it is the common one).
UPDATE_STATUSES = ("active", "trialing", "past_due", "unpaid", "active")
#: Fewer examples on PostgreSQL: each one is a few dozen real transactions.
EXAMPLES = 30 if ON_POSTGRES else 60

ORDER_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def histories(draw: Any) -> list[dict[str, Any]]:
    """One customer's events, oldest first, each ``created`` strictly later than the last."""
    facts: list[dict[str, Any]] = [
        {
            "event_type": "customer.subscription.created",
            "status": draw(st.sampled_from(["active", "trialing"])),
            "subscription": "sub_first",
        }
    ]
    for status in draw(st.lists(st.sampled_from(UPDATE_STATUSES), max_size=5)):
        facts.append({"status": status, "subscription": "sub_first"})
    facts.append(
        {
            "event_type": "customer.subscription.deleted",
            "status": "canceled",
            "subscription": "sub_first",
        }
    )
    facts.append(
        {
            "event_type": "customer.subscription.created",
            "status": "active",
            "subscription": "sub_second",
        }
    )
    created = T0
    events = []
    for number, fact in enumerate(facts):
        created += draw(st.integers(min_value=1, max_value=3600))
        events.append(
            subscription_event(
                **fact,
                period_end=created + draw(st.sampled_from([30, 365])) * 86400,
                cancel_at_period_end=draw(st.booleans()),
                event_id=f"evt_{number:02d}",
                created=created,
            )
        )
    # Any prefix is a history too: Stripe may not have sent the rest yet.
    return events[: draw(st.integers(min_value=1, max_value=len(events)), label="length")]


@st.composite
def deliveries(draw: Any, count: int) -> list[int]:
    """Indexes of the events in delivery order: a permutation, with some delivered again."""
    order = list(draw(st.permutations(range(count))))
    for again in draw(st.lists(st.integers(min_value=0, max_value=count - 1), max_size=count)):
        order.insert(draw(st.integers(min_value=0, max_value=len(order))), again)
    return order


@pytest.fixture(scope="module")
def order_host() -> Iterator[Host]:
    """One host for every example (its tables emptied between deliveries)."""
    host = build_host()
    yield host
    with host.app.app_context():
        host.db.session.remove()
        host.db.drop_all()
        host.db.engine.dispose()


def reset(host: Host) -> None:
    """No events, and user 1 (customer ``cus_test``) on the free plan."""
    with host.app.app_context():
        session = host.db.session
        session.execute(sa.delete(host.db.metadata.tables["stripe_billing_events"]))
        session.execute(sa.delete(host.User))
        session.add(host.User(id=1, email="user1@example.com", stripe_customer_id="cus_test"))
        session.commit()


def deliver(host: Host, bodies: list[bytes]) -> tuple[Any, ...]:
    """POST each body to the webhook route; the account's state afterwards."""
    client = host.client
    for body in bodies:
        response = client.post(
            "/stripe/webhook",
            data=body,
            headers={"Stripe-Signature": sign(body)},
            content_type="application/json",
        )
        assert response.status_code == 200, response.get_data(as_text=True)
    user = host.user(1)
    return (
        user.plan,
        user.stripe_subscription_status,
        user.stripe_subscription_id,
        user.current_period_end,
        user.cancel_at_period_end,
    )


def final_statuses(host: Host) -> dict[str, str]:
    return {row["id"]: row["status"] for row in host.events()}


@ORDER_SETTINGS
@given(data=st.data())
def test_any_order_with_duplicates_ends_like_in_order_delivery(order_host: Host, data: Any) -> None:
    events = data.draw(histories(), label="history")
    order = data.draw(deliveries(len(events)), label="delivery order")
    bodies = [json.dumps(event).encode() for event in events]

    reset(order_host)
    in_order = deliver(order_host, bodies)
    assert set(final_statuses(order_host).values()) == {"processed"}

    reset(order_host)
    shuffled = deliver(order_host, [bodies[index] for index in order])

    assert shuffled == in_order
    statuses = final_statuses(order_host)
    assert sorted(statuses) == sorted(event["id"] for event in events)
    assert set(statuses.values()) <= {"processed", "stale"}


# The counterexamples the property found, kept as plain regression tests


def both_orders(host: Host, *events: dict[str, Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The account after delivering ``events`` in order, and after the reverse order."""
    bodies = [json.dumps(event).encode() for event in events]
    reset(host)
    in_order = deliver(host, bodies)
    reset(host)
    return in_order, deliver(host, bodies[::-1])


def test_deleted_before_its_older_events_stores_the_same_period_end(order_host: Host) -> None:
    created = subscription_event(
        "customer.subscription.created", period_end=NOW + 86400, created=T0 + 1, event_id="evt_1"
    )
    deleted = subscription_event(
        "customer.subscription.deleted",
        status="canceled",
        period_end=NOW + 86400,
        created=T0 + 2,
        event_id="evt_2",
    )

    in_order, reversed_ = both_orders(order_host, created, deleted)

    assert in_order == reversed_
    assert in_order[:3] == ("free", "canceled", "sub_test")
    assert in_order[3] is not None


def test_past_due_before_its_older_active_event_keeps_the_paid_plan(order_host: Host) -> None:
    created = subscription_event(
        "customer.subscription.created", status="active", created=T0 + 1, event_id="evt_1"
    )
    past_due = subscription_event(status="past_due", created=T0 + 2, event_id="evt_2")

    in_order, reversed_ = both_orders(order_host, created, past_due)

    assert in_order == reversed_
    assert in_order[:2] == ("pro", "past_due")


def test_events_created_in_the_same_second_end_like_in_order_delivery(order_host: Host) -> None:
    """Stripe's `created` has one-second resolution: the lifecycle breaks the tie."""
    created = subscription_event(
        "customer.subscription.created", status="active", created=T0, event_id="evt_1"
    )
    deleted = subscription_event(
        "customer.subscription.deleted", status="canceled", created=T0, event_id="evt_2"
    )

    in_order, reversed_ = both_orders(order_host, created, deleted)

    assert in_order == reversed_
