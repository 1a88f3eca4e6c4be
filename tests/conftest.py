"""Host apps built the way a user builds them: public API only."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import responses
import sqlalchemy as sa
import sqlalchemy.orm
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column
from support import SECRET

from flask_stripe_billing import BillingMixin, SQLAlchemyUserStore, StripeBilling, signals

#: Headless Chromium's fixtures (driver, artifacts, require_browser), for the browser tests.
pytest_plugins = ["browser_support"]

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite://")
#: Whether the suite runs on PostgreSQL (``postgresql://`` or ``postgresql+driver://``).
ON_POSTGRES = DATABASE_URL.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")
NEEDS_POSTGRES = "needs PostgreSQL: DATABASE_URL=postgresql+psycopg://... (.ci/run sets it)"


#: Settings the extension reads from the environment when app.config lacks them.
SETTING_PREFIXES = ("STRIPE_", "PRO_PLAN_NAME")


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without billing settings in the environment (a developer's
    shell may export STRIPE_API_KEY): what a test configures is all its app sees."""
    for name in list(os.environ):
        if name.startswith(SETTING_PREFIXES):
            monkeypatch.delenv(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``@pytest.mark.postgres`` tests skip without PostgreSQL, unless REQUIRE_POSTGRES=1."""
    if ON_POSTGRES or os.environ.get("REQUIRE_POSTGRES") == "1":
        return
    for item in items:
        if item.get_closest_marker("postgres") is not None:
            item.add_marker(pytest.mark.skip(reason=NEEDS_POSTGRES))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under REQUIRE_POSTGRES=1 a ``postgres`` test that cannot run fails, before its fixtures."""
    required = os.environ.get("REQUIRE_POSTGRES") == "1"
    if required and not ON_POSTGRES and item.get_closest_marker("postgres") is not None:
        message = (
            f"REQUIRE_POSTGRES=1 but DATABASE_URL is {DATABASE_URL!r}; this test {NEEDS_POSTGRES}"
        )
        pytest.fail(message, pytrace=False)


@dataclass
class Host:
    """A test host app: the Flask app, its db, its User model and the extension."""

    app: Flask
    db: SQLAlchemy
    User: Any
    billing: StripeBilling

    @property
    def client(self) -> Any:
        return self.app.test_client()

    def add_user(self, user_id: int, **fields: Any) -> None:
        with self.app.app_context():
            fields.setdefault("email", f"user{user_id}@example.com")
            self.db.session.add(self.User(id=user_id, **fields))
            self.db.session.commit()

    def start_over(self, *tables: str) -> None:
        """No events, no rows in the library's ``tables``, and user 1 (customer
        ``cus_test``) alone: for a host shared by a module's examples."""
        with self.app.app_context():
            session = self.db.session
            for table in ("stripe_billing_events", *tables):
                session.execute(sa.delete(self.db.metadata.tables[table]))
            session.execute(sa.delete(self.User))
            session.commit()
        self.add_user(1, stripe_customer_id="cus_test")

    def drop(self) -> None:
        """Drop the host's tables and close its connections: the end of its test."""
        with self.app.app_context():
            self.db.session.remove()
            self.db.drop_all()
            self.db.engine.dispose()

    def user(self, user_id: int) -> Any:
        """The user's row as stored now (detached, fresh from the database), with
        BillingMixin's deferred columns loaded (a detached row cannot load them later)."""
        with self.app.app_context():
            loaded = [sa.orm.undefer_group("stripe_billing")]
            row = self.db.session.get(self.User, user_id, options=loaded)
            if row is not None:
                self.db.session.expunge(row)
            return row

    def events(self) -> list[dict[str, Any]]:
        """The event-log rows, oldest first."""
        with self.app.app_context():
            table = self.db.metadata.tables["stripe_billing_events"]
            rows = self.db.session.execute(sa.select(table).order_by(table.c.received_at))
            return [dict(row._mapping) for row in rows]

    def subscriptions(self) -> list[dict[str, Any]]:
        """The library's subscription records (one row per Stripe subscription), by id."""
        with self.app.app_context():
            table = self.db.metadata.tables["stripe_billing_subscriptions"]
            rows = self.db.session.execute(sa.select(table).order_by(table.c.id))
            return [dict(row._mapping) for row in rows]

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        """The record of one Stripe subscription; fails the test if there is none."""
        rows = [row for row in self.subscriptions() if row["id"] == subscription_id]
        assert len(rows) == 1, f"no record of {subscription_id}: {self.subscriptions()}"
        return rows[0]


#: The pace of calls to the mocked Stripe API (STRIPE_BILLING_API_RATE's highest).
MOCKED_API_RATE = "1000"


def build_host(
    config: dict[str, Any] | None = None,
    *,
    url_prefix: str | None = None,
    create_tables: bool = True,
    **billing_options: Any,
) -> Host:
    """A Flask app with a User model using BillingMixin, set up with StripeBilling.

    ``create_tables=False`` leaves the database alone: for an app in another
    process over the tables a test already made.
    """
    db = SQLAlchemy()

    class User(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str | None] = mapped_column(sa.String(255))

    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=DATABASE_URL,
        STRIPE_WEBHOOK_SECRET=SECRET,
    )
    app.config.update(config or {})
    # Stripe's API is mocked: no pace to keep, so calls don't wait 1/20 s for their turn.
    # A test of the pace names its own rate (None: the default).
    app.config.setdefault("STRIPE_BILLING_API_RATE", MOCKED_API_RATE)
    db.init_app(app)
    billing = StripeBilling(user_store=SQLAlchemyUserStore(db, User), **billing_options)
    if url_prefix is None:
        billing.init_app(app)
    else:
        app.register_blueprint(billing.blueprint, url_prefix=url_prefix)
    if create_tables:
        with app.app_context():
            db.drop_all()
            db.create_all()
    return Host(app=app, db=db, User=User, billing=billing)


@pytest.fixture
def make_host() -> Iterator[Callable[..., Host]]:
    """Build hosts with extra config; their tables are dropped afterwards."""
    hosts: list[Host] = []

    def make(config: dict[str, Any] | None = None, **options: Any) -> Host:
        host = build_host(config, **options)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.drop()


@pytest.fixture
def host(make_host: Callable[..., Host]) -> Host:
    """A host app with user 1 linked to customer ``cus_test``."""
    made = make_host()
    made.add_user(1, stripe_customer_id="cus_test")
    return made


#: Where Checkout lists a customer's open sessions, and Stripe's answer when there are none.
OPEN_SESSIONS = "https://api.stripe.com/v1/checkout/sessions"
NO_SESSIONS = {"object": "list", "data": [], "has_more": False, "url": "/v1/checkout/sessions"}


@pytest.fixture
def stripe_api() -> Iterator[responses.RequestsMock]:
    """Stripe's HTTP API, mocked with ``responses``: stripe-python runs for real."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        # Checkout lists the customer's open sessions to expire them: none, unless a test
        # says otherwise (``mock.replace``).
        mock.add(responses.GET, OPEN_SESSIONS, json=NO_SESSIONS)
        yield mock


@pytest.fixture
def received() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Every signal sent during the test, by name, with its keyword arguments."""
    calls: dict[str, list[dict[str, Any]]] = {}
    receivers = []
    for name in (
        "webhook_received",
        "plan_changed",
        "subscription_status_changed",
        "customer_not_found",
        "webhook_failed",
        "checkout_session_created",
    ):
        signal = getattr(signals, name)

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            calls.setdefault(_name, []).append({"sender": sender, **kwargs})

        signal.connect(receiver)
        receivers.append((signal, receiver))
    yield calls
    for signal, receiver in receivers:
        signal.disconnect(receiver)
