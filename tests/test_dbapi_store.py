"""What is particular to DBAPIUserStore: connections, names, columns, and ``flask billing schema``
(the shared contract is in test_stores.py, the pipeline in test_dbapi_pipeline.py)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ON_POSTGRES, Host
from dbapi_support import psycopg_url
from flask import Flask, g
from support import SECRET, post_event, subscription_event

from flask_stripe_billing import DBAPIUserStore, StripeBilling
from flask_stripe_billing.stores.schema import schema_script

FLASKR_USER = (
    "CREATE TABLE user (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "username TEXT UNIQUE NOT NULL, password TEXT NOT NULL)"
)


def sqlite_file(tmp_path: Path, *statements: str) -> Path:
    """A sqlite3 database file made by ``statements`` (scripts, ``;``-separated)."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.executescript(statement)
    return path


def flaskr_db(tmp_path: Path) -> Path:
    """Flask's tutorial database with the billing schema applied and one user."""
    path = sqlite_file(tmp_path, FLASKR_USER, schema_script("sqlite", users_table="user"))
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO user (username, password, stripe_customer_id) VALUES ('ada', 'x', 'cus_1')"
        )
    return path


# connections


def test_a_per_request_connection_is_committed_and_left_open_for_its_owner(
    tmp_path: Path,
) -> None:
    path = flaskr_db(tmp_path)
    app = Flask(__name__)
    app.config.update(TESTING=True, STRIPE_WEBHOOK_SECRET=SECRET)
    opened: list[sqlite3.Connection] = []

    def get_db() -> sqlite3.Connection:
        if "db" not in g:
            g.db = sqlite3.connect(path)
            opened.append(g.db)
        return g.db  # type: ignore[no-any-return]

    StripeBilling(app, user_store=DBAPIUserStore(get_db, users_table="user"))
    opened.clear()  # the start-up inspection's, in an app context of its own

    event = subscription_event(customer="cus_1", status="active", event_id="evt_flaskr")
    with app.app_context():
        assert post_event(app.test_client(), event).status_code == 200
        (connection,) = opened  # one connection for the request, the request's own
        assert not connection.in_transaction  # committed…
        connection.execute("SELECT 1")  # … and still open
    with sqlite3.connect(path) as other:
        row = other.execute("SELECT plan, stripe_subscription_status FROM user").fetchone()
    assert row == ("pro", "active")


def test_store_outside_a_transaction_commits_each_write_at_once(tmp_path: Path) -> None:
    path = flaskr_db(tmp_path)
    store = DBAPIUserStore(lambda: sqlite3.connect(path), close=True, users_table="user")

    account = store.set_customer_id("1", "cus_other")  # as Checkout calls it: no transaction

    assert account.stripe_customer_id == "cus_other"
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT stripe_customer_id FROM user").fetchone() == ("cus_other",)


def test_close_true_closes_each_connection_after_its_transaction(tmp_path: Path) -> None:
    path = flaskr_db(tmp_path)
    opened: list[sqlite3.Connection] = []

    def connect() -> sqlite3.Connection:
        opened.append(sqlite3.connect(path))
        return opened[-1]

    store = DBAPIUserStore(connect, close=True, users_table="user")
    with store.transaction():
        store.get("1")
        store.apply("1", {"plan": "pro"})
    assert len(opened) == 1  # one connection for the whole transaction
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")


def autocommit_connect(tmp_path: Path) -> tuple[Callable[[], Any], str]:
    """Connections in autocommit mode (sqlite3's ``isolation_level=None``, psycopg's
    ``autocommit=True``) over the users table of ``flaskr_db``, and the table's name."""
    if ON_POSTGRES:
        import psycopg

        url = psycopg_url()
        with psycopg.connect(url) as connection:
            connection.execute('DROP TABLE IF EXISTS "user"')
            connection.execute(
                'CREATE TABLE "user" (id SERIAL PRIMARY KEY, username TEXT, password TEXT)'
            )
            for statement in schema_script("postgresql", users_table="user").split(";")[:-1]:
                if "stripe_billing" not in statement:
                    connection.execute(statement)
            connection.execute(
                """INSERT INTO "user" (username, password, stripe_customer_id) """
                "VALUES ('ada', 'x', 'cus_1')"
            )
        return lambda: psycopg.connect(url, autocommit=True), "user"
    path = flaskr_db(tmp_path)
    return lambda: sqlite3.connect(path, isolation_level=None), "user"


def test_a_connection_in_autocommit_mode_still_gets_one_transaction(tmp_path: Path) -> None:
    connect, table = autocommit_connect(tmp_path)
    store = DBAPIUserStore(connect, close=True, users_table=table)
    try:
        with pytest.raises(RuntimeError, match="boom"), store.transaction():
            store.apply("1", {"plan": "pro", "subscription_status": "active"})
            raise RuntimeError("boom")

        assert store.get("1").plan == "free"  # rolled back: BEGIN was explicit
        with store.transaction():
            store.apply("1", {"plan": "pro"})
        assert store.get("1").plan == "pro"
    finally:
        if ON_POSTGRES:
            with connect() as connection:
                connection.execute('DROP TABLE "user"')


@pytest.mark.parametrize(
    "row_factory",
    [
        sqlite3.Row,
        lambda cursor, row: {d[0]: v for d, v in zip(cursor.description, row, strict=True)},
    ],
    ids=["sqlite3.Row", "mappings"],
)
def test_the_hosts_row_factory_does_not_matter(tmp_path: Path, row_factory: Any) -> None:
    path = flaskr_db(tmp_path)

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path)
        connection.row_factory = row_factory
        return connection

    store = DBAPIUserStore(connect, close=True, users_table="user")
    account = store.apply("1", {"plan": "pro"})

    assert (account.user_id, account.plan, account.stripe_customer_id) == ("1", "pro", "cus_1")
    assert store.get_by_customer_id("cus_1") == account
    assert store.list_events() == []


def test_dialect_is_told_by_the_driver_or_refused(tmp_path: Path) -> None:
    path = flaskr_db(tmp_path)
    store = DBAPIUserStore(lambda: sqlite3.connect(path), close=True, users_table="user")
    assert store.session.dialect.name == "sqlite"

    class Unknown:
        def close(self) -> None: ...

    with pytest.raises(ValueError, match="pass dialect='sqlite' or dialect='postgresql'"):
        DBAPIUserStore(Unknown).get("1")
    with pytest.raises(ValueError, match="dialect must be one of"):
        DBAPIUserStore(Unknown, dialect="mysql")


# names and columns


@pytest.mark.parametrize(
    "options",
    [
        {"users_table": 'users"; DROP TABLE users; --'},
        {"users_table": "users "},
        {"event_table_name": "events;"},
        {"columns": {"plan": "plan = 'pro'"}},
        {"columns": {"user_id": "1=1"}},
    ],
)
def test_names_that_are_not_plain_identifiers_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        DBAPIUserStore(sqlite3.connect, **options)


def test_unknown_and_removed_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown BillingAccount fields"):
        DBAPIUserStore(sqlite3.connect, columns={"tier": "tier"})
    with pytest.raises(ValueError, match="no longer a BillingAccount field"):
        DBAPIUserStore(sqlite3.connect, columns={"last_event_at": "last_event_at"})


def test_a_missing_required_column_is_named(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path, "CREATE TABLE users (id INTEGER PRIMARY KEY, plan TEXT)")
    store = DBAPIUserStore(lambda: sqlite3.connect(path), close=True)

    with pytest.raises(ValueError, match=r"no column 'stripe_customer_id'.*flask billing schema"):
        store.get("1")


def test_optional_columns_the_table_lacks_are_left_out(tmp_path: Path) -> None:
    path = flaskr_db(tmp_path)  # no email column
    store = DBAPIUserStore(lambda: sqlite3.connect(path), close=True, users_table="user")

    assert "email" not in store.columns
    account = store.apply("1", {"plan": "pro", "subscription_status": "active"})
    assert (account.email, account.plan, account.subscription_status) == (None, "pro", "active")


def test_columns_with_other_names_and_text_ids(tmp_path: Path) -> None:
    path = sqlite_file(
        tmp_path,
        "CREATE TABLE members (handle TEXT PRIMARY KEY, mail TEXT, tier TEXT NOT NULL "
        "DEFAULT 'free', cus TEXT, sub TEXT, sub_status TEXT)",
        "INSERT INTO members (handle, mail, cus) VALUES ('ada', 'ada@example.com', 'cus_ada')",
    )
    store = DBAPIUserStore(
        lambda: sqlite3.connect(path),
        close=True,
        users_table="members",
        user_id_type=str,
        columns={
            "user_id": "handle",
            "email": "mail",
            "plan": "tier",
            "stripe_customer_id": "cus",
            "stripe_subscription_id": "sub",
            "subscription_status": "sub_status",
        },
    )

    account = store.apply("ada", {"plan": "pro", "subscription_status": "active"})

    assert (account.user_id, account.email, account.plan) == ("ada", "ada@example.com", "pro")
    assert store.get_by_customer_id("cus_ada") == account
    assert store.get("nobody") is None
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT tier, sub_status FROM members").fetchone() == ("pro", "active")


def test_values_travel_as_parameters_never_as_sql(tmp_path: Path) -> None:
    path = flaskr_db(tmp_path)
    store = DBAPIUserStore(lambda: sqlite3.connect(path), close=True, users_table="user")
    hostile = "cus_'); DROP TABLE user; --"

    store.set_customer_id("1", hostile)

    account = store.get_by_customer_id(hostile)
    assert account is not None and account.stripe_customer_id == hostile
    assert store.get("1 OR 1=1") is None


# flask billing schema


def schema(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["billing", "schema", *args])


def created_tables(script: str) -> set[str]:
    return set(re.findall(r"CREATE TABLE (\w+)", script))


def test_schema_prints_every_table_the_sqlalchemy_store_adds(
    make_host: Callable[..., Host],
) -> None:
    host = make_host()
    library_tables = set(host.db.metadata.tables) - {"users"}

    result = schema(host.app, "--dialect", "sqlite")

    assert result.exit_code == 0, result.output
    assert created_tables(result.output) == library_tables
    assert "ALTER TABLE users ADD COLUMN stripe_customer_id VARCHAR(255);" in result.output
    assert "CREATE UNIQUE INDEX ix_users_stripe_customer_id ON users (stripe_customer_id);" in (
        result.output
    )


def test_schema_for_a_dbapi_store_uses_its_table_column_names_and_dialect(tmp_path: Path) -> None:
    app = Flask(__name__)
    store = DBAPIUserStore(
        sqlite3.connect,
        dialect="postgresql",
        users_table="user",
        columns={"plan": "tier", "email": None},
        event_table_name="billing_events",
    )
    StripeBilling(app, user_store=store)

    output = schema(app).output

    assert "TIMESTAMP WITH TIME ZONE" in output  # PostgreSQL, the store's dialect
    assert created_tables(output) == {
        "billing_events",
        "stripe_billing_subscriptions",
        "stripe_billing_entitlements",
        "stripe_billing_usage",
        "stripe_billing_purchases",
    }
    assert """ALTER TABLE "user" ADD COLUMN tier VARCHAR(50) DEFAULT 'free' NOT NULL;""" in output
    assert "DATETIME" in schema(app, "--dialect", "sqlite").output
    assert "ALTER TABLE members ADD" in schema(app, "--users-table", "members").output


def test_schema_refuses_an_unknown_dialect(make_host: Callable[..., Host]) -> None:
    result = schema(make_host().app, "--dialect", "mysql")

    assert result.exit_code == 2
    assert "'mysql' is not one of" in result.output


def test_check_says_to_run_the_schema_when_the_tables_are_missing(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path, FLASKR_USER)
    app = Flask(__name__)
    app.config["STRIPE_WEBHOOK_SECRET"] = SECRET
    store = DBAPIUserStore(lambda: sqlite3.connect(path), close=True, users_table="user")
    StripeBilling(app, user_store=store)

    result = app.test_cli_runner().invoke(args=["billing", "check"])

    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if "missing  event log" in line]
    assert "table stripe_billing_events does not exist" in line
    assert "flask billing schema" in line


def test_check_names_a_library_table_missing_after_an_upgrade(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path, FLASKR_USER)
    app = Flask(__name__)
    app.config["STRIPE_WEBHOOK_SECRET"] = SECRET
    store = DBAPIUserStore(lambda: sqlite3.connect(path), close=True, users_table="user")
    StripeBilling(app, user_store=store)
    with sqlite3.connect(path) as connection:
        connection.executescript(schema(app).output)
        connection.execute("DROP TABLE stripe_billing_entitlements")

    result = app.test_cli_runner().invoke(args=["billing", "check"])

    # a problem: linking events read it too, so the webhooks answer 503 until it is there
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.output.splitlines() if "table stripe_billing_ent" in line]
    assert " ".join(line.split()) == (
        "missing entitlements table stripe_billing_entitlements does not exist (added in "
        'Unreleased (after 0.1.0), "Stripe Entitlements"): run flask billing schema --upgrade '
        "(the webhooks answer 503 until then)"
    )


def test_printed_sqlite_schema_runs_on_a_fresh_database_and_the_store_works_on_it(
    tmp_path: Path,
) -> None:
    path = sqlite_file(tmp_path, FLASKR_USER)
    app = Flask(__name__)
    app.config.update(TESTING=True, STRIPE_WEBHOOK_SECRET=SECRET)
    store = DBAPIUserStore(lambda: sqlite3.connect(path), close=True, users_table="user")
    StripeBilling(app, user_store=store)
    script = schema(app).output

    with sqlite3.connect(path) as connection:
        connection.executescript(script)
        connection.execute("INSERT INTO user (username, password) VALUES ('ada', 'x')")
    store.set_customer_id("1", "cus_1")
    response = post_event(app.test_client(), subscription_event(customer="cus_1"))

    assert response.status_code == 200
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT plan, stripe_subscription_id FROM user").fetchone()
        events = connection.execute("SELECT status FROM stripe_billing_events").fetchall()
    assert row == ("pro", "sub_test")
    assert events == [("processed",)]


@pytest.mark.postgres
def test_printed_postgresql_schema_runs_on_a_fresh_schema_and_the_store_works_on_it() -> None:
    import psycopg

    assert ON_POSTGRES
    url = psycopg_url()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("DROP SCHEMA IF EXISTS ddl_check CASCADE")
        admin.execute("CREATE SCHEMA ddl_check")
    app = Flask(__name__)
    app.config.update(TESTING=True, STRIPE_WEBHOOK_SECRET=SECRET)

    def connect() -> Any:
        return psycopg.connect(url, options="-c search_path=ddl_check")

    store = DBAPIUserStore(connect, close=True, users_table="user")
    StripeBilling(app, user_store=store)
    try:
        with connect() as connection:
            connection.execute('CREATE TABLE "user" (id SERIAL PRIMARY KEY, username TEXT)')
            connection.execute(schema(app).output)  # the store's dialect: told by psycopg
            connection.execute("""INSERT INTO "user" (username) VALUES ('ada')""")
        store.set_customer_id("1", "cus_1")
        response = post_event(app.test_client(), subscription_event(customer="cus_1"))

        assert response.status_code == 200
        with connect() as connection:
            row = connection.execute('SELECT plan, current_period_end FROM "user"').fetchone()
            tables = connection.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'ddl_check' ORDER BY table_name"
            ).fetchall()
        assert row is not None and row[0] == "pro"
        assert row[1].utcoffset() is not None  # timestamptz
        assert [name for (name,) in tables] == [
            "stripe_billing_entitlements",
            "stripe_billing_events",
            "stripe_billing_purchases",
            "stripe_billing_subscriptions",
            "stripe_billing_usage",
            "user",
        ]
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("DROP SCHEMA ddl_check CASCADE")


# the two SQL stores over one database


def test_dbapi_and_sqlalchemy_stores_read_each_others_rows(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    if ON_POSTGRES:
        import psycopg

        url = psycopg_url()
        host = make_host()

        def connect() -> Any:
            return psycopg.connect(url)
    else:
        path = tmp_path / "shared.db"
        host = make_host({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})

        def connect() -> Any:
            return sqlite3.connect(path)

    host.add_user(1, stripe_customer_id="cus_test")
    host.add_user(2)
    dbapi = DBAPIUserStore(connect, close=True)
    event = subscription_event(status="trialing", event_id="evt_sqlalchemy", period_end=2000000000)
    assert post_event(host.client, event).status_code == 200  # written by SQLAlchemyUserStore

    with host.app.app_context():
        orm = host.billing.user_store
        assert dbapi.get("1") == orm.get("1")
        assert dbapi.get("1").plan == "pro"
        assert dbapi.subscriptions_of("1") == orm.subscriptions_of("1")
        assert dbapi.get_event("evt_sqlalchemy") == orm.get_event("evt_sqlalchemy")

    event = subscription_event(
        customer="cus_two", user_id="2", status="active", event_id="evt_dbapi"
    )
    with dbapi.transaction():  # written by DBAPIUserStore
        dbapi.set_customer_id("2", "cus_two")
    app = Flask(__name__)
    app.config.update(TESTING=True, STRIPE_WEBHOOK_SECRET=SECRET)
    StripeBilling(app, user_store=dbapi)
    assert post_event(app.test_client(), event).status_code == 200

    with host.app.app_context():
        orm = host.billing.user_store
        assert orm.get("2") == dbapi.get("2")
        assert orm.get("2").subscription_status == "active"
        assert orm.subscriptions_of("2") == dbapi.subscriptions_of("2")
        assert orm.get_event("evt_dbapi") == dbapi.get_event("evt_dbapi")
        assert [e.id for e in orm.list_events()] == [e.id for e in dbapi.list_events()]
