"""Usage-based billing, measured: what ``report_usage`` adds to a host request that already
commits one row, and how many reported events per second the sender delivers to a
stand-in for Stripe on 127.0.0.1 (in a process of its own, as Stripe is)."""

from __future__ import annotations

import multiprocessing
import statistics
import time
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_stripe_billing import BillingMixin, SQLAlchemyUserStore, StripeBilling
from flask_stripe_billing.testing import MeterEventStandIn, point_stripe_at

USERS = 50


def host_app(database_url: str, *, report: bool) -> tuple[Flask, SQLAlchemy, StripeBilling]:
    """A host whose ``POST /work`` commits one row of its own, and with ``report`` a usage
    report in the same transaction."""
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

    @app.post("/work/<int:user_id>")
    def work(user_id: int) -> str:
        db.session.add(Work(user_id=user_id, note=f"call {next(counter)}"))
        if report:
            billing.report_usage(user_id, "api_calls", 1)
        db.session.commit()
        return "ok"

    return app, db, billing


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
    """Requests/s of the host's request with and without ``report_usage``, interleaved."""
    plain, _, _ = host_app(database_url, report=False)
    reporting, db_reporting, _ = host_app(database_url, report=True)
    make_tables(reporting, db_reporting)
    for app in (plain, reporting):
        requests_per_second(app, 100)  # warm up
    rates: dict[str, list[float]] = {"plain": [], "reporting": []}
    for number in range(rounds):
        order = ["plain", "reporting"] if number % 2 == 0 else ["reporting", "plain"]
        for name in order:
            rates[name].append(requests_per_second(plain if name == "plain" else reporting, count))
    # Time per request, ours / baseline: 1.10 means report_usage adds 10 %.
    ratios = [p / r for p, r in zip(rates["plain"], rates["reporting"], strict=True)]
    with reporting.app_context():
        db_reporting.drop_all()
    return {
        "plain_rps": statistics.median(rates["plain"]),
        "reporting_rps": statistics.median(rates["reporting"]),
        "ratio": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
    }


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
        app, db, billing = host_app(database_url, report=True)
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
