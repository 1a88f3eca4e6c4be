"""Thin notifications through a DBAPIUserStore: fetched, applied once, the snapshot twin
claimed; on SQLite, and on PostgreSQL with DATABASE_URL (psycopg)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from dbapi_support import Database, dbapi_app, make_database
from support import NOW, post_event, subscription_event
from thin_support import THIN_SECRET, notification, serve, subscription_object, thin_config

from flask_stripe_billing.testing import record_signals

THIN = "/stripe/thin-webhook"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    made = make_database(tmp_path)
    made.create()
    made.add_user(1, stripe_customer_id="cus_test")
    yield made
    made.drop("users")


def plan_of(database: Database) -> tuple[Any, ...]:
    mark = "?" if database.dialect == "sqlite" else "%s"
    row = database.row(f"SELECT plan, stripe_subscription_status FROM users WHERE id = {mark}", [1])
    assert row is not None
    return tuple(row)


def events(database: Database) -> dict[str, tuple[str, int]]:
    rows = database.run("SELECT id, status, attempts FROM stripe_billing_events")
    return {event_id: (status, attempts) for event_id, status, attempts in rows}


@pytest.mark.parametrize("thin_first", [True, False], ids=["thin first", "snapshot first"])
def test_a_change_delivered_thin_and_snapshot_applies_once_on_the_dbapi_store(
    database: Database, stripe_api: responses.RequestsMock, thin_first: bool
) -> None:
    app = dbapi_app(database, thin_config())[0]
    fetch = serve(stripe_api, subscription_object(status="active"))
    snapshot = subscription_event(event_id="evt_snap", status="active", created=NOW - 60)
    thin = notification(event_id="evt_thin", snapshot_event="evt_snap")
    client = app.test_client()

    with record_signals() as sent:
        if thin_first:
            assert post_event(client, thin, secret=THIN_SECRET, path=THIN).status_code == 200
        assert post_event(client, snapshot).status_code == 200
        if not thin_first:
            assert post_event(client, thin, secret=THIN_SECRET, path=THIN).status_code == 200

    assert plan_of(database) == ("pro", "active")
    # thin first: its claim records the snapshot's id, and the snapshot delivery counts one more
    claimed = 2 if thin_first else 1
    assert events(database) == {"evt_snap": ("processed", claimed), "evt_thin": ("processed", 1)}
    assert len(fetch.calls) == (1 if thin_first else 0)
    assert len(sent["plan_changed"]) == 1
