"""Order and duplicates do not matter, also with overlapping subscriptions.

Stripe retries, duplicates and reorders events. A customer's history of one to
three overlapping subscriptions (a retry after ``incomplete``, an upgrade
before the old one ends, a new Checkout while ``past_due``, trials, pauses),
with the Checkout sessions that started them, delivered in any order with any
event repeated through the real webhook route, must leave the subscription
records and the account exactly as delivering it once, in order, does. So must
any prefix of such a history (the rest not sent yet).

Events of one subscription are created at least a second apart, as Stripe's
are when they follow one another; events of different subscriptions may share
a second. Same-second events of one subscription are settled by Stripe's
lifecycle (the regression tests at the end).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ON_POSTGRES, Host, build_host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import LAYOUTS, NOW, checkout_event, sign, subscription_event

T0 = NOW - 30 * 86400
PLANS = {"price_basic": "basic", "price_pro": "pro", "price_team": "team"}
#: Where a subscription may go next, as Stripe moves it (terminal ones go nowhere).
NEXT_STATUSES = {
    "incomplete": ("active", "incomplete_expired"),
    "trialing": ("active", "past_due", "canceled", "paused"),
    "active": ("active", "past_due", "canceled"),
    "past_due": ("active", "unpaid", "canceled"),
    "unpaid": ("active", "canceled"),
    "paused": ("active", "canceled"),
}
#: Fewer examples on PostgreSQL: each one is a few dozen real transactions.
EXAMPLES = 40 if ON_POSTGRES else 80

ORDER_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def lifecycles(draw: Any, subscription: str) -> list[dict[str, Any]]:
    """One subscription's events as facts, oldest first: created, updates, maybe its end."""
    price = draw(st.sampled_from(sorted(PLANS)))
    status = draw(st.sampled_from(["incomplete", "trialing", "active"]))
    facts = [{"event_type": "customer.subscription.created", "status": status}]
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        if status not in NEXT_STATUSES:
            break
        status = draw(st.sampled_from(NEXT_STATUSES[status]))
        ending = status in ("canceled", "incomplete_expired") and draw(st.booleans())
        facts.append(
            {
                "event_type": "customer.subscription."
                + ("deleted" if status == "canceled" or ending else "updated"),
                "status": status,
            }
        )
    if draw(st.booleans()):  # the Checkout session that started it
        at = draw(st.integers(min_value=0, max_value=len(facts)))
        facts.insert(at, {"checkout": True})
    for fact in facts:
        fact.update(subscription=subscription, price=price)
    return facts


@st.composite
def histories(draw: Any) -> list[dict[str, Any]]:
    """A customer's events, oldest first: one to three subscriptions' lifecycles interleaved."""
    count = draw(st.integers(min_value=1, max_value=3), label="subscriptions")
    queues = [draw(lifecycles(f"sub_{n}")) for n in range(1, count + 1)]
    merged: list[dict[str, Any]] = []
    while any(queues):
        # A later subscription starts only once the one before it has begun.
        ready = [q for n, q in enumerate(queues) if q and (n == 0 or len(queues[n - 1]) == 0
                 or merged_has(merged, f"sub_{n}"))]  # fmt: skip
        merged.append(draw(st.sampled_from(ready)).pop(0))
    created = T0
    last_of: dict[str, int] = {}
    layout = draw(st.sampled_from(LAYOUTS), label="payload layout")
    events = []
    for number, fact in enumerate(merged):
        subscription = fact["subscription"]
        created += draw(st.integers(min_value=0, max_value=3600))
        if subscription in last_of and created <= last_of[subscription]:
            created = last_of[subscription] + 1
        starts = last_of.setdefault(subscription, created)
        last_of[subscription] = created
        events.append(build(fact, number, created, starts, layout, draw(st.booleans())))
    # Any prefix is a history too: Stripe may not have sent the rest yet.
    return events[: draw(st.integers(min_value=1, max_value=len(events)), label="length")]


def merged_has(merged: list[dict[str, Any]], subscription: str) -> bool:
    return any(fact["subscription"] == subscription for fact in merged)


def build(
    fact: dict[str, Any], number: int, created: int, starts: int, layout: str, flag: bool
) -> dict[str, Any]:
    """The event for one fact, from the real payloads."""
    event_id = f"evt_{number:02d}"
    if fact.get("checkout"):
        return checkout_event(
            customer="cus_test",
            subscription=fact["subscription"],
            client_reference_id="1",
            metadata={"user_id": "1", "price_id": fact["price"]},
            event_id=event_id,
            created=created,
        )
    event = subscription_event(
        fact["event_type"],
        status=fact["status"],
        subscription=fact["subscription"],
        price=fact["price"],
        period_end=created + 30 * 86400,
        cancel_at_period_end=flag,
        layout=layout,
        event_id=event_id,
        created=created,
    )
    event["data"]["object"]["created"] = starts  # the subscription's own creation
    return event


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
    host = build_host({"STRIPE_BILLING_PLANS": PLANS})
    yield host
    host.drop()


def reset(host: Host) -> None:
    """No events, no subscriptions, and user 1 (customer ``cus_test``) on the free plan."""
    host.start_over("stripe_billing_subscriptions")


def deliver(host: Host, bodies: list[bytes]) -> tuple[Any, ...]:
    """POST each body to the webhook route; the account and its records afterwards."""
    client = host.client
    for body in bodies:
        response = client.post(
            "/stripe/webhook",
            data=body,
            headers={"Stripe-Signature": sign(body)},
            content_type="application/json",
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json() == {"received": True}
    return state_of(host)


def state_of(host: Host, skipped: tuple[str, ...] = ("updated_at",)) -> tuple[Any, ...]:
    """User 1's billing columns and every subscription row but the ``skipped`` columns (the
    wall-clock ``updated_at``)."""
    user = host.user(1)
    account = (
        user.plan,
        user.stripe_subscription_status,
        user.stripe_subscription_id,
        user.current_period_end,
        user.cancel_at_period_end,
        user.trial_end,
        user.subscription_quantity,
    )
    with host.app.app_context():
        table = host.db.metadata.tables["stripe_billing_subscriptions"]
        rows = host.db.session.execute(sa.select(table).order_by(table.c.id))
        records = tuple(
            tuple(v for k, v in row._mapping.items() if k not in skipped) for row in rows
        )
    return account, records


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
    assert set(final_statuses(order_host).values()) <= {"processed"}

    reset(order_host)
    shuffled = deliver(order_host, [bodies[index] for index in order])

    assert shuffled == in_order
    statuses = final_statuses(order_host)
    assert sorted(statuses) == sorted(event["id"] for event in events)
    assert set(statuses.values()) <= {"processed", "stale"}


# The histories that lost paying users with one watermark per account, every order


def every_order(host: Host, *events: dict[str, Any]) -> set[tuple[Any, ...]]:
    """The account and records after each permutation of ``events`` (one state: order-free)."""
    bodies = [json.dumps(event).encode() for event in events]
    ends = set()
    for order in itertools.permutations(bodies):
        reset(host)
        ends.add(deliver(host, list(order)))
    return ends


def sub(event_type: str, subscription: str, status: str, at: int, **facts: Any) -> dict[str, Any]:
    event = subscription_event(
        f"customer.subscription.{event_type}",
        subscription=subscription,
        status=status,
        created=T0 + at,
        event_id=f"evt_{subscription}_{event_type}_{at}",
        period_end=T0 + at + 30 * 86400,
        **facts,
    )
    event["data"]["object"]["created"] = T0 + (0 if subscription == "sub_1" else 100)
    return event


def paid_checkout(subscription: str, at: int) -> dict[str, Any]:
    return checkout_event(
        subscription=subscription,
        client_reference_id="1",
        metadata={"user_id": "1"},
        created=T0 + at,
        event_id=f"evt_checkout_{subscription}",
    )


def test_retry_after_incomplete_keeps_the_paid_retry_whatever_the_order(order_host: Host) -> None:
    ends = every_order(
        order_host,
        sub("created", "sub_1", "incomplete", 0),
        sub("created", "sub_2", "active", 100),
        paid_checkout("sub_2", 101),
        sub("updated", "sub_1", "incomplete_expired", 86400),
    )

    (end,) = ends
    assert end[0][:3] == ("pro", "active", "sub_2")


def test_old_subscriptions_late_deletion_keeps_the_new_one_whatever_the_order(
    order_host: Host,
) -> None:
    ends = every_order(
        order_host,
        sub("created", "sub_1", "active", 0),
        sub("updated", "sub_1", "active", 50, cancel_at_period_end=True),
        sub("created", "sub_2", "active", 100),
        sub("deleted", "sub_1", "canceled", 200),
    )

    (end,) = ends
    assert end[0][:3] == ("pro", "active", "sub_2")


def test_new_checkout_while_past_due_then_old_one_canceled_whatever_the_order(
    order_host: Host,
) -> None:
    ends = every_order(
        order_host,
        sub("updated", "sub_1", "past_due", 10),
        paid_checkout("sub_2", 100),
        sub("created", "sub_2", "active", 100),
        sub("deleted", "sub_1", "canceled", 150),
    )

    (end,) = ends
    assert end[0][:3] == ("pro", "active", "sub_2")


# The counterexamples the property found for one subscription, kept as regression tests


def both_orders(host: Host, *events: dict[str, Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The state after delivering ``events`` in order, and after the reverse order."""
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
    assert in_order[0][:3] == ("free", "canceled", "sub_test")
    assert in_order[0][3] is not None


def test_past_due_before_its_older_active_event_keeps_the_paid_plan(order_host: Host) -> None:
    created = subscription_event(
        "customer.subscription.created", status="active", created=T0 + 1, event_id="evt_1"
    )
    past_due = subscription_event(status="past_due", created=T0 + 2, event_id="evt_2")

    in_order, reversed_ = both_orders(order_host, created, past_due)

    assert in_order == reversed_
    assert in_order[0][:2] == ("pro", "past_due")


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
    assert in_order[0][:2] == ("free", "canceled")


def test_incomplete_new_subscription_never_displaces_the_live_one_whatever_the_order(
    order_host: Host,
) -> None:
    ends = every_order(
        order_host,
        sub("created", "sub_1", "active", 0),
        sub("created", "sub_2", "incomplete", 100),
        sub("updated", "sub_1", "past_due", 200),
    )

    (end,) = ends
    assert end[0][:3] == ("pro", "past_due", "sub_1")
    assert [row[0] for row in end[1]] == ["sub_1", "sub_2"]
