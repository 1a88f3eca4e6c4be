"""Overlapping subscriptions under real concurrency: eight processes, PostgreSQL.

A customer's retried and upgraded subscriptions, their Checkout sessions and
duplicates, delivered eight at a time at the same moment in shuffled order,
must end exactly where delivering them once, in order, ends.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Host
from support import NOW, checkout_event, post_event, subscription_event
from test_concurrency import WORKERS, Workers, workers  # noqa: F401  (the module's fixture)

pytestmark = pytest.mark.postgres

T0 = NOW - 7200


def history() -> list[dict[str, Any]]:
    """Three overlapping subscriptions of user 1: an incomplete one retried, then upgraded."""

    def sub(kind: str, subscription: str, status: str, at: int, **facts: Any) -> dict[str, Any]:
        event = subscription_event(
            f"customer.subscription.{kind}",
            subscription=subscription,
            status=status,
            created=T0 + at,
            period_end=NOW + 86400 + at,
            event_id=f"evt_{subscription}_{kind}_{at}",
            **facts,
        )
        event["data"]["object"]["created"] = (
            T0 + {"sub_1": 0, "sub_2": 100, "sub_3": 300}[subscription]
        )
        return event

    def paid(subscription: str, at: int, price: str) -> dict[str, Any]:
        return checkout_event(
            subscription=subscription,
            client_reference_id="1",
            metadata={"user_id": "1", "price_id": price},
            created=T0 + at,
            event_id=f"evt_checkout_{subscription}",
        )

    return [
        sub("created", "sub_1", "incomplete", 0, price="price_pro"),
        sub("created", "sub_2", "incomplete", 100, price="price_pro"),
        paid("sub_2", 101, "price_pro"),
        sub("updated", "sub_2", "active", 102, price="price_pro"),
        sub("updated", "sub_2", "past_due", 200, price="price_pro"),
        paid("sub_3", 300, "price_team"),
        sub("created", "sub_3", "active", 300, price="price_team"),
        sub("updated", "sub_2", "active", 301, price="price_pro", cancel_at_period_end=True),
        sub("updated", "sub_1", "incomplete_expired", 400, price="price_pro"),
        sub("deleted", "sub_2", "canceled", 500, price="price_pro"),
        sub("updated", "sub_3", "active", 600, price="price_team", cancel_at_period_end=True),
    ]


def reset(host: Host) -> None:
    with host.app.app_context():
        session = host.db.session
        for table in ("stripe_billing_events", "stripe_billing_subscriptions"):
            session.execute(sa.delete(host.db.metadata.tables[table]))
        session.commit()
        user = session.get(host.User, 1)
        for column in ("stripe_subscription_id", "stripe_subscription_status", "updated_at"):
            setattr(user, column, None)
        user.plan = "free"
        session.commit()


def end_state(host: Host) -> tuple[Any, ...]:
    user = host.user(1)
    with host.app.app_context():
        table = host.db.metadata.tables["stripe_billing_subscriptions"]
        rows = host.db.session.execute(
            sa.select(table.c.id, table.c.status, table.c.plan, table.c.last_event_at).order_by(
                table.c.id
            )
        )
        records = tuple(tuple(row) for row in rows)
    return (user.plan, user.stripe_subscription_status, user.stripe_subscription_id), records


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_overlapping_subscriptions_delivered_concurrently_end_like_in_order(
    host: Host,
    workers: Workers,  # noqa: F811
    seed: int,
) -> None:
    events = history()
    for event in events:
        assert post_event(host.client, event).status_code == 200
    in_order = end_state(host)
    assert in_order[0] == ("pro", "active", "sub_3")

    reset(host)
    rng = random.Random(seed)
    bodies = [json.dumps(event).encode() for event in events]
    deliveries = bodies + rng.sample(bodies, 5)  # some delivered twice
    rng.shuffle(deliveries)
    answers = []
    for start in range(0, len(deliveries), WORKERS):
        batch = deliveries[start : start + WORKERS]
        batch += [rng.choice(bodies) for _ in range(WORKERS - len(batch))]
        answers += workers.deliver_together(batch)

    assert {answer["status"] for answer in answers} == {200}
    assert end_state(host) == in_order
    with host.app.app_context():
        table = host.db.metadata.tables["stripe_billing_events"]
        statuses = set(host.db.session.execute(sa.select(table.c.status)).scalars())
    assert statuses <= {"processed", "stale"}
