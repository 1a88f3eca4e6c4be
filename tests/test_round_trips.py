"""The hot path's statements and round trips per delivered event, counted on the wire.

Each statement is a round trip to the database; so are BEGIN (psycopg sends it
before the first statement) and COMMIT. On PostgreSQL the event is recorded
and its account locked in one statement, and everything decided is written in
one: three statements for an event that changes an account, against six
elsewhere. The counts here are the figures the performance docs quote.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ON_POSTGRES, Host
from support import NOW, fixture_event, post_event, subscription_event

from flask_stripe_billing.state import get_state


class Wire:
    """Counts what the app's engine sends: statements (by their first word) and commits."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0

    def reset(self) -> None:
        self.statements.clear()
        self.commits = 0


@pytest.fixture
def wire(host: Host) -> Iterator[Wire]:
    seen = Wire()

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.statements.append(" ".join(statement.split()[:3]))

    def on_commit(conn: Any) -> None:
        seen.commits += 1

    with host.app.app_context():
        engine = host.db.engine
        # As deployed: the start-up inspection found every table. (The host made its tables
        # after setting the extension up, so the first webhook would inspect them.)
        assert get_state(host.app).schema.gaps() == ()
    sa.event.listen(engine, "before_cursor_execute", on_statement)
    sa.event.listen(engine, "commit", on_commit)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", on_statement)
    sa.event.remove(engine, "commit", on_commit)


def deliver(host: Host, wire: Wire, event: dict[str, Any]) -> tuple[list[str], int]:
    wire.reset()
    assert post_event(host.client, event).status_code == 200
    return list(wire.statements), wire.commits


def kinds(statements: list[str]) -> list[str]:
    return [statement.split()[0] for statement in statements]


def expected(elsewhere: list[str], postgres: list[str]) -> list[str]:
    return postgres if ON_POSTGRES else elsewhere


def test_a_subscription_event_that_changes_the_account(host: Host, wire: Wire) -> None:
    statements, commits = deliver(host, wire, subscription_event(created=NOW))

    # record the event, lock the account, read its records, write the record,
    # write the account, mark the event; then COMMIT.
    assert kinds(statements) == expected(
        ["INSERT", "SELECT", "SELECT", "INSERT", "UPDATE", "UPDATE"], ["WITH", "SELECT", "WITH"]
    )
    assert commits == 1
    assert host.user(1).plan == "pro"


def test_a_duplicate_costs_one_statement(host: Host, wire: Wire) -> None:
    event = subscription_event(created=NOW)
    deliver(host, wire, event)

    statements, commits = deliver(host, wire, event)

    assert kinds(statements) == expected(["INSERT"], ["WITH"])
    assert commits == 1


def test_an_event_that_changes_no_field_of_the_account_writes_only_its_record(
    host: Host, wire: Wire
) -> None:
    deliver(host, wire, subscription_event(created=NOW, period_end=NOW + 86400))

    statements, _ = deliver(host, wire, subscription_event(created=NOW + 1, period_end=NOW + 86400))

    assert kinds(statements) == expected(
        ["INSERT", "SELECT", "SELECT", "INSERT", "UPDATE"], ["WITH", "SELECT", "WITH"]
    )


def test_a_stale_event_writes_nothing_but_its_status(host: Host, wire: Wire) -> None:
    deliver(host, wire, subscription_event(created=NOW))

    statements, _ = deliver(host, wire, subscription_event(status="past_due", created=NOW - 60))

    assert kinds(statements) == expected(
        ["INSERT", "SELECT", "SELECT", "UPDATE"], ["WITH", "SELECT", "WITH"]
    )
    assert host.user(1).stripe_subscription_status == "active"


def test_an_unhandled_type_is_recorded_and_marked(host: Host, wire: Wire) -> None:
    statements, _ = deliver(host, wire, subscription_event("invoice.finalized", created=NOW))

    assert kinds(statements) == expected(["INSERT", "UPDATE"], ["WITH", "WITH"])


def test_a_lifecycle_event_reads_no_subscription_records(host: Host, wire: Wire) -> None:
    failed = fixture_event(
        "events/stripe-ruby-mock__invoice.payment_failed.json", id="evt_failed", created=NOW
    )
    failed["data"]["object"]["customer"] = "cus_test"

    statements, _ = deliver(host, wire, failed)

    # record the event and lock the account, then mark it: its signal is all it does.
    assert kinds(statements) == expected(["INSERT", "SELECT", "UPDATE"], ["WITH", "WITH"])
    assert host.events()[0]["status"] == "processed"
