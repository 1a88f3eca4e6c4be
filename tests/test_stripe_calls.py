"""Calls to Stripe's API take a bounded time, and anything but a good answer is a 502 JSON.

Stripe's HTTP API is mocked with responses (stripe-python really runs), or,
for a silent API, reached through a local proxy that never answers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
from conftest import Host
from flask import request
from support import load

from flask_stripe_billing import Settings

API = "https://api.stripe.com/v1"
API_KEY = "sk_test_51StripeCallsKey00000000000"
CONFIG = {
    "STRIPE_API_KEY": API_KEY,
    "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
    "STRIPE_SUCCESS_URL": "https://app.example.com/billing/success",
    "STRIPE_CANCEL_URL": "https://app.example.com/pricing",
}
CUSTOMER = load("stripe-openapi/customer.json")
SESSION = load(
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json"
)
PORTAL = load("api-objects/pay-rails-vcr__2026-03-25.dahlia__billing_portal.session.json")


@pytest.fixture
def shop(make_host: Callable[..., Host]) -> Callable[..., Host]:
    """A host whose current user is named by the X-User header; user 1 has no customer."""

    def make(**config: Any) -> Host:
        made = make_host(
            {**CONFIG, **config}, current_user_id=lambda: request.headers.get("X-User")
        )
        made.add_user(1, email="ada@example.com")
        return made

    return make


def link_customer(host: Host) -> None:
    with host.app.app_context():
        host.db.session.get(host.User, 1).stripe_customer_id = "cus_known"
        host.db.session.commit()


def checkout(host: Host) -> Any:
    return host.client.post("/billing/checkout-session", json={}, headers={"X-User": "1"})


def portal(host: Host) -> Any:
    return host.client.get("/billing/portal", headers={"X-User": "1"})


def assert_stripe_502(response: Any, message: str) -> dict[str, Any]:
    assert response.status_code == 502, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == "external_service_error"
    assert body["message"] == message
    assert body["details"]["service"] == "Stripe"
    assert API_KEY not in response.get_data(as_text=True)
    return body


# Timeouts and retries


def test_read_timeout_is_a_fast_502_with_the_default_bounds_and_nothing_stored(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    stripe_api.add(responses.POST, f"{API}/customers", body=requests.exceptions.ReadTimeout())

    started = time.monotonic()
    response = checkout(host)
    elapsed = time.monotonic() - started

    assert_stripe_502(response, "Stripe could not create a customer")
    assert elapsed < 3
    calls = stripe_api.calls
    assert len(calls) == 2  # the first attempt and one retry
    assert [call.request.req_kwargs["timeout"] for call in calls] == [(2.0, 3.0), (2.0, 3.0)]
    assert host.user(1).stripe_customer_id is None
    assert [c.request.url for c in calls if "checkout" in c.request.url] == []


def test_connect_timeout_on_the_portal_is_a_502(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    link_customer(host)
    stripe_api.add(
        responses.POST,
        f"{API}/billing_portal/sessions",
        body=requests.exceptions.ConnectTimeout(),
    )

    response = portal(host)

    assert_stripe_502(response, "Stripe could not create a billing portal session")
    assert len(stripe_api.calls) == 2


def test_configured_timeouts_and_retries_are_what_requests_gets(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(
        STRIPE_API_CONNECT_TIMEOUT="0.5", STRIPE_API_READ_TIMEOUT="1.5", STRIPE_API_MAX_RETRIES="0"
    )
    stripe_api.add(responses.POST, f"{API}/customers", body=requests.exceptions.ReadTimeout())

    response = checkout(host)

    assert_stripe_502(response, "Stripe could not create a customer")
    assert [call.request.req_kwargs["timeout"] for call in stripe_api.calls] == [(0.5, 1.5)]


def test_the_default_worst_case_stays_well_under_a_30_second_worker_timeout() -> None:
    settings = Settings()
    attempts = 1 + settings.api_max_retries
    per_attempt = settings.api_connect_timeout + settings.api_read_timeout
    backoff = 0.5 * settings.api_max_retries  # stripe-python's first retry delay

    assert attempts * per_attempt + backoff <= 11


@pytest.mark.parametrize(
    "name, value",
    [
        ("STRIPE_API_CONNECT_TIMEOUT", "0"),
        ("STRIPE_API_READ_TIMEOUT", "-1"),
        ("STRIPE_API_READ_TIMEOUT", "soon"),
        ("STRIPE_API_MAX_RETRIES", "-1"),
        ("STRIPE_API_MAX_RETRIES", "1.5"),
    ],
)
def test_invalid_bounds_are_refused_when_settings_are_read(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Settings.from_config({name: value}, environ={})


@pytest.fixture
def silent_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Route HTTPS through a local proxy that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{port}")
        yield


def test_silent_stripe_api_is_a_502_within_the_configured_bounds(
    shop: Callable[..., Host], silent_proxy: None
) -> None:
    host = shop(
        STRIPE_API_CONNECT_TIMEOUT="0.3", STRIPE_API_READ_TIMEOUT="0.3", STRIPE_API_MAX_RETRIES="1"
    )

    started = time.monotonic()
    response = checkout(host)
    elapsed = time.monotonic() - started

    assert_stripe_502(response, "Stripe could not create a customer")
    assert 0.5 < elapsed < 4, elapsed  # two attempts of 0.3 s each, a 0.5 s back-off
    assert host.user(1).stripe_customer_id is None


# Unexpected answers


def test_customer_answer_without_an_id_is_a_502_and_nothing_stored(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    stripe_api.add(responses.POST, f"{API}/customers", json={"object": "customer"})

    response = checkout(host)

    assert_stripe_502(response, "Stripe could not create a customer: its answer has no id")
    assert host.user(1).stripe_customer_id is None


def test_checkout_session_with_a_null_url_is_a_502(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json={**SESSION, "url": None})

    response = checkout(host)

    assert_stripe_502(response, "Stripe could not create a Checkout session: its answer has no url")
    assert "None" not in response.get_data(as_text=True)


def test_portal_answer_without_a_url_is_a_502(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    link_customer(host)
    answer = {key: value for key, value in PORTAL.items() if key != "url"}
    stripe_api.add(responses.POST, f"{API}/billing_portal/sessions", json=answer)

    response = portal(host)

    assert_stripe_502(
        response, "Stripe could not create a billing portal session: its answer has no url"
    )


@pytest.mark.parametrize(
    "body, message",
    [
        ("[1, 2]", "Stripe could not create a customer: its answer has no id"),
        ("<html>gateway</html>", "Stripe could not create a customer"),
        ("", "Stripe could not create a customer"),
    ],
    ids=["a JSON list", "HTML", "empty"],
)
def test_odd_200_answers_are_a_502(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock, body: str, message: str
) -> None:
    host = shop()
    stripe_api.add(responses.POST, f"{API}/customers", body=body, status=200)

    response = checkout(host)

    assert_stripe_502(response, message)
    assert host.user(1).stripe_customer_id is None


def test_a_good_answer_still_gives_the_session(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    response = checkout(host)

    assert response.status_code == 200
    assert response.get_json() == {"id": SESSION["id"], "url": SESSION["url"]}
    assert host.user(1).stripe_customer_id == CUSTOMER["id"]
