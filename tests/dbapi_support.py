"""Databases for the DB-API store: a sqlite3 file, or PostgreSQL through psycopg when
DATABASE_URL names one; their tables made by the SQL ``flask billing schema`` prints."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import DATABASE_URL, ON_POSTGRES
from flask import Flask
from support import SECRET

from flask_stripe_billing import DBAPIUserStore, StripeBilling
from flask_stripe_billing.stores.schema import schema_statements

#: The host's own users table before billing: what an app on raw SQL has.
USERS_TABLE = "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(255))"
LIBRARY_TABLES = (
    "stripe_billing_events",
    "stripe_billing_subscriptions",
    "stripe_billing_entitlements",
    "stripe_billing_usage",
    "stripe_billing_purchases",
)


def psycopg_url(url: str = DATABASE_URL) -> str:
    """DATABASE_URL as libpq takes it (without SQLAlchemy's ``+driver``)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@dataclass
class Database:
    """One database, reached through a new DB-API connection per ``connect()``."""

    dialect: str
    connect: Callable[[], Any]
    made: list[str] = field(default_factory=list)

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in a transaction of its own; its rows, if any."""
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, tuple(params))
            rows = list(cursor.fetchall()) if cursor.description else []
            connection.commit()
            return rows
        finally:
            connection.close()

    def create(self, users_table: str = USERS_TABLE, *, users: str = "users") -> None:
        """The host's users table, then every statement ``flask billing schema`` prints."""
        self.drop(users)
        self.run(users_table)
        self.made.append(users)
        for statement in schema_statements(self.dialect, users_table=users):
            self.run(statement)
        self.made.extend(LIBRARY_TABLES)

    def drop(self, *tables: str) -> None:
        for table in (*tables, *LIBRARY_TABLES):
            self.run(f'DROP TABLE IF EXISTS "{table}"')

    def add_user(self, user_id: int, **fields: Any) -> None:
        fields = {"id": user_id, "email": f"user{user_id}@example.com", **fields}
        mark = "?" if self.dialect == "sqlite" else "%s"
        names = ", ".join(fields)
        self.run(
            f"INSERT INTO users ({names}) VALUES ({', '.join([mark] * len(fields))})",
            list(fields.values()),
        )

    def row(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.run(sql, params)
        return rows[0] if rows else None


def make_database(tmp_path: Path) -> Database:
    """PostgreSQL when the suite runs on it, else a sqlite3 file in ``tmp_path``."""
    if ON_POSTGRES:
        import psycopg

        url = psycopg_url()
        return Database("postgresql", lambda: psycopg.connect(url))
    path = tmp_path / "billing.db"
    return Database("sqlite", lambda: sqlite3.connect(path))


def dbapi_app(
    database: Database, config: dict[str, Any] | None = None, **store_options: Any
) -> tuple[Flask, DBAPIUserStore]:
    """A Flask app with a DBAPIUserStore over ``database`` (a connection per transaction)."""
    app = Flask(__name__)
    app.config.update(TESTING=True, STRIPE_WEBHOOK_SECRET=SECRET, **(config or {}))
    store = DBAPIUserStore(database.connect, close=True, **store_options)
    StripeBilling(app, user_store=store)
    return app, store
