"""The database, as in Flask's tutorial: one sqlite3 connection per request, in ``g``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click
from flask import Flask, current_app, g
from flask.cli import with_appcontext

HERE = Path(__file__).parent


def get_db() -> sqlite3.Connection:
    """The request's connection (opened on first use, closed when the request ends)."""
    if "db" not in g:
        g.db = sqlite3.connect(current_app.config["DATABASE"], detect_types=sqlite3.PARSE_DECLTYPES)
        g.db.row_factory = sqlite3.Row
    connection: sqlite3.Connection = g.db
    return connection


def close_db(error: BaseException | None = None) -> None:
    """Close the request's connection, if it opened one."""
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_db() -> None:
    """The app's tables (schema.sql), then the billing ones (billing.sql, printed by
    ``flask billing schema``), and two demo users."""
    db = get_db()
    db.executescript((HERE / "schema.sql").read_text())
    db.executescript((HERE / "billing.sql").read_text())
    db.executemany(
        "INSERT INTO user (username, password, stripe_customer_id) VALUES (?, ?, ?)",
        [("ada", "not-a-real-hash", "cus_demo_ada"), ("bob", "not-a-real-hash", None)],
    )
    db.commit()


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Clear the existing data and create new tables."""
    init_db()
    click.echo("Initialized the database.")


def init_app(app: Flask) -> None:
    """Close the connection after each request; add ``flask init-db``."""
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)
