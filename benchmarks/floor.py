"""The database's share: each handler's statements replayed on a bare DB-API connection.

    python -m benchmarks.floor [--events 1000] [--rounds 3]

Runs ours and the raw handler in-process once, records every statement each
sends per delivery (SQLAlchemy's ``before_cursor_execute``), then replays
those statements, with the same parameters and fresh event ids, on a plain
DB-API connection: no Flask, no SQLAlchemy, no Python of ours. What is left
is what the database work costs by itself (round trips, execution, commit).

From it, the best ratios the design allows: the raw handler's time minus its
database work is what every handler pays (test client, Flask, signature,
JSON); ours can at best add its own database work to that. The guide's
handler is timed beside them (its database work is the raw handler's).
SQLite always; PostgreSQL when ``DATABASE_URL`` is a postgresql URL.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from typing import Any

import sqlalchemy as sa
from flask import Flask

from .apps import SECRET, create_baseline, create_ours, create_raw_baseline, create_tables, db
from .run import START, STEP, post_all
from .workload import Delivery, build

#: One delivery's statements: (SQL as sent to the driver, its parameters).
Statements = list[tuple[str, Any]]


def capture(app: Flask, deliveries: list[Delivery]) -> tuple[float, list[Statements]]:
    """Seconds to post ``deliveries``, and the statements each one sent."""
    per_delivery: list[Statements] = []

    def on_statement(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        per_delivery[-1].append((statement, parameters))

    client = app.test_client()
    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", on_statement)
    began = time.perf_counter()
    try:
        for delivery in deliveries:
            per_delivery.append([])
            client.post(
                "/stripe/webhook",
                data=delivery.body,
                headers={
                    "Stripe-Signature": delivery.signature,
                    "Content-Type": "application/json",
                },
            ).close()
    finally:
        seconds = time.perf_counter() - began
        sa.event.remove(engine, "before_cursor_execute", on_statement)
    return seconds, per_delivery


def replay(connect: Any, deliveries: list[Statements], tag: str) -> float:
    """Seconds to run every delivery's statements and a commit on a fresh DB-API
    connection; each event id (``evt_…``) gets ``tag`` appended, so none is a duplicate."""
    connection = connect()
    began = time.perf_counter()
    for statements in deliveries:
        cursor = connection.cursor()
        for sql, parameters in statements:
            cursor.execute(sql, _retagged(parameters, tag))
            if cursor.description is not None:
                cursor.fetchall()
        connection.commit()
    seconds = time.perf_counter() - began
    connection.close()
    return seconds


def _retagged(parameters: Any, tag: str) -> Any:
    def value(item: Any) -> Any:
        return f"{item}{tag}" if isinstance(item, str) and item.startswith("evt_") else item

    if isinstance(parameters, dict):
        return {name: value(item) for name, item in parameters.items()}
    return tuple(value(item) for item in parameters)


def measure(url: str, connect: Any, args: argparse.Namespace) -> dict[str, float]:
    """Microseconds per event: each app in-process, ours' and raw's statements replayed."""
    apps = {
        "ours": create_ours(url),
        "raw": create_raw_baseline(url),
        "guide": create_baseline(url),
    }
    create_tables(apps["ours"], args.users)
    for app in apps.values():
        post_all(app, build(200, args.users, SECRET, tag=f"warm{id(app)}", start=START))
    timings: dict[str, list[float]] = {"ours_db": [], "raw_db": []} | {name: [] for name in apps}
    for number in range(args.rounds):
        for position, (name, app) in enumerate(apps.items()):
            start = START + (number * len(apps) + position + 1) * STEP
            work = build(args.events, args.users, SECRET, tag=f"{name}{number}", start=start)
            seconds, statements = capture(app, work)
            timings[name].append(seconds / len(work) * 1e6)
            if name != "guide":
                replayed = replay(connect, statements, f"_r{number}")
                timings[f"{name}_db"].append(replayed / len(work) * 1e6)
    result = {name: statistics.median(values) for name, values in timings.items()}
    best_ours = result["raw"] - result["raw_db"] + result["ours_db"]
    result["best_raw"] = result["raw"] / best_ours
    result["best_guide"] = result["guide"] / best_ours
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000, help="events per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args()
    postgres = os.environ.get("DATABASE_URL", "")
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/floor.db"
        databases: dict[str, tuple[str, Any]] = {
            "sqlite": (f"sqlite:///{path}", lambda: sqlite3.connect(path))
        }
        if postgres.startswith("postgresql"):
            import psycopg

            plain = sa.engine.make_url(postgres).set(drivername="postgresql")
            dsn = plain.render_as_string(hide_password=False)
            databases["postgresql"] = (postgres, lambda: psycopg.connect(dsn))
        print(
            "us/event      ours (its DB work)   raw (its DB work)   guide   best ours/raw, /guide"
        )
        for name, (url, connect) in databases.items():
            r = measure(url, connect, args)
            print(
                f"{name:11} {r['ours']:6.0f} ({r['ours_db']:6.0f})"
                f"    {r['raw']:6.0f} ({r['raw_db']:6.0f})    {r['guide']:6.0f}"
                f"   {r['best_raw']:.2f}, {r['best_guide']:.2f}"
            )


if __name__ == "__main__":
    main()
