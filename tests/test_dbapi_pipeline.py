"""Signed webhooks through a DBAPIUserStore: the host's users row changes exactly once, in
any order; on SQLite, and on PostgreSQL with DATABASE_URL (psycopg)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dbapi_support import Database, dbapi_app, make_database
from hypothesis import given
from hypothesis import strategies as st
from support import LAYOUTS, NOW, checkout_event, post_event, sign, subscription_event
from test_order_property import ORDER_SETTINGS, PLANS, deliveries, histories

from flask_stripe_billing import DBAPIUserStore, StripeBilling
from flask_stripe_billing.testing import build_event, get_account

T0 = NOW - 3600
PERIOD_END = NOW + 30 * 86400
#: The users row's billing columns, as read back.
BILLING = (
    "plan, stripe_subscription_status, stripe_subscription_id, current_period_end, "
    "cancel_at_period_end, trial_end, subscription_quantity"
)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """The users table with user 1 (customer ``cus_test``) and user 2 (none yet)."""
    made = make_database(tmp_path)
    made.create()
    made.add_user(1, stripe_customer_id="cus_test")
    made.add_user(2)
    yield made
    made.drop("users")


@pytest.fixture
def app(database: Database) -> Any:
    return dbapi_app(database)[0]


def user_row(database: Database, user_id: int) -> dict[str, Any]:
    """The user's billing columns as stored (times as aware UTC datetimes)."""
    mark = "?" if database.dialect == "sqlite" else "%s"
    row = database.row(f"SELECT {BILLING} FROM users WHERE id = {mark}", [user_id])
    assert row is not None
    values = dict(zip([name.strip() for name in BILLING.split(",")], row, strict=True))
    for name in ("current_period_end", "trial_end"):
        if isinstance(values[name], str):
            values[name] = datetime.fromisoformat(values[name]).replace(tzinfo=UTC)
    values["cancel_at_period_end"] = bool(values["cancel_at_period_end"])
    return values


def event_rows(database: Database) -> dict[str, tuple[str, int]]:
    rows = database.run("SELECT id, status, attempts FROM stripe_billing_events")
    return {event_id: (status, attempts) for event_id, status, attempts in rows}


def received_ok(response: Any) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"received": True}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_subscription_event_sets_the_users_row(
    app: Any, database: Database, received: Any, layout: str
) -> None:
    event = subscription_event(
        "customer.subscription.created", layout=layout, period_end=PERIOD_END, created=T0
    )

    received_ok(post_event(app.test_client(), event))

    row = user_row(database, 1)
    assert (row["plan"], row["stripe_subscription_id"]) == ("pro", "sub_test")
    assert row["stripe_subscription_status"] in ("active", "trialing")
    if layout != "dahlia":  # the dahlia fixture keeps its own period dates
        assert row["current_period_end"] == datetime.fromtimestamp(PERIOD_END, UTC)
    assert event_rows(database) == {event["id"]: ("processed", 1)}
    (record,) = database.run("SELECT id, user_id, status FROM stripe_billing_subscriptions")
    assert record == ("sub_test", "1", row["stripe_subscription_status"])
    assert [call["new_plan"] for call in received["plan_changed"]] == ["pro"]
    assert user_row(database, 2)["plan"] == "free"


def test_duplicate_delivery_changes_nothing_and_signals_once(
    app: Any, database: Database, received: Any
) -> None:
    event = subscription_event(status="active", event_id="evt_dup", created=T0)

    received_ok(post_event(app.test_client(), event))
    first = user_row(database, 1)
    received_ok(post_event(app.test_client(), event))

    assert user_row(database, 1) == first
    assert event_rows(database) == {"evt_dup": ("processed", 2)}
    assert [call["status"] for call in received["webhook_received"]] == ["processed", "duplicate"]
    assert len(received["plan_changed"]) == 1


def test_older_event_after_a_newer_one_is_stale(app: Any, database: Database) -> None:
    newer = subscription_event(status="past_due", event_id="evt_new", created=T0 + 10)
    older = subscription_event(status="active", event_id="evt_old", created=T0)

    received_ok(post_event(app.test_client(), newer))
    received_ok(post_event(app.test_client(), older))

    assert user_row(database, 1)["stripe_subscription_status"] == "past_due"
    assert event_rows(database) == {"evt_new": ("processed", 1), "evt_old": ("stale", 1)}


def test_checkout_links_the_customer_and_grants_the_plan(app: Any, database: Database) -> None:
    event = checkout_event(customer="cus_new", subscription="sub_new", client_reference_id="2")

    received_ok(post_event(app.test_client(), event))

    mark = "?" if database.dialect == "sqlite" else "%s"
    row = database.row(f"SELECT stripe_customer_id, plan FROM users WHERE id = {mark}", [2])
    assert row == ("cus_new", "pro")
    assert user_row(database, 1)["plan"] == "free"


def test_event_of_an_unknown_customer_is_unmatched(
    app: Any, database: Database, received: Any
) -> None:
    event = subscription_event(customer="cus_nobody", user_id="not-a-number", event_id="evt_who")

    received_ok(post_event(app.test_client(), event))

    assert event_rows(database) == {"evt_who": ("unmatched", 1)}
    assert [call["customer_id"] for call in received["customer_not_found"]] == ["cus_nobody"]
    assert user_row(database, 1)["plan"] == "free"


def test_a_failure_after_the_writes_rolls_them_back_and_records_the_event_failed(
    app: Any, database: Database, received: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = app.extensions["stripe_billing"].steps  # the store's calls, one per step
    original = steps.write_outcome

    def write_then_fail(**outcome: Any) -> Any:
        original(**outcome)  # the subscription row, the users row, the event's status…
        raise RuntimeError("broke after writing")

    monkeypatch.setattr(steps, "write_outcome", write_then_fail)
    event = subscription_event(status="active", event_id="evt_bug", created=T0)

    received_ok(post_event(app.test_client(), event))

    assert user_row(database, 1)["plan"] == "free"  # … all rolled back together
    assert database.run("SELECT id FROM stripe_billing_subscriptions") == []
    assert event_rows(database) == {"evt_bug": ("failed", 1)}
    assert "plan_changed" not in received

    monkeypatch.undo()  # fixed; Stripe delivers it again
    received_ok(post_event(app.test_client(), event))

    assert user_row(database, 1)["plan"] == "pro"
    assert event_rows(database) == {"evt_bug": ("processed", 2)}


def test_database_unreachable_answers_503_and_records_nothing(
    database: Database, received: Any
) -> None:
    def unreachable() -> Any:
        raise sqlite3.OperationalError("unable to open database file")

    from flask import Flask

    app = Flask(__name__)
    app.config.update(TESTING=True, STRIPE_WEBHOOK_SECRET="whsec_test_secret")
    StripeBilling(app, user_store=DBAPIUserStore(unreachable, dialect=database.dialect))

    response = post_event(app.test_client(), subscription_event(event_id="evt_down"))

    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "external_service_error"
    assert set(body) == {"error", "message", "details"}
    assert "unable to open" not in response.get_data(as_text=True)
    assert received == {}


def test_missing_library_table_answers_503_until_the_schema_is_run(
    app: Any, database: Database
) -> None:
    database.run("DROP TABLE stripe_billing_events")
    event = subscription_event(status="active", event_id="evt_early", created=T0)

    assert post_event(app.test_client(), event).status_code == 503

    database.drop("users")
    database.create()
    database.add_user(1, stripe_customer_id="cus_test")
    received_ok(post_event(app.test_client(), event))
    assert user_row(database, 1)["plan"] == "pro"


# any order, any duplicates: where in-order delivery ends


def deliver(app: Any, database: Database, bodies: list[bytes]) -> tuple[Any, ...]:
    client = app.test_client()
    for body in bodies:
        response = client.post(
            "/stripe/webhook",
            data=body,
            headers={"Stripe-Signature": sign(body)},
            content_type="application/json",
        )
        received_ok(response)
    account = tuple(user_row(database, 1).values())
    records = database.run(
        "SELECT id, status, price_ids, plan, quantity, trial_end, current_period_end, "
        "cancel_at_period_end, cancel_at, ended_at, created, last_event_at "
        "FROM stripe_billing_subscriptions ORDER BY id"
    )
    return account, tuple(records)


def reset(database: Database) -> None:
    for table in ("stripe_billing_events", "stripe_billing_subscriptions", "users"):
        database.run(f"DELETE FROM {table}")
    database.add_user(1, stripe_customer_id="cus_test")


@pytest.fixture(scope="module")
def order_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    made = make_database(tmp_path_factory.mktemp("order"))
    made.create()
    yield made
    made.drop("users")


@ORDER_SETTINGS
@given(data=st.data())
def test_any_order_with_duplicates_ends_like_in_order_delivery(
    order_database: Database, data: Any
) -> None:
    app = dbapi_app(order_database, {"STRIPE_BILLING_PLANS": PLANS})[0]
    events = data.draw(histories(), label="history")
    order = data.draw(deliveries(len(events)), label="delivery order")
    bodies = [json.dumps(event).encode() for event in events]

    reset(order_database)
    in_order = deliver(app, order_database, bodies)
    reset(order_database)
    shuffled = deliver(app, order_database, [bodies[index] for index in order])

    assert shuffled == in_order
    statuses = {status for status, _ in event_rows(order_database).values()}
    assert statuses <= {"processed", "stale"}


# concurrent deliveries: threads, each transaction on its own connection

WORKERS = 8


def deliver_together(app: Any, bodies: list[bytes]) -> list[int]:
    """Each thread posts its body, all released at once; the status codes."""
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = [0] * len(bodies)

    def post(index: int) -> None:
        client = app.test_client()
        body = bodies[index]
        barrier.wait(30)
        statuses[index] = client.post(
            "/stripe/webhook",
            data=body,
            headers={"Stripe-Signature": sign(body)},
            content_type="application/json",
        ).status_code

    threads = [threading.Thread(target=post, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def test_same_event_delivered_by_every_worker_at_once_is_applied_once(
    app: Any, database: Database, received: Any
) -> None:
    body = json.dumps(subscription_event(status="active", event_id="evt_same", created=T0))

    statuses = deliver_together(app, [body.encode()] * WORKERS)

    assert statuses == [200] * WORKERS
    outcomes = sorted(call["status"] for call in received["webhook_received"])
    assert outcomes == ["duplicate"] * (WORKERS - 1) + ["processed"]
    assert len(received["plan_changed"]) == 1
    assert event_rows(database) == {"evt_same": ("processed", WORKERS)}
    assert user_row(database, 1)["plan"] == "pro"


def test_concurrent_events_for_one_customer_end_in_the_newest_state(
    app: Any, database: Database
) -> None:
    statuses = ["trialing", "active", "past_due", "active", "past_due", "unpaid", "active"]
    events = [
        subscription_event(
            status=status,
            period_end=PERIOD_END + 86400 * index,
            event_id=f"evt_{index}",
            created=T0 + index,
        )
        for index, status in enumerate(statuses)
    ]
    events.append(
        subscription_event(
            status="past_due",
            period_end=PERIOD_END + 86400 * 9,
            event_id="evt_new",
            created=T0 + 50,
        )
    )

    answers = deliver_together(app, [json.dumps(event).encode() for event in reversed(events)])

    assert answers == [200] * WORKERS
    row = user_row(database, 1)
    assert (row["plan"], row["stripe_subscription_status"]) == ("pro", "past_due")
    assert row["current_period_end"] == datetime.fromtimestamp(PERIOD_END + 86400 * 9, UTC)
    rows = event_rows(database)
    assert rows["evt_new"] == ("processed", 1)
    assert {status for status, _ in rows.values()} <= {"processed", "stale"}


# Stripe Entitlements through the DB-API store


def test_entitlement_summaries_set_features_in_order_whatever_the_delivery(
    app: Any, database: Database
) -> None:
    newer = build_event(
        "entitlements.active_entitlement_summary.updated",
        features=["export", "api"],
        created=T0 + 10,
        event_id="evt_newer",
    )
    older = build_event(
        "entitlements.active_entitlement_summary.updated",
        features=["sso"],
        created=T0,
        event_id="evt_older",
    )
    early = build_event(  # user 2 is not linked to cus_two yet
        "entitlements.active_entitlement_summary.updated",
        customer="cus_two",
        features=["reports"],
        created=T0,
        event_id="evt_unlinked",
    )
    for event in (newer, older, newer, early):
        received_ok(post_event(app.test_client(), event))

    assert event_rows(database) == {
        "evt_newer": ("processed", 2),
        "evt_older": ("stale", 1),
        "evt_unlinked": ("processed", 1),
    }
    account = get_account(app, 1)
    assert account is not None and account.features == {"export", "api"}
    mark = "?" if database.dialect == "sqlite" else "%s"
    database.run(f"UPDATE users SET stripe_customer_id = {mark} WHERE id = 2", ["cus_two"])
    linked = get_account(app, 2)
    assert linked is not None and linked.features == {"reports"}
