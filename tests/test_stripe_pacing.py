"""Pacing at Stripe's rate limits: one pace for every call of an app, 429s waited out
within the call's deadline, and past it the event kept ``received`` for replay.

Stripe's HTTP API is mocked with ``responses`` (stripe-python runs for real); the
pace is measured on a fake clock that moves only when the pace waits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import responses
from conftest import Host
from flask import request
from pacing_support import FakeClock, calls_to, fake_clock, gaps
from support import load, post_event
from thin_support import API, THIN_SECRET, notification, subscription_object, thin_config

from flask_stripe_billing import Settings
from flask_stripe_billing.state import get_state
from flask_stripe_billing.stripe_api import Pacer

THIN = "/stripe/thin-webhook"
RATE_LIMITED = {
    "error": {
        "type": "invalid_request_error",
        "code": "rate_limit",
        "message": "Too many requests hit the API too quickly.",
    }
}
CUSTOMER = load("stripe-openapi/customer.json")
SESSION = load(
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json"
)
CHECKOUT_CONFIG = {
    "STRIPE_API_KEY": "sk_test_51PacingKey0000000000000000",
    "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
    "STRIPE_SUCCESS_URL": "https://app.example.com/billing/success",
    "STRIPE_CANCEL_URL": "https://app.example.com/pricing",
}


class Limited:
    """A ``responses`` callback: Stripe answers 429 ``refusals`` times, then ``body``."""

    def __init__(
        self,
        clock: FakeClock,
        body: dict[str, Any],
        *,
        refusals: int | None = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.clock = clock
        self.body = body
        self.refusals = refusals
        self.headers = {"Retry-After": "1"} if headers is None else headers
        self.sent: list[tuple[float, int]] = []

    def __call__(self, _request: Any) -> tuple[int, dict[str, str], str]:
        refused = self.refusals is None or len(self.sent) < self.refusals
        status = 429 if refused else 200
        self.sent.append((self.clock.now, status))
        answer = self.clock.answer
        if refused:
            return answer(429, json.dumps(RATE_LIMITED), dict(self.headers))
        return answer(200, json.dumps(self.body))


def post_thin(client: Any, body: dict[str, Any]) -> Any:
    return post_event(client, body, secret=THIN_SECRET, path=THIN)


def rows(host: Host) -> dict[str, tuple[str, str | None]]:
    """Event log: id → (status, error)."""
    return {row["id"]: (row["status"], row["error"]) for row in host.events()}


def serve_limited(
    mock: responses.RequestsMock, clock: FakeClock, number: int, **options: Any
) -> Limited:
    """Stripe's API for ``sub_<number>`` (customer ``cus_<number>``), rate limited first."""
    obj = subscription_object(subscription=f"sub_{number}", customer=f"cus_{number}")
    limited = Limited(clock, obj, **options)
    mock.add_callback(responses.GET, f"{API}/v1/subscriptions/sub_{number}", callback=limited)
    return limited


# the pace itself


def test_requests_are_spaced_evenly_at_the_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(4, clock=clock.clock, sleep=clock.sleep)

    for _ in range(5):
        assert pacer.take_turn(deadline=clock.now + 60)
        clock.sent.append(clock.now)

    assert gaps(clock.sent) == [0.25, 0.25, 0.25, 0.25]


def test_a_turn_after_the_deadline_is_refused_and_left_to_others() -> None:
    clock = FakeClock()
    pacer = Pacer(1, clock=clock.clock, sleep=clock.sleep)
    assert pacer.take_turn(deadline=clock.now + 60)

    assert not pacer.take_turn(deadline=clock.now + 0.5)
    assert clock.now == 1000.0  # refused at once, without waiting

    assert pacer.take_turn(deadline=clock.now + 60)
    assert clock.now == 1001.0  # the refused turn was not taken


def test_a_hold_delays_every_later_turn() -> None:
    clock = FakeClock()
    pacer = Pacer(10, clock=clock.clock, sleep=clock.sleep)

    pacer.hold(2.5)
    pacer.take_turn(deadline=clock.now + 60)

    assert clock.now == 1002.5


@pytest.mark.parametrize("value", ["0", "-1", "fast", "1001", "nan"])
def test_a_bad_rate_is_refused_when_settings_are_read(value: str) -> None:
    with pytest.raises(ValueError, match="STRIPE_BILLING_API_RATE"):
        Settings.from_config({"STRIPE_BILLING_API_RATE": value}, environ={})


def test_the_default_pace_keeps_within_stripes_test_mode_limit() -> None:
    settings = Settings.from_config({}, environ={})

    assert 0 < settings.api_rate < 25
    assert settings.api_deadline < 30  # gunicorn's default worker timeout


# thin notifications against Stripe's 429s


def test_a_burst_of_thin_notifications_answered_429_is_applied_at_the_pace(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = make_host(thin_config(STRIPE_BILLING_API_RATE="5"))
    burst = range(1, 7)
    for number in burst:
        host.add_user(number, stripe_customer_id=f"cus_{number}")
    clock = fake_clock(host, monkeypatch)
    stripe = [serve_limited(stripe_api, clock, number) for number in burst]

    answers = [
        post_thin(host.client, notification(related_id=f"sub_{n}", event_id=f"evt_burst_{n}"))
        for n in burst
    ]

    assert [answer.status_code for answer in answers] == [200] * len(burst)
    assert {row: status for row, (status, _) in rows(host).items()} == {
        f"evt_burst_{n}": "processed" for n in burst
    }
    assert {host.user(n).plan for n in burst} == {"pro"}
    for limited in stripe:  # refused once, asked again once Retry-After had passed
        [(refused_at, refused), (asked_at, answered)] = limited.sent
        assert (refused, answered) == (429, 200)
        assert asked_at - refused_at >= 1.0
    assert len(clock.sent) == 2 * len(burst)
    assert min(gaps(clock.sent)) >= 0.2  # never faster than 5 a second


def test_a_429_past_the_calls_deadline_keeps_the_notification_received_for_replay(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = make_host(thin_config())
    host.add_user(1, stripe_customer_id="cus_1")
    clock = fake_clock(host, monkeypatch)
    limited = serve_limited(stripe_api, clock, 1, refusals=None, headers={"Retry-After": "30"})

    answer = post_thin(host.client, notification(related_id="sub_1", event_id="evt_limited"))

    assert answer.status_code == 200
    assert answer.get_json() == {"received": True}
    assert len(limited.sent) == 1  # a 30 s wait does not fit the 10 s deadline: not asked again
    status, error = rows(host)["evt_limited"]
    assert status == "received"
    assert error is not None
    assert error.startswith("could not fetch subscription sub_1: ")
    assert "rate limit (HTTP 429)" in error
    assert host.user(1).plan == "free"

    limited.refusals = 0
    replayed = host.app.test_cli_runner().invoke(args=["billing", "replay", "--all"])

    assert replayed.exit_code == 0, replayed.output
    assert rows(host)["evt_limited"] == ("processed", None)
    assert host.user(1).plan == "pro"


def test_429s_are_retried_with_back_off_until_the_calls_deadline_and_no_longer(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = make_host(thin_config(STRIPE_BILLING_API_DEADLINE="10"))
    host.add_user(1, stripe_customer_id="cus_1")
    clock = fake_clock(host, monkeypatch)
    limited = serve_limited(stripe_api, clock, 1, refusals=None, headers={"Retry-After": "3"})

    answer = post_thin(host.client, notification(related_id="sub_1", event_id="evt_busy"))

    assert answer.status_code == 200
    sent = [at - 1000.0 for at, _ in limited.sent]
    assert len(sent) == 4  # at about 0, 3, 6 and 9 s: a fifth would start past 10 s
    assert all(gap >= 3.0 for gap in gaps(sent))
    assert sent[-1] <= 10.0
    assert rows(host)["evt_busy"][0] == "received"


def test_a_call_whose_turn_comes_past_its_deadline_is_not_sent_and_kept_received(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = make_host(thin_config(STRIPE_BILLING_API_RATE=None))  # the default pace
    host.add_user(1, stripe_customer_id="cus_1")
    clock = fake_clock(host, monkeypatch)
    limited = serve_limited(stripe_api, clock, 1, refusals=0)
    get_state(host.app).require_stripe().pacer.hold(60)  # as after another caller's 429

    answer = post_thin(host.client, notification(related_id="sub_1", event_id="evt_queued"))

    assert answer.status_code == 200
    assert limited.sent == []
    assert clock.now == 1000.0  # refused at once, not after waiting
    status, error = rows(host)["evt_queued"]
    assert status == "received"
    assert error is not None and error.endswith(
        "Stripe could not retrieve a subscription: its turn at 20 requests a second "
        "(STRIPE_BILLING_API_RATE) comes after its deadline"
    )


def test_a_429_stripe_says_not_to_retry_is_not_retried(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = make_host(thin_config())
    host.add_user(1, stripe_customer_id="cus_1")
    clock = fake_clock(host, monkeypatch)
    limited = serve_limited(stripe_api, clock, 1, headers={"Stripe-Should-Retry": "false"})

    post_thin(host.client, notification(related_id="sub_1", event_id="evt_no_retry"))

    assert len(limited.sent) == 1
    assert rows(host)["evt_no_retry"][0] == "received"


def test_a_429_is_waited_out_even_with_network_retries_off(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = make_host(thin_config(STRIPE_API_MAX_RETRIES="0"))
    host.add_user(1, stripe_customer_id="cus_1")
    clock = fake_clock(host, monkeypatch)
    limited = serve_limited(stripe_api, clock, 1)

    post_thin(host.client, notification(related_id="sub_1", event_id="evt_waited"))

    assert [status for _, status in limited.sent] == [429, 200]
    assert rows(host)["evt_waited"][0] == "processed"


def test_a_5xx_is_retried_once_by_one_loop_not_twice(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = make_host(thin_config())  # STRIPE_API_MAX_RETRIES: 1 by default
    host.add_user(1, stripe_customer_id="cus_1")
    clock = fake_clock(host, monkeypatch)
    url = f"{API}/v1/subscriptions/sub_1"
    down = {"error": {"type": "api_error", "message": "down"}}
    stripe_api.add_callback(
        responses.GET, url, callback=lambda _r: clock.answer(500, json.dumps(down))
    )

    post_thin(host.client, notification(related_id="sub_1", event_id="evt_down"))

    assert len(clock.sent) == 2
    assert 0.5 <= clock.now - 1000.0 <= 1.0  # stripe-python's first back-off, on our clock
    assert rows(host)["evt_down"][0] == "received"


# every path shares the pace


def test_checkout_waits_out_a_429_and_keeps_the_pace_shared_with_thin_fetches(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    config = {**CHECKOUT_CONFIG, **thin_config(), "STRIPE_BILLING_API_RATE": "2"}
    host = make_host(config, current_user_id=lambda: request.headers.get("X-User"))
    host.add_user(1, stripe_customer_id="cus_1")
    host.add_user(2)
    clock = fake_clock(host, monkeypatch)
    serve_limited(stripe_api, clock, 1, refusals=0)
    customers = Limited(clock, {**CUSTOMER, "id": "cus_2"})
    stripe_api.add_callback(responses.POST, f"{API}/v1/customers", callback=customers)
    stripe_api.add_callback(
        responses.POST,
        f"{API}/v1/checkout/sessions",
        callback=lambda _r: clock.answer(200, json.dumps(SESSION)),
    )

    post_thin(host.client, notification(related_id="sub_1", event_id="evt_shared"))
    answer = host.client.post("/billing/checkout-session", json={}, headers={"X-User": "2"})

    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["id"] == SESSION["id"]
    assert host.user(2).stripe_customer_id == "cus_2"
    assert [status for _, status in customers.sent] == [429, 200]
    assert len(clock.sent) == 4  # thin fetch, customer (429, then 200), Checkout session
    assert min(gaps(clock.sent)) >= 0.5  # one pace of 2 a second over both paths


def test_checkout_past_the_deadline_of_429s_is_a_502_naming_the_rate_limit(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = make_host(CHECKOUT_CONFIG, current_user_id=lambda: "1")
    host.add_user(1)
    clock = fake_clock(host, monkeypatch)
    customers = Limited(clock, CUSTOMER, refusals=None, headers={"Retry-After": "60"})
    stripe_api.add_callback(responses.POST, f"{API}/v1/customers", callback=customers)

    answer = host.client.post("/billing/checkout-session", json={})

    assert answer.status_code == 502
    body = answer.get_json()
    assert body["error"] == "external_service_error"
    assert body["message"] == (
        "Stripe could not create a customer: "
        "Stripe's rate limit (HTTP 429) outlasted the call's deadline"
    )
    assert body["details"]["status"] == 429
    assert len(customers.sent) == 1
    assert host.user(1).stripe_customer_id is None
    assert calls_to(stripe_api, "checkout/sessions") == []


def test_sync_all_paces_its_pages_and_says_so_in_its_progress_line(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    default_pace = {"STRIPE_BILLING_API_RATE": None}
    host = make_host({"STRIPE_API_KEY": CHECKOUT_CONFIG["STRIPE_API_KEY"], **default_pace})
    clock = fake_clock(host, monkeypatch)
    pages = iter([True, True, False])  # has_more of each page

    def page(_request: Any) -> tuple[int, dict[str, str], str]:
        number = len(clock.sent)
        obj = subscription_object(subscription=f"sub_page_{number}", customer=f"cus_{number}")
        body = {"object": "list", "data": [obj], "has_more": next(pages)}
        return clock.answer(200, json.dumps(body))

    stripe_api.add_callback(responses.GET, f"{API}/v1/subscriptions", callback=page)

    result = host.app.test_cli_runner().invoke(args=["billing", "sync", "--all"])

    assert result.exit_code == 0, result.output
    assert "Syncing subscriptions, paced at 20 requests/s (STRIPE_BILLING_API_RATE)" in (
        result.output
    )
    assert gaps(clock.sent) == [0.05, 0.05]
