"""The library's Checkout never leaves two payable subscription sessions: a new one expires
the customer's other open ones (two tabs, an old link); one paid meanwhile is a 409."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import responses
from conftest import Host
from flask import request
from test_checkout import API, CONFIG, SESSION, as_user

OLD = copy.deepcopy(SESSION)
OLD["id"] = "cs_test_old_tab"
PURCHASE = copy.deepcopy(SESSION)
PURCHASE.update(id="cs_test_credit_pack", mode="payment")


@pytest.fixture
def shop(make_host: Callable[..., Host]) -> Host:
    host = make_host(
        {**CONFIG, "STRIPE_API_MAX_RETRIES": "0"},
        current_user_id=lambda: request.headers.get("X-User"),
    )
    host.add_user(2, stripe_customer_id="cus_existing")
    return host


def listing(*sessions: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": list(sessions),
        "has_more": False,
        "url": "/v1/checkout/sessions",
    }


def expired(session: dict[str, Any]) -> dict[str, Any]:
    return {**session, "status": "expired", "url": None}


def test_a_new_checkout_expires_the_other_open_subscription_session(
    shop: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)
    stripe_api.replace(
        responses.GET, f"{API}/checkout/sessions", json=listing(SESSION, OLD, PURCHASE)
    )
    expire = stripe_api.add(
        responses.POST, f"{API}/checkout/sessions/{OLD['id']}/expire", json=expired(OLD)
    )

    response = shop.client.post("/billing/checkout-session", json={}, headers=as_user("2"))

    assert response.status_code == 200
    assert response.get_json()["id"] == SESSION["id"]
    [listed] = [c for c in stripe_api.calls if "status=open" in c.request.url]
    assert "customer=cus_existing" in listed.request.url and "status=open" in listed.request.url
    assert expire.call_count == 1
    key = expire.calls[0].request.headers["Idempotency-Key"]
    assert key == f"flask-stripe-billing-expire-{OLD['id']}"
    urls = [c.request.url for c in stripe_api.calls]
    assert not any(PURCHASE["id"] in url or f"{SESSION['id']}/expire" in url for url in urls)


def test_a_double_click_given_the_same_session_back_expires_nothing(
    shop: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)
    stripe_api.replace(responses.GET, f"{API}/checkout/sessions", json=listing(SESSION))

    response = shop.client.post("/billing/checkout-session", json={}, headers=as_user("2"))

    assert response.status_code == 200
    assert [c for c in stripe_api.calls if "/expire" in c.request.url] == []


def expiry_refused(
    stripe_api: responses.RequestsMock, status: int, error: str, older: dict[str, Any]
) -> Any:
    """A new session beside OLD, whose expiry Stripe refuses (``status``) and which Stripe
    then shows as ``older``; the mock of the new session's own expiry."""
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)
    stripe_api.replace(responses.GET, f"{API}/checkout/sessions", json=listing(SESSION, OLD))
    refused = {"error": {"type": error, "message": "refused"}}
    stripe_api.add(
        responses.POST, f"{API}/checkout/sessions/{OLD['id']}/expire", status=status, json=refused
    )
    stripe_api.add(responses.GET, f"{API}/checkout/sessions/{OLD['id']}", json=older)
    return stripe_api.add(
        responses.POST, f"{API}/checkout/sessions/{SESSION['id']}/expire", json=expired(SESSION)
    )


def test_an_older_session_paid_meanwhile_is_a_409_and_the_new_one_expires(
    shop: Host, stripe_api: responses.RequestsMock
) -> None:
    new_expired = expiry_refused(
        stripe_api, 400, "invalid_request_error", {**OLD, "status": "complete"}
    )

    response = shop.client.post("/billing/checkout-session", json={}, headers=as_user("2"))

    assert response.status_code == 409
    assert response.get_json()["error"] == "conflict"
    assert response.get_json()["details"] == {"session": OLD["id"]}
    assert new_expired.call_count == 1


def test_an_older_session_that_expired_on_its_own_is_passed_over(
    shop: Host, stripe_api: responses.RequestsMock
) -> None:
    new_expired = expiry_refused(stripe_api, 400, "invalid_request_error", expired(OLD))

    response = shop.client.post("/billing/checkout-session", json={}, headers=as_user("2"))

    assert response.status_code == 200
    assert new_expired.call_count == 0


def test_stripe_down_while_expiring_is_a_502_and_the_new_session_expires_too(
    shop: Host, stripe_api: responses.RequestsMock
) -> None:
    new_expired = expiry_refused(stripe_api, 500, "api_error", OLD)

    response = shop.client.post("/billing/checkout-session", json={}, headers=as_user("2"))

    assert response.status_code == 502
    assert new_expired.call_count == 1
