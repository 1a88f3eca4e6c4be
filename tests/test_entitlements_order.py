"""Order and duplicates do not matter for entitlement summaries either.

A customer's summaries (any feature sets, several in one second, some before
the customer is linked to the account) delivered in any order with any of them
repeated, through the real webhook route, end with the features and the
watermark that delivering each once, oldest first, ends with; and each summary
is applied at most once (one ``features_changed`` per event at most). On SQLite,
and on PostgreSQL when ``DATABASE_URL`` is set.
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
from support import NOW, sign

from flask_stripe_billing.core.entitlements import SUMMARY_EVENT
from flask_stripe_billing.testing import build_event, record_signals

KEYS = ("export", "api", "sso", "reports", "audit")
EXAMPLES = 40 if ON_POSTGRES else 100


@st.composite
def summaries(draw: Any) -> list[dict[str, Any]]:
    """One customer's summaries, oldest first, within a few seconds (ties included)."""
    count = draw(st.integers(min_value=1, max_value=6))
    offsets = sorted(draw(st.lists(st.integers(0, 3), min_size=count, max_size=count)))
    return [
        build_event(
            SUMMARY_EVENT,
            customer="cus_test",
            features=draw(st.frozensets(st.sampled_from(KEYS))),
            created=NOW + offset,
            event_id=f"evt_summary_{n}",
        )
        for n, offset in enumerate(offsets)
    ]


@st.composite
def deliveries(draw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The summaries in order, and the same in any order with any of them repeated."""
    events = draw(summaries())
    repeated = events + draw(st.lists(st.sampled_from(events), max_size=3))
    return events, draw(st.permutations(repeated))


@pytest.fixture(scope="module")
def shared_host() -> Iterator[Host]:
    """One host for every example (rebuilding tables per example would dominate the run)."""
    host = build_host()
    yield host
    with host.app.app_context():
        host.db.session.remove()
        host.db.drop_all()
        host.db.engine.dispose()


def reset(host: Host, *, linked: bool) -> None:
    with host.app.app_context():
        for name in ("stripe_billing_events", "stripe_billing_entitlements", "users"):
            host.db.session.execute(sa.delete(host.db.metadata.tables[name]))
        host.db.session.commit()
    host.add_user(1, stripe_customer_id="cus_test" if linked else None)


def deliver(host: Host, events: list[dict[str, Any]]) -> tuple[tuple[Any, ...], int]:
    """POST each event; the stored entitlement row and how many features_changed went out."""
    client = host.client
    with record_signals() as recorded:
        for event in events:
            body = json.dumps(event).encode()
            response = client.post(
                "/stripe/webhook",
                data=body,
                headers={"Stripe-Signature": sign(body)},
                content_type="application/json",
            )
            assert response.status_code == 200, response.text
    with host.app.app_context():
        table = host.db.metadata.tables["stripe_billing_entitlements"]
        row = host.db.session.execute(sa.select(table.c.features, table.c.last_event_at)).one()
        statuses = {row["status"] for row in host.events()}
    assert statuses <= {"processed", "stale"}
    changed = recorded.calls.get("features_changed", [])
    assert len({call["event"].id for call in changed}) == len(changed)  # once per event
    return (json.loads(row.features), row.last_event_at.replace(tzinfo=None)), len(changed)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(delivery=deliveries(), linked=st.booleans())
def test_any_order_with_duplicates_ends_as_in_order_delivery(
    shared_host: Host, delivery: tuple[list[dict[str, Any]], list[dict[str, Any]]], linked: bool
) -> None:
    in_order, shuffled = delivery

    reset(shared_host, linked=linked)
    expected, _ = deliver(shared_host, in_order)
    reset(shared_host, linked=linked)
    ended, signals_sent = deliver(shared_host, shuffled)

    assert ended == expected
    if not linked:
        assert signals_sent == 0  # no account to tell yet
