"""Thin notifications delivered at the same moment on several threads, on PostgreSQL: each
change applies once, whether the copies are the same notification or its snapshot twin."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import responses
from conftest import Host
from support import NOW, load, load_object, post_event, subscription_event
from thin_support import (
    API,
    INVOICE_OBJECT,
    THIN_SECRET,
    notification,
    serve,
    subscription_object,
    thin_config,
)

from flask_stripe_billing.testing import record_signals

pytestmark = pytest.mark.postgres

THIN = "/stripe/thin-webhook"
WORKERS = 8
TIMEOUT = 60


@pytest.fixture
def thin_host(make_host: Callable[..., Host]) -> Host:
    made = make_host(thin_config())
    made.add_user(1, stripe_customer_id="cus_test")
    return made


def together(deliveries: list[Callable[[], Any]]) -> list[int]:
    """Run the deliveries on their own threads, released at once; their status codes."""
    barrier = threading.Barrier(len(deliveries), timeout=TIMEOUT)

    def run(deliver: Callable[[], Any]) -> int:
        barrier.wait()
        return int(deliver().status_code)

    with ThreadPoolExecutor(len(deliveries)) as pool:
        return list(pool.map(run, deliveries, timeout=TIMEOUT))


def test_one_notification_delivered_on_eight_threads_applies_once(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    serve(stripe_api, subscription_object())
    thin = notification(event_id="evt_thin_race")

    def deliver() -> Any:
        return post_event(thin_host.app.test_client(), thin, secret=THIN_SECRET, path=THIN)

    with record_signals() as sent:
        codes = together([deliver] * WORKERS)

    assert codes == [200] * WORKERS
    [row] = thin_host.events()
    assert (row["id"], row["status"]) == ("evt_thin_race", "processed")
    assert 1 <= row["attempts"] <= WORKERS
    assert [s["id"] for s in thin_host.subscriptions()] == ["sub_test"]
    assert thin_host.user(1).plan == "pro"
    assert len(sent["plan_changed"]) == 1
    statuses = sorted(call["status"] for call in sent["webhook_received"])
    assert statuses == ["duplicate"] * (WORKERS - 1) + ["processed"]


def test_a_change_delivered_as_snapshot_and_thin_on_eight_threads_applies_once(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    serve(stripe_api, subscription_object(status="active"))
    snapshot = subscription_event(event_id="evt_snap_race", status="active", created=NOW - 5)
    thin = notification(event_id="evt_thin_race", snapshot_event="evt_snap_race")

    def by_snapshot() -> Any:
        return post_event(thin_host.app.test_client(), snapshot)

    def by_thin() -> Any:
        return post_event(thin_host.app.test_client(), thin, secret=THIN_SECRET, path=THIN)

    with record_signals() as sent:
        codes = together([by_snapshot, by_thin] * (WORKERS // 2))

    assert codes == [200] * WORKERS
    statuses = {row["id"]: row["status"] for row in thin_host.events()}
    assert statuses == {"evt_snap_race": "processed", "evt_thin_race": "processed"}
    assert thin_host.user(1).stripe_subscription_status == "active"
    assert len(sent["plan_changed"]) == 1


def test_a_snapshot_applied_while_its_thin_twin_is_being_fetched_is_not_applied_twice(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    """The thin deliveries pass their duplicate check, then the snapshot event is applied
    while Stripe's API is answering them: the claim of the twin's row settles it."""
    invoice = load_object(INVOICE_OBJECT)
    invoice.update(id="in_race", customer="cus_test", status="open")
    snapshot = load("events/stripe-ruby-mock__invoice.payment_failed.json")
    snapshot.update(id="evt_failed_race", created=NOW - 5)
    snapshot["data"]["object"].update(id="in_race", customer="cus_test")
    thin = notification("v1.invoice.payment_failed", "in_race", related_type="invoice")
    thin["snapshot_event"] = "evt_failed_race"
    fetching = threading.Event()
    applied = threading.Event()

    def slow_answer(request: Any) -> tuple[int, dict[str, str], str]:
        fetching.set()
        assert applied.wait(TIMEOUT)
        return 200, {}, json.dumps(invoice)

    stripe_api.add_callback(responses.GET, f"{API}/v1/invoices/in_race", callback=slow_answer)

    def by_thin() -> Any:
        return post_event(thin_host.app.test_client(), thin, secret=THIN_SECRET, path=THIN)

    def by_snapshot() -> Any:
        assert fetching.wait(TIMEOUT)
        response = post_event(thin_host.app.test_client(), snapshot)
        applied.set()
        return response

    with record_signals() as sent:
        codes = together([by_thin] * (WORKERS - 1) + [by_snapshot])

    assert codes == [200] * WORKERS
    assert [call["invoice_id"] for call in sent["payment_failed"]] == ["in_race"]
    statuses = {row["id"]: row["status"] for row in thin_host.events()}
    assert statuses == {"evt_failed_race": "processed", thin["id"]: "processed"}
