"""InMemoryUserStore, SQLAlchemyUserStore and DBAPIUserStore pass the store contract kit
(``flask_stripe_billing.testing.StoreContract``) that hosts run against their own
stores, on SQLite and, with DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Host
from dbapi_support import make_database

from flask_stripe_billing import (
    BillingAccount,
    DBAPIUserStore,
    InMemoryUserStore,
    SQLAlchemyUserStore,
)
from flask_stripe_billing.testing import StoreContract


class TestShippedStores(StoreContract):
    """The shipped stores, each holding user 1 (customer ``cus_test``) and user 2."""

    linked_account = BillingAccount(
        user_id="1", email="user1@example.com", stripe_customer_id="cus_test"
    )

    @pytest.fixture(params=["memory", "sqlalchemy", "dbapi"])
    def make_store(
        self, request: Any, make_host: Callable[..., Host], tmp_path: Path
    ) -> Iterator[Any]:
        """A store holding user 1 (customer ``cus_test``) and user 2 (no customer yet)."""
        if request.param == "dbapi":  # sqlite3, or psycopg on PostgreSQL
            database = make_database(tmp_path)
            database.create()
            database.add_user(1, stripe_customer_id="cus_test")
            database.add_user(2)
            yield DBAPIUserStore(database.connect, close=True)
            database.drop("users")
            return
        if request.param == "memory":
            yield InMemoryUserStore(
                [
                    BillingAccount(
                        user_id="1", email="user1@example.com", stripe_customer_id="cus_test"
                    ),
                    BillingAccount(user_id="2", email="user2@example.com"),
                ]
            )
            return
        host = make_host()
        host.add_user(1, stripe_customer_id="cus_test")
        host.add_user(2)
        with host.app.app_context():
            yield host.billing.user_store

    @pytest.fixture
    def tick(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
        """The stores' clock, moved a minute on each tick (a test-set time, not the wall's)."""
        now = [datetime(2030, 6, 1, 12, 0, tzinfo=UTC)]
        for module in ("memory", "sqlalchemy.log", "rows", "dbapi.log"):
            monkeypatch.setattr(f"flask_stripe_billing.stores.{module}.utcnow", lambda: now[0])

        def tick() -> None:
            now[0] += timedelta(minutes=1)

        return tick


def test_sqlalchemy_store_is_a_flask_sqlalchemy_user_store(make_host: Callable[..., Host]) -> None:
    host = make_host()
    assert isinstance(host.billing.user_store, SQLAlchemyUserStore)
    assert "stripe_billing_events" in host.db.metadata.tables
