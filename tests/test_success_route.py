"""The default success route ``GET /billing/success``: the Checkout session synced, a 303 on
with a flash; a Stripe failure still goes on (the webhook follows); opt-out per app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import responses
from conftest import Host
from flask import Flask, request
from support import SECRET, checkout_event, post_event
from test_checkout import API, CONFIG, SESSION

from flask_stripe_billing import InMemoryUserStore, StripeBilling

COMPLETED = {
    **SESSION,
    "status": "complete",
    "payment_status": "paid",
    "client_reference_id": "1",
    "subscription": "sub_new",
}
SESSION_URL = f"{API}/checkout/sessions/{SESSION['id']}"
SUCCESS = f"/billing/success?session_id={SESSION['id']}"


@pytest.fixture
def shop(make_host: Callable[..., Host]) -> Callable[..., Host]:
    """A host with sessions (flash messages) and user 1, named by the X-User header."""

    def make(url_prefix: str | None = None, **config: Any) -> Host:
        host = make_host(
            {**CONFIG, "SECRET_KEY": "test", **config},
            url_prefix=url_prefix,
            current_user_id=lambda: request.headers.get("X-User"),
        )
        host.add_user(1, email="ada@example.com")
        return host

    return make


def flashes(client: Any) -> list[tuple[str, str]]:
    with client.session_transaction() as session:
        return list(session.get("_flashes", []))


def test_the_success_route_syncs_the_session_and_redirects_with_a_flash(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    client = host.client
    stripe_api.add(responses.GET, SESSION_URL, json=COMPLETED)

    response = client.get(SUCCESS, headers={"X-User": "1"})

    assert (response.status_code, response.headers["Location"]) == (303, "/")
    assert flashes(client) == [("success", "Thank you! You are now on the pro plan.")]
    (call,) = stripe_api.calls
    assert call.request.method == "GET"
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_id) == ("pro", "sub_new")


def test_the_target_may_be_an_endpoint_and_the_user_need_not_be_signed_in(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(STRIPE_BILLING_AFTER_CHECKOUT_URL="account")
    host.app.add_url_rule("/account", "account", lambda: "account")
    stripe_api.add(responses.GET, SESSION_URL, json=COMPLETED)

    response = host.client.get(SUCCESS)

    assert (response.status_code, response.headers["Location"]) == (303, "/account")
    assert host.user(1).plan == "pro"


def test_a_stripe_failure_flashes_and_still_redirects_and_the_webhook_follows(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(STRIPE_API_MAX_RETRIES="0")
    client = host.client
    stripe_api.add(responses.GET, SESSION_URL, status=500, json={"error": {"message": "down"}})

    response = client.get(SUCCESS, headers={"X-User": "1"})

    assert (response.status_code, response.headers["Location"]) == (303, "/")
    ((category, message),) = flashes(client)
    assert category == "warning"
    assert "your plan changes as soon as Stripe tells us" in message
    assert host.user(1).plan == "free"
    event = checkout_event(customer=SESSION["customer"], client_reference_id="1")
    assert post_event(client, event).status_code == 200
    assert host.user(1).plan == "pro"


def test_without_an_api_key_it_still_redirects(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    client = shop(STRIPE_API_KEY=None).client

    response = client.get(SUCCESS)

    assert (response.status_code, response.headers["Location"]) == (303, "/")
    assert flashes(client)[0][0] == "warning"
    assert list(stripe_api.calls) == []


def test_an_unpaid_session_says_the_payment_is_being_confirmed(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    client = host.client
    stripe_api.add(responses.GET, SESSION_URL, json={**COMPLETED, "payment_status": "unpaid"})

    response = client.get(SUCCESS, headers={"X-User": "1"})

    assert response.status_code == 303
    assert flashes(client) == [
        ("warning", "Thank you! Your payment is being confirmed; your plan changes in a moment.")
    ]
    assert host.user(1).plan == "free"


@pytest.mark.parametrize(
    "query", ["", "?session_id=", "?session_id=sub_123", "?session_id=cs_x%2F..%2Fcustomers"]
)
def test_a_link_naming_no_session_asks_stripe_nothing(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock, query: str
) -> None:
    client = shop().client

    response = client.get(f"/billing/success{query}")

    assert (response.status_code, response.headers["Location"]) == (303, "/")
    assert flashes(client) == [("error", "This link names no Checkout session.")]
    assert list(stripe_api.calls) == []


def test_the_route_follows_the_blueprints_prefix_and_answers_405_json(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(url_prefix="/api")
    stripe_api.add(responses.GET, SESSION_URL, json=COMPLETED)

    response = host.client.get(f"/api{SUCCESS}")
    posted = host.client.post(f"/api{SUCCESS}")

    assert (response.status_code, response.headers["Location"]) == (303, "/")
    assert (posted.status_code, posted.headers["Allow"]) == (405, "GET")
    assert posted.get_json()["error"] == "method_not_allowed"


def test_opting_out_leaves_the_path_to_the_hosts_own_view(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(STRIPE_BILLING_SUCCESS_ROUTE="false")
    host.app.add_url_rule("/billing/success", "own_success", lambda: "our own thank-you page")

    response = host.client.get(SUCCESS)

    assert (response.status_code, response.get_data(as_text=True)) == (
        200,
        "our own thank-you page",
    )
    assert list(stripe_api.calls) == []


def test_one_extension_on_two_apps_follows_each_apps_setting() -> None:
    billing = StripeBilling(user_store=InMemoryUserStore([]))
    on, off = Flask("on"), Flask("off")
    off.config["STRIPE_BILLING_SUCCESS_ROUTE"] = False
    for app in (on, off):
        app.config["STRIPE_WEBHOOK_SECRET"] = SECRET
        billing.init_app(app)

    assert on.test_client().get("/billing/success").status_code == 303
    assert off.test_client().get("/billing/success").status_code == 404
