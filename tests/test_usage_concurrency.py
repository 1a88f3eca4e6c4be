"""The usage sender under real faults and real concurrency: separate processes, each with
its own app and connections, posting to a stand-in for Stripe on 127.0.0.1.

A sender killed (``os._exit``: no clean-up, no rollback by Python) right after Stripe's
answer leaves its rows pending, and the next pass sends the same identifiers again: on
SQLite and on PostgreSQL. Four senders at once on PostgreSQL never send one row twice
(``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DATABASE_URL, ON_POSTGRES, Host, build_host
from usage_support import API_KEY, usage_rows

from flask_stripe_billing.testing import MeterEventStandIn, point_stripe_at

SENDERS = 4
ROWS = 400
TIMEOUT = 120


def host_over(url: str, *, create_tables: bool, batch: int = 100) -> Host:
    """A host app over the database at ``url``; user 1 linked to ``cus_test`` when made."""
    host = build_host(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_BILLING_USAGE_BATCH_SIZE": batch,
        },
        create_tables=create_tables,
    )
    if create_tables:
        host.add_user(1, stripe_customer_id="cus_test")
    return host


def killed_sender(url: str, stripe_url: str) -> None:
    """A sender that dies the moment Stripe has accepted its first meter event."""
    host = host_over(url, create_tables=False, batch=1)
    point_stripe_at(host.app, stripe_url)
    with host.app.app_context():
        state = host.app.extensions["stripe_billing"]
        gateway = state.usage_stripe
        real = gateway.create_meter_event

        def then_die(params: dict[str, Any]) -> Any:
            answer = real(params)
            os._exit(9)
            return answer  # pragma: no cover

        gateway.create_meter_event = then_die
        host.billing.send_usage()


def sender(url: str, stripe_url: str, barrier: Any, results: Any) -> None:
    """One of several senders released together; hands back how many rows it sent."""
    host = host_over(url, create_tables=False, batch=10)
    point_stripe_at(host.app, stripe_url)
    barrier.wait(TIMEOUT)
    with host.app.app_context():
        results.put(host.billing.send_usage().sent)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL when DATABASE_URL names it, else a SQLite file every process can open."""
    yield DATABASE_URL if ON_POSTGRES else f"sqlite:///{tmp_path / 'usage.db'}"


def report_rows(host: Host, count: int) -> None:
    with host.app.app_context():
        for number in range(count):
            host.billing.report_usage(1, "api_calls", 1, identifier=f"row{number:04}")
        host.db.session.commit()


def test_a_sender_killed_after_stripes_answer_leaves_rows_to_send_again(database: str) -> None:
    host = host_over(database, create_tables=True, batch=1)
    report_rows(host, 3)
    context = multiprocessing.get_context("spawn")
    with MeterEventStandIn() as stripe:
        process = context.Process(target=killed_sender, args=(database, stripe.url))
        process.start()
        process.join(TIMEOUT)
        assert process.exitcode == 9
        assert dict(stripe.identifiers) == {"row0000": 1}  # accepted, never marked
        assert {row["status"] for row in usage_rows(host)} == {"pending"}

        point_stripe_at(host.app, stripe.url)
        with host.app.app_context():
            assert host.billing.send_usage().sent == 3

        # Stripe saw the same identifier twice (and drops the repeat), and nothing else.
        assert dict(stripe.identifiers) == {"row0000": 2, "row0001": 1, "row0002": 1}
    assert {row["status"] for row in usage_rows(host)} == {"sent"}
    with host.app.app_context():
        host.db.drop_all()


@pytest.mark.postgres
def test_four_senders_at_once_never_send_a_row_twice() -> None:
    host = host_over(DATABASE_URL, create_tables=True)
    report_rows(host, ROWS)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(SENDERS)
    results = context.Queue()
    with MeterEventStandIn() as stripe:
        processes = [
            context.Process(target=sender, args=(DATABASE_URL, stripe.url, barrier, results))
            for _ in range(SENDERS)
        ]
        for process in processes:
            process.start()
        counts = [results.get(timeout=TIMEOUT) for _ in processes]
        for process in processes:
            process.join(TIMEOUT)
        assert sum(counts) == ROWS
        assert len(stripe.identifiers) == ROWS
        assert set(stripe.identifiers.values()) == {1}  # no row sent twice
        assert sum(1 for count in counts if count) >= 2  # the senders shared the work
    assert {row["status"] for row in usage_rows(host)} == {"sent"}
    with host.app.app_context():
        host.db.drop_all()
