"""Purchases through a DBAPIUserStore (plain SQL): a purchase, its refund before and after
the session, and a dispute, on SQLite and on PostgreSQL with DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dbapi_support import Database, dbapi_app, make_database
from purchase_support import (
    CONFIG,
    NOW,
    PI,
    charge_refunded_event,
    dispute_event,
    refund_event,
    session_event,
)
from support import post_event

from flask_stripe_billing.testing import get_account


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    made = make_database(tmp_path)
    made.create()
    made.add_user(1, stripe_customer_id="cus_test")
    yield made
    made.drop("users")


def test_a_purchase_with_refunds_and_a_dispute_in_plain_sql(database: Database) -> None:
    app, store = dbapi_app(database, CONFIG)
    client = app.test_client()
    events = [
        refund_event(amount=500, created=NOW - 90),  # before its session
        session_event(product="lifetime", created=NOW - 100),
        charge_refunded_event(amount_refunded=500, created=NOW - 80),
        dispute_event("charge.dispute.closed", status="lost", created=NOW - 10),
    ]
    for event in [*events, events[1]]:
        assert post_event(client, event).status_code == 200

    with app.app_context():
        (purchase,) = store.purchases_of("1")
        assert (purchase.id, purchase.product, purchase.status) == (
            PI,
            "lifetime",
            "partially_refunded",
        )
        assert (purchase.amount_refunded, purchase.dispute_status) == (500, "lost")
        assert [r.id for r in purchase.refunds] == ["re_3PurchaseTest000001"]
        assert not app.extensions["stripe_billing"].account_of("1").purchased_features
        assert get_account(app, 1).plan == "free"
