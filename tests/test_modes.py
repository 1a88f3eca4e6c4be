"""The optional modes: re-fetch (Stripe's API wins over the payload) and dispatch (RQ + Redis)."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
import rq_jobs
import sqlalchemy as sa
from conftest import Host
from support import checkout_event, load, post_event, subscription_event

API = "https://api.stripe.com/v1"
API_KEY = "sk_test_51RefetchKey000000000000"
SUBSCRIPTION = load("api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json")


def stripe_subscription(**fields: Any) -> dict[str, Any]:
    """The real subscription object from Stripe's API, with the given fields."""
    return {**SUBSCRIPTION, **fields}


# Re-fetch mode


def test_refetch_mode_applies_stripes_current_state_over_the_payload(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_REFETCH_SUBSCRIPTIONS": True})
    host.add_user(1, stripe_customer_id="cus_test")
    # The payload says active; by now Stripe knows it was canceled.
    current = stripe_subscription(id="sub_test", customer="cus_test", status="canceled")
    stripe_api.add(responses.GET, f"{API}/subscriptions/sub_test", json=current)

    response = post_event(host.client, subscription_event(status="active", layout="basil"))

    assert response.status_code == 200
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("free", "canceled")
    (call,) = stripe_api.calls
    assert call.request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert [row["status"] for row in host.events()] == ["processed"]


def test_refetch_mode_takes_the_period_end_from_the_fetched_items(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_REFETCH_SUBSCRIPTIONS": "true"})
    host.add_user(1, stripe_customer_id="cus_test")
    current = stripe_subscription(id="sub_test", customer="cus_test", status="trialing")
    stripe_api.add(responses.GET, f"{API}/subscriptions/sub_test", json=current)

    post_event(host.client, subscription_event(status="incomplete", layout="2020"))

    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "trialing")
    period_end = current["items"]["data"][0]["current_period_end"]
    stored = user.current_period_end
    stored = stored if stored.tzinfo else stored.replace(tzinfo=UTC)
    assert stored == datetime.fromtimestamp(period_end, tz=UTC)


def test_refetch_failure_keeps_the_event_received_with_the_reason_for_replay(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    """Stripe failing the re-fetch (an outage, a rate limit past the call's deadline) is
    never a 5xx back to Stripe: the event is kept ``received`` and replay applies it."""
    host = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_REFETCH_SUBSCRIPTIONS": True})
    host.add_user(1, stripe_customer_id="cus_test")
    stripe_api.add(
        responses.GET,
        f"{API}/subscriptions/sub_test",
        status=403,
        headers={"Request-Id": "req_refetch"},
        json={"error": {"type": "invalid_request_error", "message": "forbidden"}},
    )
    event = subscription_event(status="active")

    kept = post_event(host.client, event)

    assert kept.status_code == 200
    [row] = host.events()
    assert row["status"] == "received"
    assert "could not re-fetch subscription sub_test" in (row["error"] or "")
    assert host.user(1).plan == "free"

    stripe_api.replace(
        responses.GET,
        f"{API}/subscriptions/sub_test",
        json=stripe_subscription(id="sub_test", customer="cus_test", status="active"),
    )
    result = host.app.test_cli_runner().invoke(args=["billing", "replay", event["id"]])
    assert result.exit_code == 0, result.output
    assert host.user(1).plan == "pro"
    assert host.events()[0]["status"] == "processed"


def test_refetch_mode_without_an_api_key_is_503_and_records_nothing(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"STRIPE_REFETCH_SUBSCRIPTIONS": True})
    host.add_user(1, stripe_customer_id="cus_test")

    response = post_event(host.client, subscription_event(status="active"))

    assert response.status_code == 503
    assert response.json["details"]["missing"] == ["STRIPE_API_KEY"]
    assert host.events() == []


def test_refetch_mode_leaves_checkout_events_as_delivered(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_REFETCH_SUBSCRIPTIONS": True})
    host.add_user(1)

    response = post_event(host.client, checkout_event(client_reference_id="1"))

    assert response.status_code == 200
    assert host.user(1).plan == "pro"
    assert len(stripe_api.calls) == 0


# Dispatch mode with RQ and a real Redis server


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    if os.environ.get("REQUIRE_REDIS") == "1":
        pytest.fail("REQUIRE_REDIS=1 but REDIS_URL is not set")
    pytest.skip("REDIS_URL not set: dispatch tests need a Redis server (.ci/run starts one)")


@pytest.fixture
def queue(redis_url: str) -> Iterator[Any]:
    from redis import Redis
    from rq import Queue

    connection = Redis.from_url(redis_url)
    stripe_queue = Queue(f"stripe-{uuid.uuid4().hex}", connection=connection)
    yield stripe_queue
    stripe_queue.empty()
    connection.close()


def work(queue: Any) -> None:
    """Run an RQ worker until the queue is empty (in this process)."""
    from rq import SimpleWorker

    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@pytest.fixture
def dispatched_host(make_host: Callable[..., Host], queue: Any) -> Iterator[Host]:
    host = make_host(
        dispatch=lambda event_id: queue.enqueue(rq_jobs.process_stripe_event, event_id)
    )
    host.add_user(1, stripe_customer_id="cus_test")
    rq_jobs.HOST = host
    yield host
    rq_jobs.HOST = None


def statuses(host: Host) -> dict[str, str]:
    return {row["id"]: row["status"] for row in host.events()}


def test_dispatch_records_answers_at_once_and_a_worker_applies_the_events(
    dispatched_host: Host, queue: Any, received: dict[str, list[dict[str, Any]]]
) -> None:
    host = dispatched_host
    events = [
        subscription_event(
            "customer.subscription.created", event_id="evt_a", created=1_700_000_000
        ),
        subscription_event(status="past_due", event_id="evt_b", created=1_700_000_100),
        subscription_event(customer="cus_nobody", event_id="evt_c", created=1_700_000_200),
    ]

    answers = [post_event(host.client, event) for event in events]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.json == {"received": True} for a in answers)
    assert statuses(host) == {"evt_a": "received", "evt_b": "received", "evt_c": "received"}
    assert host.user(1).plan == "free"  # nothing applied in the request
    assert queue.count == 3
    assert [c["status"] for c in received["webhook_received"]] == ["received"] * 3

    work(queue)

    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "past_due")
    assert statuses(host) == {"evt_a": "processed", "evt_b": "processed", "evt_c": "unmatched"}
    assert [c["new_plan"] for c in received["plan_changed"]] == ["pro"]
    assert queue.count == 0


def test_dispatch_does_not_queue_a_duplicate_of_a_processed_event(
    dispatched_host: Host, queue: Any
) -> None:
    event = subscription_event(event_id="evt_once")
    post_event(dispatched_host.client, event)
    work(queue)

    again = post_event(dispatched_host.client, event)

    assert again.status_code == 200
    assert queue.count == 0
    assert statuses(dispatched_host) == {"evt_once": "processed"}


def test_a_failed_job_is_replayable(
    dispatched_host: Host, queue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rq.registry import FailedJobRegistry

    host = dispatched_host
    post_event(host.client, subscription_event(event_id="evt_retry"))
    store = host.billing.user_store
    real_record = store.record_and_lock

    def database_down(*args: Any, **kwargs: Any) -> Any:
        raise sa.exc.OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(store, "record_and_lock", database_down)
    work(queue)

    failed = FailedJobRegistry(queue=queue)
    assert failed.count == 1
    assert host.user(1).plan == "free"
    assert statuses(host) == {"evt_retry": "received"}

    monkeypatch.setattr(store, "record_and_lock", real_record)
    failed.requeue(failed.get_job_ids()[0])
    work(queue)

    assert host.user(1).plan == "pro"
    assert statuses(host) == {"evt_retry": "processed"}
    assert failed.count == 0


def test_a_queue_that_is_down_leaves_the_event_received_for_replay(
    make_host: Callable[..., Host], caplog: pytest.LogCaptureFixture
) -> None:
    def queue_down(event_id: str) -> None:
        raise ConnectionError("Redis is down")

    host = make_host(dispatch=queue_down)
    host.add_user(1, stripe_customer_id="cus_test")

    with caplog.at_level(logging.ERROR, logger="flask_stripe_billing"):
        response = post_event(host.client, subscription_event(event_id="evt_stuck"))

    assert response.status_code == 200
    assert statuses(host) == {"evt_stuck": "received"}
    assert "could not be dispatched" in caplog.text
    with host.app.app_context():
        outcome = host.billing.process_event("evt_stuck")
    assert outcome.status == "processed"
    assert host.user(1).plan == "pro"


def test_an_rq_job_sends_pending_usage_with_the_same_sender(
    make_host: Callable[..., Host], queue: Any, stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": "sk_test_51UsageJobKey00000000000000"})
    host.add_user(1, stripe_customer_id="cus_test")
    stripe_api.post(
        "https://api.stripe.com/v1/billing/meter_events", json={"object": "billing.meter_event"}
    )
    with host.app.app_context():
        host.billing.report_usage(1, "api_calls", 2, identifier="req_job")
        host.db.session.commit()
    rq_jobs.HOST = host
    try:
        job = queue.enqueue(rq_jobs.send_stripe_usage)
        work(queue)
    finally:
        rq_jobs.HOST = None
    assert job.return_value() == 1
    (call,) = stripe_api.calls
    assert "identifier=req_job" in call.request.body
