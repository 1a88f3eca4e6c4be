"""Lifecycle signals once per event id when every worker delivers at the same moment
(PostgreSQL, separate processes: the workers of test_concurrency)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Host
from test_concurrency import WORKERS, Workers, body_of, event_rows
from test_lifecycle import legacy_invoice

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    pool = Workers(WORKERS)
    yield pool
    pool.stop()


def test_one_payment_failed_delivered_by_every_worker_at_once_is_signalled_once(
    host: Host, workers: Workers
) -> None:
    event = legacy_invoice("invoice.payment_failed")

    answers = workers.deliver_together([body_of(event)] * WORKERS)

    assert [answer["status"] for answer in answers] == [200] * WORKERS
    outcomes = sorted(status for answer in answers for _, status in answer["outcomes"])
    assert outcomes == ["duplicate"] * (WORKERS - 1) + ["processed"]
    sent = [call for answer in answers for call in answer["lifecycle"]]
    assert sent == [["invoice.payment_failed", event["id"]]]
    assert event_rows(host) == {event["id"]: ("processed", WORKERS)}
    assert host.subscriptions() == []
    assert host.user(1).updated_at is None


def test_two_lifecycle_events_each_delivered_four_times_at_once_are_signalled_once_each(
    host: Host, workers: Workers
) -> None:
    failed = legacy_invoice("invoice.payment_failed")
    paid = legacy_invoice("invoice.paid", status="paid", amount_paid=2000, paid=True)
    half = WORKERS // 2

    answers = workers.deliver_together([body_of(failed)] * half + [body_of(paid)] * half)

    assert [answer["status"] for answer in answers] == [200] * WORKERS
    sent = sorted(call for answer in answers for call in answer["lifecycle"])
    assert sent == sorted([["invoice.payment_failed", failed["id"]], ["invoice.paid", paid["id"]]])
    assert event_rows(host) == {
        failed["id"]: ("processed", half),
        paid["id"]: ("processed", half),
    }
