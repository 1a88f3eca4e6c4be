"""One clock for ordering: every fetched object is dated by Stripe's clock (the ``Date`` of
its answer), never by this server's; and an ended subscription's end is never stale.

This server's clock is set off Stripe's (``server_clock``); Stripe's API is mocked
with responses, answering with a ``Date`` header on Stripe's clock.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from conftest import Host
from flask import request
from manage_support import http_date
from support import post_event, subscription_event
from thin_support import API, notification, subscription_object, thin_config

from flask_stripe_billing import _util
from flask_stripe_billing._util import as_utc

THIN = "/stripe/thin-webhook"
SUBSCRIPTIONS_URL = f"{API}/v1/subscriptions"
#: Stripe's clock in these tests: the real time; this server's is set off it.
STRIPE_NOW = int(time.time())

ServerClock = Callable[[int], None]


@pytest.fixture
def server_clock(monkeypatch: pytest.MonkeyPatch) -> ServerClock:
    """Set this server's clock ``seconds`` ahead of Stripe's (negative: behind)."""

    def set_off(seconds: int) -> None:
        class Skewed(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                return datetime.now(tz) + timedelta(seconds=seconds)

        monkeypatch.setattr(_util, "datetime", Skewed)

    return set_off


@pytest.fixture
def clocked(make_host: Callable[..., Host]) -> Host:
    """Thin events and the management routes on; user 1 linked to ``cus_test``."""
    host = make_host(
        thin_config(STRIPE_BILLING_MANAGEMENT_ROUTES="1", STRIPE_API_MAX_RETRIES="0"),
        current_user_id=lambda: request.headers.get("X-User"),
    )
    host.add_user(1, stripe_customer_id="cus_test")
    return host


def stripe_answers(mock: responses.RequestsMock, method: str, path: str, obj: Any, at: int) -> None:
    """Stripe answers ``method path`` with ``obj``, its Date header ``at`` (Stripe's clock)."""
    mock.add(method, f"{API}{path}", json=obj, headers={"Date": http_date(at)})


def post_thin(host: Host, body: dict[str, Any]) -> Any:
    return post_event(
        host.client, body, secret=thin_config()["STRIPE_THIN_WEBHOOK_SECRET"], path=THIN
    )


def watermark(host: Host, subscription: str = "sub_test") -> int:
    stamp = as_utc(host.subscription(subscription)["last_event_at"])
    assert stamp is not None
    return int(stamp.timestamp())


def status_of(host: Host, event_id: str) -> str:
    return {row["id"]: row["status"] for row in host.events()}[event_id]


def thin_read_active(host: Host, mock: responses.RequestsMock, event_id: str) -> dict[str, Any]:
    """A thin notification whose fetch Stripe answers ``active`` at STRIPE_NOW."""
    active = subscription_object(status="active")
    stripe_answers(mock, "GET", "/v1/subscriptions/sub_test", active, STRIPE_NOW)
    assert post_thin(host, notification(event_id=event_id)).status_code == 200
    assert host.user(1).stripe_subscription_status == "active"
    return active


def deletion(created: int) -> dict[str, Any]:
    """Stripe's ``customer.subscription.deleted`` (``evt_deleted``), created at ``created``."""
    return subscription_event(
        "customer.subscription.deleted", status="canceled", event_id="evt_deleted", created=created
    )


def test_server_ahead_thin_fetch_then_cancel_now_then_stripes_deletion_ends_the_plan(
    clocked: Host, stripe_api: responses.RequestsMock, server_clock: ServerClock
) -> None:
    """The issue's reproduction: this server 5 s ahead of Stripe."""
    server_clock(5)
    active = thin_read_active(clocked, stripe_api, "evt_thin_active")

    ended = {**copy.deepcopy(active), "status": "canceled", "ended_at": STRIPE_NOW + 1}
    stripe_api.replace(
        responses.GET,
        f"{API}/v1/subscriptions/sub_test",
        json=active,
        headers={"Date": http_date(STRIPE_NOW + 1)},
    )
    stripe_answers(stripe_api, "DELETE", "/v1/subscriptions/sub_test", ended, STRIPE_NOW + 1)
    cancel = clocked.client.post(
        "/billing/subscription/cancel", json={"at_period_end": False}, headers={"X-User": "1"}
    )
    assert cancel.status_code == 200, cancel.get_data(as_text=True)
    body = cancel.get_json()["account"]
    assert (body["plan"], body["subscription_status"]) == ("free", "canceled")

    assert post_event(clocked.client, deletion(STRIPE_NOW + 1)).status_code == 200

    assert status_of(clocked, "evt_deleted") == "processed"
    user = clocked.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("free", "canceled")


def test_server_ahead_thin_read_then_the_snapshot_deletion_and_its_thin_twin_end_the_plan(
    clocked: Host, stripe_api: responses.RequestsMock, server_clock: ServerClock
) -> None:
    """Both endpoints on (the documented migration), no management call."""
    server_clock(5)
    thin_read_active(clocked, stripe_api, "evt_thin_read")

    post_event(clocked.client, deletion(STRIPE_NOW + 1))
    twin = notification(
        "v1.customer.subscription.deleted",
        event_id="evt_thin_deleted",
        snapshot_event="evt_deleted",
    )
    post_thin(clocked, twin)

    assert status_of(clocked, "evt_deleted") == "processed"
    assert clocked.user(1).plan == "free"
    assert clocked.subscription("sub_test")["status"] == "canceled"


@pytest.mark.parametrize("off", [3600, -3600])
def test_a_thin_fetch_is_dated_by_the_date_of_stripes_answer(
    clocked: Host, stripe_api: responses.RequestsMock, server_clock: ServerClock, off: int
) -> None:
    server_clock(off)
    stripe_answers(
        stripe_api, "GET", "/v1/subscriptions/sub_test", subscription_object(), STRIPE_NOW - 20
    )

    post_thin(clocked, notification())

    assert watermark(clocked) == STRIPE_NOW - 20
    later = subscription_event(status="past_due", event_id="evt_later", created=STRIPE_NOW - 10)
    earlier = subscription_event(status="unpaid", event_id="evt_earlier", created=STRIPE_NOW - 30)
    post_event(clocked.client, later)
    post_event(clocked.client, earlier)
    assert (status_of(clocked, "evt_later"), status_of(clocked, "evt_earlier")) == (
        "processed",
        "stale",
    )
    assert clocked.user(1).stripe_subscription_status == "past_due"


def test_sync_is_dated_by_the_date_of_stripes_answer(
    clocked: Host, stripe_api: responses.RequestsMock, server_clock: ServerClock
) -> None:
    server_clock(3600)
    listed = {
        "object": "list",
        "url": "/v1/subscriptions",
        "has_more": False,
        "data": [subscription_object(status="active")],
    }
    stripe_answers(stripe_api, "GET", "/v1/subscriptions", listed, STRIPE_NOW - 20)

    result = clocked.app.test_cli_runner().invoke(args=["billing", "sync", "--no-features", "1"])

    assert result.exit_code == 0, result.output
    assert watermark(clocked) == STRIPE_NOW - 20
    later = subscription_event(status="past_due", event_id="evt_later", created=STRIPE_NOW - 10)
    post_event(clocked.client, later)
    assert status_of(clocked, "evt_later") == "processed"


def test_re_fetch_mode_dates_the_event_by_the_date_of_stripes_answer(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, server_clock: ServerClock
) -> None:
    host = make_host(thin_config(STRIPE_REFETCH_SUBSCRIPTIONS="1"))
    host.add_user(1, stripe_customer_id="cus_test")
    server_clock(3600)
    stripe_answers(
        stripe_api,
        "GET",
        "/v1/subscriptions/sub_test",
        subscription_object(status="active"),
        STRIPE_NOW - 20,
    )

    post_event(host.client, subscription_event(status="past_due", created=STRIPE_NOW - 100))

    assert watermark(host) == STRIPE_NOW - 20
    assert host.user(1).stripe_subscription_status == "active"


def test_an_answer_without_a_date_header_is_dated_by_this_servers_clock(
    clocked: Host, stripe_api: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    stripe_api.get(f"{API}/v1/subscriptions/sub_test", json=subscription_object())

    post_thin(clocked, notification())

    assert abs(watermark(clocked) - datetime.now(UTC).timestamp()) < 60
    assert "no Date header" in caplog.text
