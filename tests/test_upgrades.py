"""Upgrades that say what to do: an app whose database has the previous release's schema
(tests/fixtures/schema/0.1.0.*.sql) is told at start-up what it lacks, its webhooks answer
503 naming the fix, and following docs/migrating.md ("Upgrading Flask-Stripe-Billing")
brings it to current: ``flask billing schema --upgrade`` for a DB-API app (SQLite, and
PostgreSQL when DATABASE_URL names one), ``flask db upgrade`` for a Flask-Migrate app."""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
from dbapi_support import Database, dbapi_app, make_database
from flask import Flask, render_template_string
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column
from support import SECRET, post_event, subscription_event

from flask_stripe_billing import (
    BillingMixin,
    InMemoryUserStore,
    SQLAlchemyUserStore,
    StripeBilling,
)
from flask_stripe_billing.stores.schema import schema_statements

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "schema"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "factory_app"
#: What 0.1.0's schema lacks, as the errors name it.
LAGGING = [
    "stripe_billing_subscriptions",
    "stripe_billing_entitlements",
    "stripe_billing_usage",
    "stripe_billing_purchases",
    "users.trial_end",
    "users.subscription_quantity",
]
UNRELEASED_TABLE = 'Unreleased (after 0.1.0), "Each Stripe subscription is its own record"'
MIGRATE = "flask db migrate, then flask db upgrade"
SCHEMA_UPGRADE = "flask billing schema --upgrade"
#: The factory example's revision of 0.1.0 (users and the event log only).
OLD_REVISION = "507543da579d"
SQLITE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"
TIME = {"sqlite": "DATETIME", "postgresql": "TIMESTAMP WITH TIME ZONE"}


def previous_release_sql(dialect: str) -> list[str]:
    """The statements of the 0.1.0 fixture for ``dialect``."""
    return statements_of((FIXTURES / f"0.1.0.{dialect}.sql").read_text())


def statements_of(script: str) -> list[str]:
    """The statements of a printed script (as ``sqlite3 app.db < upgrade.sql`` runs them)."""
    lines = [line for line in script.splitlines() if not line.startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def run_script(database: Database, script: str) -> None:
    for statement in statements_of(script):
        database.run(statement)


def billing_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "flask_stripe_billing" and record.levelno >= logging.ERROR
    ]


def old_database(tmp_path: Path) -> Database:
    """The database as a 0.1.0 app left it, with user 1 linked to ``cus_test``."""
    database = make_database(tmp_path)
    database.drop("users")
    for statement in previous_release_sql(database.dialect):
        database.run(statement)
    database.made.extend(["users", "stripe_billing_events"])
    database.add_user(1, stripe_customer_id="cus_test")
    return database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    made = old_database(tmp_path)
    yield made
    made.drop("users")


def table_columns(database: Database) -> dict[str, set[str]]:
    """Each table of the database and its columns."""
    if database.dialect == "sqlite":
        names = [
            row[0] for row in database.run("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        return {
            name: {row[1] for row in database.run(f'PRAGMA table_info("{name}")')} for name in names
        }
    rows = database.run(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema()"
    )
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    return found


# A DB-API app: flask billing schema --upgrade


def test_a_dbapi_app_on_the_previous_schema_is_told_at_start_up_and_its_webhook_answers_503(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flask_stripe_billing")

    app, _ = dbapi_app(database)

    (record,) = billing_errors(caplog)
    message = record.getMessage()
    for name in LAGGING:
        assert name in message
    assert f"table stripe_billing_subscriptions (added in {UNRELEASED_TABLE})" in message
    assert "column users.trial_end (added in Unreleased (after 0.1.0)" in message
    assert f"Run {SCHEMA_UPGRADE}." in message
    assert record.missing == LAGGING  # type: ignore[attr-defined]
    assert record.command == SCHEMA_UPGRADE  # type: ignore[attr-defined]

    event = subscription_event(customer="cus_test", status="active")
    for _ in range(2):
        response = post_event(app.test_client(), event)
        assert response.status_code == 503
        body = response.get_json()
        assert body["error"] == "external_service_error"
        assert SCHEMA_UPGRADE in body["message"]
        assert body["details"] == {
            "service": "database",
            "missing": LAGGING,
            "command": SCHEMA_UPGRADE,
        }
    assert len(billing_errors(caplog)) == 1  # once, not per request
    assert database.run("SELECT count(*) FROM stripe_billing_events") == [(0,)]


def test_schema_upgrade_prints_only_what_the_database_lacks_and_brings_it_to_current(
    database: Database, tmp_path: Path
) -> None:
    app, store = dbapi_app(database)
    runner = app.test_cli_runner()

    result = runner.invoke(args=["billing", "schema", "--upgrade"])

    assert result.exit_code == 0, result.output
    statements = [line for line in result.output.splitlines() if line and line[0] not in "-\t )"]
    assert statements == [
        "CREATE TABLE stripe_billing_subscriptions (",
        "CREATE INDEX ix_stripe_billing_subscriptions_customer_id ON "
        "stripe_billing_subscriptions (customer_id);",
        "CREATE INDEX ix_stripe_billing_subscriptions_user_id ON "
        "stripe_billing_subscriptions (user_id);",
        "CREATE TABLE stripe_billing_entitlements (",
        "CREATE TABLE stripe_billing_usage (",
        "CREATE INDEX ix_stripe_billing_usage_account ON "
        "stripe_billing_usage (user_id, event_name, timestamp);",
        "CREATE INDEX ix_stripe_billing_usage_due ON "
        "stripe_billing_usage (status, next_attempt_at);",
        "CREATE TABLE stripe_billing_purchases (",
        "CREATE INDEX ix_stripe_billing_purchases_account ON "
        "stripe_billing_purchases (user_id, created);",
        f"ALTER TABLE users ADD COLUMN trial_end {TIME[database.dialect]};",
        "ALTER TABLE users ADD COLUMN subscription_quantity INTEGER;",
    ]
    run_script(database, result.output)

    assert store.schema_gaps() == ()
    again = runner.invoke(args=["billing", "schema", "--upgrade"])
    assert again.output.splitlines()[-1] == "-- Nothing to add: every table and column is there."
    # the same tables and columns as a database made from the current schema (plus 0.1's
    # stripe_last_event_at, which the upgrade notes keep)
    if database.dialect == "sqlite":
        (tmp_path / "fresh").mkdir()
        fresh = make_database(tmp_path / "fresh")
        fresh.run("CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(255))")
        for statement in schema_statements("sqlite"):
            fresh.run(statement)
        current = table_columns(fresh)
        current["users"].add("stripe_last_event_at")
        assert table_columns(database) == current
    # and it works: the webhook is processed, the new column filled
    upgraded, _ = dbapi_app(database)
    event = subscription_event(customer="cus_test", status="active")
    assert post_event(upgraded.test_client(), event).status_code == 200
    assert database.row("SELECT plan, subscription_quantity FROM users WHERE id = 1") == ("pro", 1)


def test_after_the_upgrade_the_running_app_answers_200_without_a_restart(
    database: Database,
) -> None:
    app, _ = dbapi_app(database)
    event = subscription_event(customer="cus_test", status="active")
    assert post_event(app.test_client(), event).status_code == 503

    script = app.test_cli_runner().invoke(args=["billing", "schema", "--upgrade"]).output
    run_script(database, script)

    assert post_event(app.test_client(), event).status_code == 200
    assert database.row("SELECT plan FROM users WHERE id = 1") == ("pro",)


def test_check_names_the_missing_trial_end_and_subscription_quantity_columns(
    database: Database,
) -> None:
    app, _ = dbapi_app(database)

    result = app.test_cli_runner().invoke(args=["billing", "check"])

    assert result.exit_code == 1
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    for column in ("trial_end", "subscription_quantity"):
        assert (
            f"missing billing columns column users.{column} does not exist (added in "
            f'Unreleased (after 0.1.0), "Upgrading from 0.1"): run {SCHEMA_UPGRADE} '
            "(the webhooks answer 503 until then)"
        ) in lines
    assert (
        "missing entitlements table stripe_billing_entitlements does not exist (added in "
        f'Unreleased (after 0.1.0), "Stripe Entitlements"): run {SCHEMA_UPGRADE} '
        "(the webhooks answer 503 until then)"
    ) in lines


def test_a_column_mapped_to_none_is_not_looked_for(database: Database) -> None:
    _, store = dbapi_app(database, columns={"trial_end": None, "subscription_quantity": None})

    assert [gap.name for gap in store.schema_gaps()] == LAGGING[:4]


def test_schema_upgrade_refuses_a_store_that_cannot_tell() -> None:
    app = Flask(__name__)
    app.config.update(STRIPE_WEBHOOK_SECRET=SECRET)
    StripeBilling(app, user_store=InMemoryUserStore())

    result = app.test_cli_runner().invoke(args=["billing", "schema", "--upgrade"])

    assert result.exit_code == 1
    assert "InMemoryUserStore cannot tell what its database lacks" in result.output


def test_a_new_database_is_not_reported_at_start_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before the first migration nothing exists yet: that is no lagging upgrade."""
    database = make_database(tmp_path)
    database.drop("users")

    dbapi_app(database)

    assert billing_errors(caplog) == []


# A Flask-SQLAlchemy app: its pages keep working, gates and templates degrade


class Host:
    def __init__(self, url: str) -> None:
        self.db = SQLAlchemy()
        db = self.db

        class User(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
            __tablename__ = "users"
            id: Mapped[int] = mapped_column(primary_key=True)
            email: Mapped[str | None] = mapped_column(sa.String(255))

        self.app = Flask(__name__)
        self.app.config.update(
            TESTING=True, SQLALCHEMY_DATABASE_URI=url, STRIPE_WEBHOOK_SECRET=SECRET
        )
        self.db.init_app(self.app)
        self.billing = StripeBilling(
            user_store=SQLAlchemyUserStore(self.db, User), current_user_id=lambda: "1"
        )
        self.billing.init_app(self.app)

        @self.app.get("/page")
        def page() -> str:
            return render_template_string("plan: {{ billing_account.plan if billing_account }}")

        @self.app.get("/pro")
        @self.billing.plan_required()
        def pro() -> str:
            return "pro page"


@pytest.fixture
def sqlite_file(tmp_path: Path) -> str:
    """A SQLite file with 0.1.0's schema and user 1 linked to ``cus_test``."""
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path)
    for statement in previous_release_sql("sqlite"):
        connection.execute(statement)
    connection.execute("INSERT INTO users (id, stripe_customer_id) VALUES (1, 'cus_test')")
    connection.commit()
    connection.close()
    return f"sqlite:///{path}"


def test_an_sqlalchemy_app_lagging_behind_is_reported_once_and_its_pages_keep_rendering(
    sqlite_file: str, caplog: pytest.LogCaptureFixture
) -> None:
    host = Host(sqlite_file)
    client = host.app.test_client()

    (record,) = billing_errors(caplog)
    assert f"Run {MIGRATE}." in record.getMessage()
    assert record.missing == LAGGING  # type: ignore[attr-defined]
    page = client.get("/page")
    assert page.status_code == 200
    assert page.get_data(as_text=True) == "plan: "  # no account while it cannot be read
    gated = client.get("/pro", headers={"Accept": "application/json"})
    assert gated.status_code == 503
    assert gated.get_json()["details"]["command"] == MIGRATE
    webhook = post_event(client, subscription_event(customer="cus_test", status="active"))
    assert webhook.status_code == 503
    assert MIGRATE in webhook.get_json()["message"]
    assert len(billing_errors(caplog)) == 1

    script = host.app.test_cli_runner().invoke(args=["billing", "schema", "--upgrade"]).output
    with host.app.app_context(), host.db.engine.begin() as connection:  # what a migration adds
        for statement in statements_of(script):
            connection.exec_driver_sql(statement)

    event = subscription_event(customer="cus_test", status="active")
    assert post_event(client, event).status_code == 200
    assert client.get("/page").get_data(as_text=True) == "plan: pro"
    assert client.get("/pro").get_data(as_text=True) == "pro page"


# A Flask-Migrate app: examples/factory_app, from 0.1.0's revision to head


@pytest.fixture
def factory_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    from factory_app import create_app
    from factory_app.extensions import db

    for name in ("DATABASE_URL", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'factory.db'}",
        "STRIPE_WEBHOOK_SECRET": SECRET,
    }
    first = create_app(config)
    with first.app_context():
        flask_migrate.upgrade(revision=OLD_REVISION)  # the app as 0.1.0 left it
        db.session.execute(
            sa.text(
                "INSERT INTO users (id, email, stripe_customer_id) VALUES (1, 'a@b.c', 'cus_test')"
            )
        )
        db.session.commit()
        db.engine.dispose()
    yield lambda: create_app(config), db


def test_a_flask_migrate_app_upgrades_by_flask_db_upgrade(
    factory_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    create_app, db = factory_app
    caplog.clear()

    app = create_app()  # the new release deployed, the migration not run yet

    (record,) = billing_errors(caplog)
    assert record.missing == LAGGING  # type: ignore[attr-defined]
    assert record.command == MIGRATE  # type: ignore[attr-defined]
    event = subscription_event(customer="cus_test", status="active")
    answer = post_event(app.test_client(), event)
    assert answer.status_code == 503
    assert answer.get_json()["details"]["missing"] == LAGGING
    for page in ("/", "/login", "/pricing"):  # the host's pages still render
        assert app.test_client().get(page).status_code == 200

    with app.app_context():
        flask_migrate.upgrade()  # docs/migrating.md: flask db upgrade

    assert post_event(app.test_client(), event).status_code == 200
    with app.app_context():
        plan = db.session.execute(sa.text("SELECT plan FROM users WHERE id = 1")).scalar()
        db.engine.dispose()
    assert plan == "pro"


def test_the_fixture_is_the_previous_release_schema() -> None:
    """The 0.1.0 fixture has what 0.1.0's migration made: users with stripe_last_event_at
    and no trial_end, the event log, nothing else of the library's."""
    connection = sqlite3.connect(":memory:")
    for statement in previous_release_sql("sqlite"):
        connection.execute(statement)
    tables = {
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    columns = {row[1] for row in connection.execute("PRAGMA table_info(users)")}

    assert tables == {"users", "stripe_billing_events"}
    assert "stripe_last_event_at" in columns
    assert not {"trial_end", "subscription_quantity"} & columns
