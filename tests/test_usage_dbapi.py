"""Usage on the DB-API store, over the tables ``flask billing schema`` prints: a report
joins the store's transaction in progress, and the sender claims rows as on SQLAlchemy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from dbapi_support import Database, make_database
from flask import Flask
from support import SECRET
from usage_support import API_KEY, accept_meter_events, meter_requests

from flask_stripe_billing import DBAPIUserStore, StripeBilling, ValidationError


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    made = make_database(tmp_path)
    made.create()
    made.add_user(1, stripe_customer_id="cus_db")
    made.add_user(2)
    yield made
    made.drop("users")


def app_over(database: Database) -> tuple[Flask, DBAPIUserStore, StripeBilling]:
    app = Flask(__name__)
    app.config.update(TESTING=True, STRIPE_WEBHOOK_SECRET=SECRET, STRIPE_API_KEY=API_KEY)
    store = DBAPIUserStore(database.connect, close=True)
    return app, store, StripeBilling(app, user_store=store)


def rows(database: Database) -> list[tuple[object, ...]]:
    return database.run(
        'SELECT "identifier", "status", "customer_id", "value", "attempts" '
        'FROM "stripe_billing_usage" ORDER BY "identifier"'
    )


def test_a_report_commits_or_rolls_back_with_the_stores_transaction(
    database: Database, stripe_api: responses.RequestsMock
) -> None:
    app, store, billing = app_over(database)
    accept_meter_events(stripe_api)
    with app.app_context():
        with pytest.raises(RuntimeError), store.transaction():
            billing.report_usage(1, "api_calls", 5, identifier="rolled_back")
            raise RuntimeError("the host's work failed")
        with store.transaction():
            billing.report_usage(1, "api_calls", 5, identifier="d1")
            billing.report_usage(1, "api_calls", 5, identifier="d1")
        billing.report_usage(2, "api_calls", 1, identifier="d2")  # a transaction of its own
        assert rows(database) == [("d1", "pending", None, 5, 0), ("d2", "pending", None, 1, 0)]

        report = billing.send_usage()

        assert billing.usage_remaining(1, "api_calls") is None
        with pytest.raises(ValidationError):
            billing.report_usage(1, "api_calls", -1)
    assert (report.sent, report.waiting) == (1, 1)
    (form,) = meter_requests(stripe_api)
    sent = (form["identifier"], form["payload[stripe_customer_id]"], form["payload[value]"])
    assert sent == ("d1", "cus_db", "5")
    assert rows(database) == [("d1", "sent", "cus_db", 5, 1), ("d2", "pending", None, 1, 0)]


def test_flask_billing_usage_lists_the_rows(database: Database) -> None:
    app, _, billing = app_over(database)
    with app.app_context():
        billing.report_usage(2, "api_calls", 3, identifier="listed")
    result = app.test_cli_runner().invoke(args=["billing", "usage"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "1 pending, 0 sent, 0 failed"
    assert "listed" in result.output
