"""Usage-based billing, measured: what ``report_usage`` adds to a host request that already
commits one row, and how many reported events per second the sender delivers to a
stand-in for Stripe on 127.0.0.1 (in a process of its own, as Stripe is)."""

from __future__ import annotations

import multiprocessing
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_stripe_billing import BillingMixin, SQLAlchemyUserStore, StripeBilling
from flask_stripe_billing.testing import MeterEventStandIn, point_stripe_at

USERS = 50


#: What each host's ``POST /work`` adds to its own row: nothing (the baseline), a
#: ``report_usage`` call, or the same usage row written by the host with a plain insert
#: (the floor: what the database charges for the row, with no library code).
ARMS = ("plain", "reporting", "floor")


def host_app(database_url: str, *, arm: str) -> tuple[Flask, SQLAlchemy, StripeBilling]:
    """A host whose ``POST /work`` commits one row of its own, and in the same transaction
    what ``arm`` names (see :data:`ARMS`)."""
    db = SQLAlchemy()

    class User(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Work(db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "work"
        id: Mapped[int] = mapped_column(primary_key=True)
        user_id: Mapped[int] = mapped_column()
        note: Mapped[str] = mapped_column(sa.String(100))

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        STRIPE_WEBHOOK_SECRET="whsec_benchmark_only",
        STRIPE_API_KEY="sk_test_benchmark_only_0000000000",
    )
    db.init_app(app)
    billing = StripeBilling(app, user_store=SQLAlchemyUserStore(db, User))
    counter = iter(range(10**9))
    usage_rows = db.metadata.tables["stripe_billing_usage"]

    @app.post("/work/<int:user_id>")
    def work(user_id: int) -> str:
        db.session.add(Work(user_id=user_id, note=f"call {next(counter)}"))
        if arm == "reporting":
            billing.report_usage(user_id, "api_calls", 1)
        elif arm == "floor":
            db.session.execute(usage_rows.insert(), [floor_row(user_id)])
        db.session.commit()
        return "ok"

    return app, db, billing


def floor_row(user_id: int) -> dict[str, Any]:
    """The row a report writes, as the host would write it by hand."""
    now = datetime.now(UTC)
    return {
        "identifier": uuid.uuid4().hex,
        "user_id": str(user_id),
        "event_name": "api_calls",
        "value": 1,
        "timestamp": now,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "reported_at": now,
    }


def make_tables(app: Flask, db: SQLAlchemy) -> None:
    with app.app_context():
        db.drop_all()
        db.create_all()
        users = db.metadata.tables["users"]
        db.session.execute(
            users.insert(),
            [{"id": n, "plan": "pro", "stripe_customer_id": f"cus_{n}"} for n in range(USERS)],
        )
        db.session.commit()


def requests_per_second(app: Flask, count: int) -> float:
    client = app.test_client()
    began = time.perf_counter()
    for number in range(count):
        response = client.post(f"/work/{number % USERS}")
        if response.status_code != 200:
            raise RuntimeError(response.get_data(as_text=True))
        response.close()
    return count / (time.perf_counter() - began)


def bench_report(database_url: str, rounds: int, count: int) -> dict[str, Any]:
    """Requests/s of the host's request alone, with ``report_usage``, and with the same row
    written by hand, interleaved (A B C C B A ...)."""
    hosts = {arm: host_app(database_url, arm=arm) for arm in ARMS}
    apps = {arm: host[0] for arm, host in hosts.items()}
    db_reporting = hosts["reporting"][1]
    make_tables(apps["reporting"], db_reporting)
    for app in apps.values():
        requests_per_second(app, 100)  # warm up
    rates: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for number in range(rounds):
        for arm in ARMS if number % 2 == 0 else ARMS[::-1]:
            rates[arm].append(requests_per_second(apps[arm], count))
    with apps["reporting"].app_context():
        db_reporting.drop_all()
    return {
        **{f"{arm}_rps": statistics.median(rates[arm]) for arm in ARMS},
        # Time per request, ours / baseline: 1.10 means report_usage adds 10 %.
        "ratio": spread(rates["plain"], rates["reporting"]),
        # The database's own share: the hand-written row / baseline.
        "floor_ratio": spread(rates["plain"], rates["floor"]),
        # The library's share: report_usage / the hand-written row.
        "over_floor": spread(rates["floor"], rates["reporting"]),
    }


def spread(base: list[float], ours: list[float]) -> dict[str, float]:
    """Round by round, time per request of ``ours`` / ``base`` (rates in, so base / ours)."""
    ratios = [b / o for b, o in zip(base, ours, strict=True)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def serve_standin(ports: Any, stop: Any) -> None:
    """The stand-in for Stripe, in a process of its own until ``stop`` is set."""
    with MeterEventStandIn() as standin:
        ports.put(standin.url)
        stop.wait()


def bench_sender(database_url: str, rounds: int, count: int) -> dict[str, Any]:
    """Reported events/s the sender delivers (``send_usage``: claim, post, mark, commit)."""
    context = multiprocessing.get_context("spawn")
    urls, stop = context.Queue(), context.Event()
    server = context.Process(target=serve_standin, args=(urls, stop), daemon=True)
    server.start()
    try:
        url = urls.get(timeout=60)
        app, db, billing = host_app(database_url, arm="reporting")
        make_tables(app, db)
        point_stripe_at(app, url)
        rates = []
        for number in range(rounds):
            with app.app_context():
                for row in range(count):
                    billing.report_usage(row % USERS, "api_calls", 1, identifier=f"b{number}_{row}")
                db.session.commit()
                began = time.perf_counter()
                report = billing.send_usage()
                seconds = time.perf_counter() - began
            if report.sent != count:
                raise RuntimeError(f"sent {report.sent} of {count}: {report}")
            rates.append(count / seconds)
        with app.app_context():
            db.drop_all()
    finally:
        stop.set()
        server.join(10)
    return {"events_per_second": statistics.median(rates), "min": min(rates), "max": max(rates)}
