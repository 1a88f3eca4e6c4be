"""Upgrades that say what to do: an app whose database has the previous release's schema
(tests/fixtures/schema/0.1.0.*.sql) is told at start-up what it lacks, its webhooks answer
503 naming the fix, and following docs/migrating.md ("Upgrading Flask-Stripe-Billing")
brings it to current: ``flask billing schema --upgrade`` for a DB-API app (SQLite, and
PostgreSQL when DATABASE_URL names one), ``flask db upgrade`` for a Flask-Migrate app."""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import responses
import sqlalchemy as sa
from conftest import DATABASE_URL, ON_POSTGRES
from dbapi_support import LIBRARY_TABLES, Database, dbapi_app, make_database
from flask import Flask, render_template_string
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column
from support import SECRET, post_event, subscription_event
from test_checkout import CONFIG
from test_success_route import COMPLETED, SESSION, SESSION_URL

from flask_stripe_billing import (
    BillingMixin,
    InMemoryUserStore,
    SchemaOutdatedError,
    SQLAlchemyUserStore,
    StripeBilling,
)
from flask_stripe_billing.stores.schema import billing_columns, library_metadata, schema_statements

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
        "CREATE INDEX ix_stripe_billing_usage_reported ON "
        "stripe_billing_usage (user_id, reported_at);",
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
    # on either database: each table, column and index this release defines
    defined = {table.name: table for table in library_metadata().tables.values()}
    defined["users"] = billing_columns("users")
    found = table_columns(database)
    engine = catalog_engine(database)
    try:
        inspector = sa.inspect(engine)
        for name, table in defined.items():
            assert {column.name for column in table.c} <= found[name], name
            indexes = {index["name"] for index in inspector.get_indexes(name)}
            assert {index.name for index in table.indexes} <= indexes, name
    finally:
        engine.dispose()
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


# The usage listing's index: (user_id, reported_at), however the table was made

#: The index behind ``UsageLog.list_usage(user_id=...)``, the operations page's listing.
USAGE_LISTING = ("ix_stripe_billing_usage_reported", ["user_id", "reported_at"])


def catalog_engine(database: Database) -> sa.Engine:
    """An engine over ``database``'s own connections, to read its catalog."""
    url = "sqlite://" if database.dialect == "sqlite" else "postgresql+psycopg://"
    return sa.create_engine(url, creator=database.connect)


def usage_indexes(database: Database) -> dict[str, list[str]]:
    """The usage table's indexes (name → columns), as the database's catalog has them."""
    engine = catalog_engine(database)
    try:
        found = sa.inspect(engine).get_indexes("stripe_billing_usage")
    finally:
        engine.dispose()
    return {str(index["name"]): list(index["column_names"]) for index in found}


def test_schema_upgrade_creates_the_usage_listing_index(database: Database) -> None:
    app, _ = dbapi_app(database)

    run_script(
        database, app.test_cli_runner().invoke(args=["billing", "schema", "--upgrade"]).output
    )

    name, columns = USAGE_LISTING
    assert usage_indexes(database)[name] == columns


def test_the_printed_schema_creates_the_usage_listing_index(tmp_path: Path) -> None:
    fresh = make_database(tmp_path)
    fresh.create()
    try:
        name, columns = USAGE_LISTING
        assert usage_indexes(fresh)[name] == columns
        if fresh.dialect == "sqlite":  # and the account's listing uses it
            plan = fresh.run(
                "EXPLAIN QUERY PLAN SELECT * FROM stripe_billing_usage WHERE user_id = '1' "
                "ORDER BY reported_at DESC, identifier DESC LIMIT 51"
            )
            assert any(name in str(row) for row in plan), plan
    finally:
        fresh.drop("users")


def test_create_all_creates_the_usage_listing_index(make_host: Callable[..., Any]) -> None:
    host = make_host()

    with host.app.app_context():
        found = sa.inspect(host.db.engine).get_indexes("stripe_billing_usage")

    name, columns = USAGE_LISTING
    assert {index["name"]: index["column_names"] for index in found}[name] == columns


# A Flask-SQLAlchemy app: its pages keep working, gates and templates degrade


class Host:
    def __init__(self, url: str, **config: Any) -> None:
        self.db = SQLAlchemy()
        db = self.db

        class User(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
            __tablename__ = "users"
            id: Mapped[int] = mapped_column(primary_key=True)
            email: Mapped[str | None] = mapped_column(sa.String(255))

        self.User = User
        self.app = Flask(__name__)
        self.app.config.update(
            TESTING=True,
            SQLALCHEMY_DATABASE_URI=url,
            STRIPE_WEBHOOK_SECRET=SECRET,
            STRIPE_BILLING_FEATURES={"pro": ["export"]},
            **config,
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

        @self.app.get("/me/<int:user_id>")
        def me(user_id: int) -> str:
            """What a login view and a settings page do: load the user, ask the mixin."""
            user = db.session.get(User, user_id)
            assert user is not None
            same = User.query.filter_by(email=user.email).one()
            return (
                f"{same.email} {user.plan} paying={user.is_paying()} trial={user.on_trial()} "
                f"grace={user.on_grace_period()} export={user.has_feature('export')} "
                f"seats={user.billing_account.subscription_quantity}"
            )

        @self.app.post("/signup")
        def signup() -> str:
            user = User(id=2, email="new@example.com")  # (user 1 was inserted with its id)
            db.session.add(user)
            db.session.commit()
            return str(user.id)

    def upgrade(self) -> None:
        """What a migration adds: the statements ``schema --upgrade`` prints."""
        runner = self.app.test_cli_runner()
        script = runner.invoke(args=["billing", "schema", "--upgrade"]).output
        with self.app.app_context(), self.db.engine.begin() as connection:
            for statement in statements_of(script):
                connection.exec_driver_sql(statement)

    def close(self) -> None:
        with self.app.app_context():
            self.db.session.remove()
            self.db.engine.dispose()


@pytest.fixture
def old_host(database: Database, tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """Start a Flask-SQLAlchemy app on ``database`` (0.1.0's schema; PostgreSQL with
    DATABASE_URL), user 1 on pro as 0.1 left it."""
    database.run("UPDATE users SET plan = 'pro', stripe_subscription_status = 'active'")
    url = DATABASE_URL if ON_POSTGRES else f"sqlite:///{tmp_path / 'billing.db'}"
    made: list[Host] = []

    def start(**config: Any) -> Host:
        made.append(Host(url, **config))
        return made[-1]

    yield start
    for host in made:
        host.close()


def test_an_sqlalchemy_app_lagging_behind_is_reported_once_and_its_pages_keep_rendering(
    old_host: Callable[..., Host], caplog: pytest.LogCaptureFixture
) -> None:
    host = old_host()
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

    host.upgrade()

    event = subscription_event(customer="cus_test", status="active")
    assert post_event(client, event).status_code == 200
    assert client.get("/page").get_data(as_text=True) == "plan: pro"
    assert client.get("/pro").get_data(as_text=True) == "pro page"


def test_before_the_migration_the_hosts_own_queries_and_the_mixin_answer_from_0_1s_columns(
    old_host: Callable[..., Host], caplog: pytest.LogCaptureFixture
) -> None:
    host = old_host()
    client = host.app.test_client()
    assert len(billing_errors(caplog)) == 1

    me = client.get("/me/1")  # loading the user selects no column the table lacks
    assert me.status_code == 200, me.get_data(as_text=True)
    assert me.get_data(as_text=True) == (
        "user1@example.com pro paying=True trial=False grace=False export=True seats=None"
    )
    signup = client.post("/signup")  # an INSERT names no missing column either
    assert signup.status_code == 200
    assert client.get(f"/me/{signup.get_data(as_text=True)}").get_data(as_text=True) == (
        "new@example.com free paying=False trial=False grace=False export=False seats=None"
    )
    webhook = post_event(client, subscription_event(customer="cus_test", status="active"))
    assert webhook.status_code == 503
    assert webhook.get_json()["details"]["command"] == MIGRATE
    assert len(billing_errors(caplog)) == 1

    host.upgrade()

    event = subscription_event(customer="cus_test", status="trialing")
    trialing = event["data"]["object"]
    trialing["trial_end"] = int(time.time()) + 7 * 86400
    trialing.pop("quantity", None)
    trialing["items"]["data"][0]["quantity"] = 3
    assert post_event(client, event).status_code == 200
    assert client.get("/me/1").get_data(as_text=True) == (
        "user1@example.com pro paying=True trial=True grace=False export=True seats=3"
    )
    with host.app.app_context():
        user = host.db.session.get(host.User, 1)
        assert (user.trial_end is not None, user.subscription_quantity) == (True, 3)


def test_before_the_migration_a_sync_from_stripe_is_refused_before_writing(
    old_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    """``billing.sync_checkout_session`` (a success page) raises the webhook's 503 error,
    a BillingError the page can show, rather than a database error mid-write."""
    host = old_host(**CONFIG)
    stripe_api.add(responses.GET, SESSION_URL, json=COMPLETED)

    with host.app.app_context(), pytest.raises(SchemaOutdatedError) as refused:
        host.billing.sync_checkout_session(SESSION["id"])

    assert refused.value.details["command"] == MIGRATE
    assert "users.trial_end" in refused.value.details["missing"]
    with host.app.app_context():
        row = host.db.session.execute(sa.text("SELECT stripe_subscription_id FROM users"))
        assert row.scalar() is None


# A Flask-Migrate app: examples/factory_app, from 0.1.0's revision to head


def drop_factory_tables(url: str) -> None:
    """The factory example's tables, and Alembic's, gone from ``url``'s database."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for table in ("users", *LIBRARY_TABLES, "alembic_version"):
            connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}"')
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def factory_app(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Start the factory example on a database its 0.1.0 revision made (SQLite, or
    DATABASE_URL's PostgreSQL), with a@b.c linked to ``cus_test``."""
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    from factory_app import create_app
    from factory_app.extensions import db

    for name in ("DATABASE_URL", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    url = DATABASE_URL if request.param == "postgresql" else f"sqlite:///{tmp_path / 'factory.db'}"
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "WTF_CSRF_ENABLED": False,
    }
    drop_factory_tables(url)
    first = create_app(config)
    with first.app_context():
        flask_migrate.upgrade(revision=OLD_REVISION)  # the app as 0.1.0 left it
        db.session.execute(
            sa.text("INSERT INTO users (email, stripe_customer_id) VALUES ('a@b.c', 'cus_test')")
        )
        db.session.commit()
        db.engine.dispose()
    started: list[Flask] = []

    def start() -> Flask:
        started.append(create_app(config))
        return started[-1]

    yield start, db
    for app in started:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    drop_factory_tables(url)


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
    assert MIGRATE in answer.get_json()["message"]
    for page in ("/", "/login", "/pricing"):  # the host's pages still render
        assert app.test_client().get(page).status_code == 200
    # Signing in queries the users table; each page then loads the user (Flask-Login's
    # user_loader): neither selects the columns the migration adds.
    browser = app.test_client()
    assert browser.post("/login", data={"email": "a@b.c"}).status_code == 302
    home = browser.get("/")
    assert home.status_code == 200
    assert "Signed in as <b>a@b.c</b> (free)" in home.get_data(as_text=True)
    newcomer = app.test_client()  # a new user: an INSERT without them
    assert newcomer.post("/login", data={"email": "new@b.c"}).status_code == 302
    assert newcomer.get("/pricing").status_code == 200

    with app.app_context():
        flask_migrate.upgrade()  # docs/migrating.md: flask db upgrade

    assert post_event(app.test_client(), event).status_code == 200
    with app.app_context():
        found = sa.inspect(db.engine).get_indexes("stripe_billing_usage")
    assert {i["name"]: i["column_names"] for i in found}[USAGE_LISTING[0]] == USAGE_LISTING[1]
    assert "Signed in as <b>a@b.c</b> (pro)" in browser.get("/").get_data(as_text=True)
    assert browser.get("/pro").status_code == 200
    with app.app_context():
        plan = db.session.execute(sa.text("SELECT plan FROM users WHERE email = 'a@b.c'")).scalar()
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
