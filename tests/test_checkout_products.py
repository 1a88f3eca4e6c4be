"""Selling one-time products through Checkout: ``{"product", "quantity"}`` on the JSON and
form routes and the checkout button makes a payment-mode session; Stripe's HTTP API mocked
by responses, its answers the real payment-mode session recorded by pay-rails."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import responses
from conftest import Host
from flask import render_template_string, request
from flask_wtf.csrf import CSRFProtect
from support import load
from test_buttons import forms_of
from test_checkout import (
    API,
    CONFIG,
    CUSTOMER,
    SESSION,
    as_user,
    form,
    stripe_calls,
    subscribe,
)

from flask_stripe_billing.config import Settings

PRODUCTS = {"price_credits_100": "credits_100", "price_lifetime": "lifetime"}
#: Stripe's answer to creating our purchase session: the recorded payment-mode session with
#: the metadata we send.
PURCHASE = load(
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_payment.open.json"
)
PURCHASE["metadata"] = {
    "user_id": "1",
    "stripe_billing_product": "credits_100",
    "stripe_billing_quantity": "1",
}
SESSIONS = f"{API}/checkout/sessions"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def shop(make_host: Callable[..., Host]) -> Callable[..., Host]:
    """A host selling two products; user 1 (no customer yet) named by the X-User header."""

    def make(**config: Any) -> Host:
        made = make_host(
            {**CONFIG, "STRIPE_BILLING_PRODUCTS": PRODUCTS, "STRIPE_API_MAX_RETRIES": 0, **config},
            current_user_id=lambda: request.headers.get("X-User"),
        )
        made.add_user(1, email="ada@example.com")
        return made

    return make


def buy(host: Host, body: Any, user: str | None = "1") -> Any:
    return host.client.post("/billing/checkout-session", json=body, headers=as_user(user))


def purchase_fields(
    quantity: str = "1", user: str = "1", customer: str = CUSTOMER["id"]
) -> dict[str, str]:
    """Every field of the session request for ``quantity`` of credits_100."""
    return {
        "mode": "payment",
        "customer": customer,
        "line_items[0][price]": "price_credits_100",
        "line_items[0][quantity]": quantity,
        "success_url": CONFIG["STRIPE_SUCCESS_URL"],
        "cancel_url": CONFIG["STRIPE_CANCEL_URL"],
        "client_reference_id": user,
        "metadata[user_id]": user,
        "metadata[stripe_billing_product]": "credits_100",
        "metadata[stripe_billing_quantity]": quantity,
        "payment_intent_data[metadata][user_id]": user,
        "payment_intent_data[metadata][stripe_billing_product]": "credits_100",
        "payment_intent_data[metadata][stripe_billing_quantity]": quantity,
        "allow_promotion_codes": "false",
    }


# The request sent to Stripe


def test_a_product_checkout_creates_the_customer_then_a_payment_session(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock, received: dict[str, Any]
) -> None:
    host = shop()
    stored_before_session: list[str | None] = []

    def session_created(req: Any) -> tuple[int, dict[str, str], str]:
        stored_before_session.append(host.user(1).stripe_customer_id)
        return 200, {"Request-Id": "req_purchase"}, json.dumps(PURCHASE)

    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add_callback(responses.POST, SESSIONS, callback=session_created)

    response = buy(host, {"product": "credits_100", "quantity": 3})

    assert response.status_code == 200
    assert response.json == {"id": PURCHASE["id"], "url": PURCHASE["url"]}
    assert host.user(1).stripe_customer_id == CUSTOMER["id"]
    assert stored_before_session == [CUSTOMER["id"]]  # the same path as a subscription's
    (customer_call,) = stripe_calls(stripe_api, "/customers")
    assert form(customer_call) == {"email": "ada@example.com", "metadata[user_id]": "1"}
    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    assert form(call) == purchase_fields("3")
    assert call.request.headers["Idempotency-Key"].startswith("flask-stripe-billing-checkout-")
    # A customer made by this request has no other session: nothing is listed.
    assert [c for c in stripe_api.calls if "status=open" in c.request.url] == []
    (created,) = received["checkout_session_created"]
    assert {
        k: created[k] for k in ("user_id", "session_id", "price_id", "product", "quantity")
    } == {
        "user_id": "1",
        "session_id": PURCHASE["id"],
        "price_id": "price_credits_100",
        "product": "credits_100",
        "quantity": 3,
    }
    assert host.user(1).plan == "free"  # a session grants nothing: the webhook records it


def test_without_a_quantity_one_is_sold_to_the_stored_customer(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_existing")
    stripe_api.add(responses.POST, SESSIONS, json=PURCHASE)

    response = buy(host, {"product": "credits_100"}, user="2")

    assert response.status_code == 200
    assert stripe_calls(stripe_api, "/customers") == []
    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    assert form(call) == purchase_fields("1", user="2", customer="cus_existing")


def test_a_subscriber_may_buy_a_product_without_the_409(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    subscribe(host, 2, "cus_paying", "sub_current", "active")
    stripe_api.add(responses.POST, SESSIONS, json=PURCHASE)

    response = buy(host, {"product": "lifetime"}, user="2")

    assert response.status_code == 200
    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    sent = form(call)
    assert (sent["mode"], sent["line_items[0][price]"]) == ("payment", "price_lifetime")
    assert sent["metadata[stripe_billing_product]"] == "lifetime"
    assert host.user(2).plan == "pro"


def test_checkout_options_reach_a_purchase_but_the_plans_coupon_does_not(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(
        STRIPE_CHECKOUT_AUTOMATIC_TAX=True,
        STRIPE_CHECKOUT_TAX_ID_COLLECTION=True,
        STRIPE_CHECKOUT_BILLING_ADDRESS="required",
        STRIPE_CHECKOUT_COUPON="coupon_launch",
        STRIPE_CHECKOUT_LOCALE="fr",
        STRIPE_ALLOW_PROMOTION_CODES=True,
        STRIPE_TRIAL_DAYS=14,
    )
    host.add_user(2, stripe_customer_id="cus_existing")
    stripe_api.add(responses.POST, SESSIONS, json=PURCHASE)

    assert buy(host, {"product": "credits_100"}, user="2").status_code == 200

    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    base = purchase_fields("1", user="2", customer="cus_existing")
    sent = form(call)
    assert {key: value for key, value in sent.items() if key not in base} == {
        "automatic_tax[enabled]": "true",
        "tax_id_collection[enabled]": "true",
        "customer_update[address]": "auto",
        "customer_update[name]": "auto",
        "billing_address_collection": "required",
        "locale": "fr",
    }
    assert sent["allow_promotion_codes"] == "true"  # no trial, no coupon, no subscription_data


def test_a_double_click_sends_the_same_key_and_another_quantity_another(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_existing")
    stripe_api.add(responses.POST, SESSIONS, json=PURCHASE)

    for quantity in (2, 2, 5):
        assert buy(host, {"product": "credits_100", "quantity": quantity}, "2").status_code == 200

    keys = [
        c.request.headers["Idempotency-Key"] for c in stripe_calls(stripe_api, "/checkout/sessions")
    ]
    assert keys[0] == keys[1] != keys[2]


# What is refused before Stripe is asked


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"product": "credits_1000000"}, "product is not one of the configured products"),
        ({"product": 100}, "product is not one of the configured products"),
        ({"product": ["credits_100"]}, "product is not one of the configured products"),
        ({"product": "price_credits_100"}, "product is not one of the configured products"),
        (
            {"product": "credits_100", "price_id": "price_monthly"},
            "Send product alone, without price_id or interval",
        ),
        (
            {"product": "credits_100", "interval": "yearly"},
            "Send product alone, without price_id or interval",
        ),
    ],
    ids=["unknown", "number", "list", "a-price-id", "with-price_id", "with-interval"],
)
def test_a_product_that_is_not_configured_is_400_naming_the_field(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock, body: Any, message: str
) -> None:
    host = shop()

    response = buy(host, body)

    assert response.status_code == 400
    assert response.json == {
        "error": "validation_error",
        "message": message,
        "details": {"field": "product"},
    }
    assert len(stripe_api.calls) == 0
    assert host.user(1).stripe_customer_id is None


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        (0, "quantity must be from 1 to 100"),
        (-3, "quantity must be from 1 to 100"),
        (101, "quantity must be from 1 to 100"),
        (10**30, "quantity must be from 1 to 100"),
        (2.0, "quantity must be a whole number"),
        (1.5, "quantity must be a whole number"),
        ("2", "quantity must be a whole number"),
        (True, "quantity must be a whole number"),
        ([2], "quantity must be a whole number"),
        ({"n": 2}, "quantity must be a whole number"),
    ],
)
def test_a_bad_quantity_is_400_with_the_bounds(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock, quantity: Any, message: str
) -> None:
    host = shop()

    response = buy(host, {"product": "credits_100", "quantity": quantity})

    assert response.status_code == 400
    assert response.json == {
        "error": "validation_error",
        "message": message,
        "details": {"field": "quantity", "min": 1, "max": 100},
    }
    assert len(stripe_api.calls) == 0


def test_the_seat_bounds_do_not_apply_to_a_product(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(STRIPE_SEATS_MAX=5)
    host.add_user(2, stripe_customer_id="cus_existing")
    stripe_api.add(responses.POST, SESSIONS, json=PURCHASE)

    assert buy(host, {"product": "credits_100", "quantity": 100}, "2").status_code == 200
    assert buy(host, {"interval": "monthly", "quantity": 100}, "2").status_code == 400


@pytest.mark.parametrize("user", [None, "99"], ids=["anonymous", "unknown-user"])
def test_a_purchase_without_a_known_user_is_401(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock, user: str | None
) -> None:
    host = shop()

    response = buy(host, {"product": "credits_100"}, user=user)

    assert (response.status_code, response.json["error"]) == (401, "authentication_error")
    assert len(stripe_api.calls) == 0


@pytest.mark.parametrize(
    ("missing", "named"),
    [("STRIPE_API_KEY", ["STRIPE_API_KEY"]), ("STRIPE_CANCEL_URL", ["STRIPE_CANCEL_URL"])],
)
def test_a_purchase_without_configuration_is_503(
    shop: Callable[..., Host],
    stripe_api: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
    missing: str,
    named: list[str],
) -> None:
    monkeypatch.delenv(missing, raising=False)
    host = shop(**{missing: None})

    response = buy(host, {"product": "credits_100"})

    assert response.status_code == 503
    assert response.json["details"] == {"service": "Stripe", "missing": named}
    assert len(stripe_api.calls) == 0


def test_a_price_configured_as_a_plan_and_a_product_is_refused_at_set_up() -> None:
    with pytest.raises(ValueError, match="price_monthly, which is also a plan's price"):
        Settings.from_config(
            {
                "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
                "STRIPE_BILLING_PRODUCTS": "price_monthly=x",
            },
            {},
        )
    with pytest.raises(ValueError, match="price_team, which is also a plan's price"):
        Settings.from_config(
            {
                "STRIPE_BILLING_PLANS": {"price_team": "team"},
                "STRIPE_BILLING_PRODUCTS": {"price_team": "team_pack"},
            },
            {},
        )


def test_a_products_price_is_not_a_price_id_a_subscription_may_name(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    response = buy(shop(), {"price_id": "price_credits_100"})

    assert (response.status_code, response.json["details"]) == (400, {"field": "price_id"})
    assert len(stripe_api.calls) == 0


# Stripe failing


RECURRING_REFUSED = {
    "error": {
        "message": "You specified `payment` mode but passed a recurring price. Either switch "
        "to `subscription` mode or use only one-time prices.",
        "param": "line_items[0][price]",
        "type": "invalid_request_error",
    }
}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, RECURRING_REFUSED),
        (500, {"error": {"type": "api_error", "message": "An unknown error occurred"}}),
    ],
    ids=["400-recurring-price", "500"],
)
def test_stripe_refusing_the_session_is_a_502_with_its_request_id(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock, status: int, body: Any
) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_existing")
    stripe_api.add(
        responses.POST, SESSIONS, status=status, json=body, headers={"Request-Id": "req_refused"}
    )

    response = buy(host, {"product": "credits_100"}, user="2")

    assert response.status_code == 502
    assert response.json == {
        "error": "external_service_error",
        "message": "Stripe could not create a Checkout session",
        "details": {"service": "Stripe", "request_id": "req_refused", "status": status},
    }
    assert "recurring" not in response.get_data(as_text=True)  # Stripe's text is not echoed


def test_stripe_failing_to_make_the_customer_stores_nothing_and_makes_no_session(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    stripe_api.add(
        responses.POST,
        f"{API}/customers",
        status=503,
        json={"error": {"type": "api_error", "message": "down"}},
    )

    response = buy(host, {"product": "credits_100"})

    assert response.status_code == 502
    assert response.json["message"] == "Stripe could not create a customer"
    assert host.user(1).stripe_customer_id is None
    assert stripe_calls(stripe_api, "/checkout/sessions") == []


@pytest.mark.parametrize(
    "answer",
    [
        {**PURCHASE, "url": None},
        {key: value for key, value in PURCHASE.items() if key != "id"},
    ],
    ids=["no-url", "no-id"],
)
def test_an_unreadable_answer_is_a_502(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock, answer: dict[str, Any]
) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_existing")
    stripe_api.add(responses.POST, SESSIONS, json=answer)

    response = buy(host, {"product": "credits_100"}, user="2")

    assert response.status_code == 502
    assert response.json["message"].startswith("Stripe could not create a Checkout session: ")


def test_an_answer_that_is_not_json_is_a_502(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_existing")
    stripe_api.add(responses.POST, SESSIONS, body="<html>gateway</html>", status=200)

    response = buy(host, {"product": "credits_100"}, user="2")

    assert response.status_code == 502
    assert response.json["error"] == "external_service_error"


# One payable session per product: the open-session rule


def listing(*sessions: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": list(sessions),
        "has_more": False,
        "url": "/v1/checkout/sessions",
    }


def open_session(
    session_id: str, base: dict[str, Any] = PURCHASE, **changes: Any
) -> dict[str, Any]:
    return {**copy.deepcopy(base), "id": session_id, **changes}


OLD_TAB = open_session("cs_test_old_tab_credits")
OTHER_PRODUCT = open_session(
    "cs_test_lifetime",
    metadata={"user_id": "2", "stripe_billing_product": "lifetime", "stripe_billing_quantity": "1"},
)
HOSTS_OWN = open_session("cs_test_hosts_own_payment", metadata={})
SUBSCRIPTION = open_session("cs_test_subscription", SESSION)


@pytest.fixture
def returning(shop: Callable[..., Host]) -> Host:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_existing")
    return host


def test_an_earlier_open_session_of_the_same_product_is_expired_and_only_that_one(
    returning: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.add(responses.POST, SESSIONS, json=PURCHASE)
    stripe_api.replace(
        responses.GET,
        SESSIONS,
        json=listing(PURCHASE, OLD_TAB, OTHER_PRODUCT, HOSTS_OWN, SUBSCRIPTION),
    )
    expire = stripe_api.add(
        responses.POST,
        f"{SESSIONS}/{OLD_TAB['id']}/expire",
        json={**OLD_TAB, "status": "expired", "url": None},
    )

    response = buy(returning, {"product": "credits_100", "quantity": 2}, user="2")

    assert response.status_code == 200
    assert response.json["id"] == PURCHASE["id"]
    [listed] = [c for c in stripe_api.calls if "status=open" in c.request.url]
    assert "customer=cus_existing" in listed.request.url
    assert expire.call_count == 1
    assert expire.calls[0].request.headers["Idempotency-Key"] == (
        f"flask-stripe-billing-expire-{OLD_TAB['id']}"
    )
    expired = [c.request.url for c in stripe_api.calls if c.request.url.endswith("/expire")]
    assert expired == [f"{SESSIONS}/{OLD_TAB['id']}/expire"]


def test_a_subscription_checkout_leaves_an_open_purchase_alone(
    returning: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.add(responses.POST, SESSIONS, json=SESSION)
    stripe_api.replace(responses.GET, SESSIONS, json=listing(SESSION, OLD_TAB))

    assert buy(returning, {"interval": "monthly"}, user="2").status_code == 200

    assert [c for c in stripe_api.calls if "/expire" in c.request.url] == []


def test_an_earlier_purchase_paid_meanwhile_is_a_409_and_the_new_session_expires(
    returning: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.add(responses.POST, SESSIONS, json=PURCHASE)
    stripe_api.replace(responses.GET, SESSIONS, json=listing(PURCHASE, OLD_TAB))
    stripe_api.add(
        responses.POST,
        f"{SESSIONS}/{OLD_TAB['id']}/expire",
        status=400,
        json={"error": {"type": "invalid_request_error", "message": "not open"}},
    )
    stripe_api.add(
        responses.GET,
        f"{SESSIONS}/{OLD_TAB['id']}",
        json={**OLD_TAB, "status": "complete", "payment_status": "paid", "url": None},
    )
    new_expired = stripe_api.add(
        responses.POST,
        f"{SESSIONS}/{PURCHASE['id']}/expire",
        json={**PURCHASE, "status": "expired", "url": None},
    )

    response = buy(returning, {"product": "credits_100"}, user="2")

    assert response.status_code == 409
    assert response.json == {
        "error": "conflict",
        "message": "An earlier Checkout of yours for this was paid just now; check your "
        "purchases before buying again",
        "details": {"session": OLD_TAB["id"], "product": "credits_100"},
    }
    assert new_expired.call_count == 1
    key = new_expired.calls[0].request.headers["Idempotency-Key"]
    assert key == f"flask-stripe-billing-expire-{PURCHASE['id']}"


def test_stripe_down_while_expiring_is_a_502_and_the_new_purchase_expires_too(
    returning: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.add(responses.POST, SESSIONS, json=PURCHASE)
    stripe_api.replace(responses.GET, SESSIONS, json=listing(PURCHASE, OLD_TAB))
    stripe_api.add(
        responses.POST,
        f"{SESSIONS}/{OLD_TAB['id']}/expire",
        status=500,
        json={"error": {"type": "api_error", "message": "down"}},
    )
    stripe_api.add(responses.GET, f"{SESSIONS}/{OLD_TAB['id']}", json=OLD_TAB)
    new_expired = stripe_api.add(
        responses.POST,
        f"{SESSIONS}/{PURCHASE['id']}/expire",
        json={**PURCHASE, "status": "expired", "url": None},
    )

    response = buy(returning, {"product": "credits_100"}, user="2")

    assert response.status_code == 502
    assert new_expired.call_count == 1


def test_a_failed_listing_is_a_502(returning: Host, stripe_api: responses.RequestsMock) -> None:
    stripe_api.add(responses.POST, SESSIONS, json=PURCHASE)
    stripe_api.replace(
        responses.GET, SESSIONS, status=500, json={"error": {"type": "api_error", "message": "x"}}
    )

    response = buy(returning, {"product": "credits_100"}, user="2")

    assert response.status_code == 502
    assert response.json["message"] == "Stripe could not list the open Checkout sessions"


# The form route and the button


BUTTON = (
    '{{ billing_checkout_button("Buy 100 credits", product="credits_100", quantity=2, '
    'class="btn") }}'
)


def test_the_button_is_a_form_with_the_product_and_quantity(shop: Callable[..., Host]) -> None:
    host = shop()
    with host.app.test_request_context("/pricing"):
        html = render_template_string(BUTTON)

    (button,) = forms_of(html)
    assert button["attributes"] == {
        "method": "post",
        "action": "/billing/checkout",
        "class": "stripe-billing-form",
    }
    assert button["fields"] == {"product": "credits_100", "quantity": "2"}
    assert button["button"] == {"type": "submit", "class": "btn"}
    assert html.endswith("Buy 100 credits</button></form>")


def test_the_button_with_csrf_protect_carries_the_token_and_buys(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(WTF_CSRF_ENABLED=True, SECRET_KEY="test", TESTING=False)
    CSRFProtect(host.app)
    host.app.add_url_rule("/shop", "shop", lambda: render_template_string(BUTTON))
    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add(responses.POST, SESSIONS, json=PURCHASE)
    client = host.client

    (button,) = forms_of(client.get("/shop", headers=as_user("1")).get_data(as_text=True))
    assert set(button["fields"]) == {"product", "quantity", "csrf_token"}
    refused = client.post(
        "/billing/checkout",
        data={"product": "credits_100"},
        headers={**as_user("1"), **SAME_ORIGIN},
    )
    answer = client.post(
        button["attributes"]["action"], data=button["fields"], headers=as_user("1")
    )

    assert (refused.status_code, b"CSRF" in refused.data) == (400, True)
    assert answer.status_code == 303
    assert answer.headers["Location"] == PURCHASE["url"]
    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    assert form(call) == purchase_fields("2")


def test_the_json_route_with_csrf_protect_needs_the_token(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(WTF_CSRF_ENABLED=True, SECRET_KEY="test", TESTING=False)
    CSRFProtect(host.app)

    response = buy(host, {"product": "credits_100"})

    assert response.status_code == 400
    assert b"The CSRF token is missing." in response.data
    assert len(stripe_api.calls) == 0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"product": "credits_9"}, "product"),
        ({"product": "credits_100", "quantity": "two"}, "quantity"),
        ({"product": "credits_100", "quantity": "0"}, "quantity"),
        ({"product": "credits_100", "quantity": "-1"}, "quantity"),
        ({"product": "credits_100", "quantity": "101"}, "quantity"),
    ],
)
def test_a_bad_purchase_form_is_400_json(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock, data: dict[str, str], field: str
) -> None:
    host = shop()

    answer = host.client.post(
        "/billing/checkout", data=data, headers={**as_user("1"), **SAME_ORIGIN}
    )

    assert answer.status_code == 400
    assert answer.json["details"]["field"] == field
    assert len(stripe_api.calls) == 0


def test_a_purchase_form_from_another_site_is_403(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()

    answer = host.client.post(
        "/billing/checkout",
        data={"product": "credits_100"},
        headers={**as_user("1"), "Sec-Fetch-Site": "cross-site"},
    )

    assert (answer.status_code, answer.json["error"]) == (403, "forbidden")
    assert len(stripe_api.calls) == 0


def test_an_anonymous_purchase_form_is_401(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    answer = shop().client.post(
        "/billing/checkout", data={"product": "credits_100"}, headers=SAME_ORIGIN
    )

    assert (answer.status_code, answer.json["error"]) == (401, "authentication_error")
    assert len(stripe_api.calls) == 0


# The success page


PAID = {
    **PURCHASE,
    "status": "complete",
    "payment_status": "paid",
    "client_reference_id": "1",
    "payment_intent": "pi_3TestCredits",
    "url": None,
}


def flashes(client: Any) -> list[tuple[str, str]]:
    with client.session_transaction() as session:
        return list(session.get("_flashes", []))


@pytest.mark.parametrize(
    ("payment_status", "flashed"),
    [
        ("paid", ("success", "Thank you for your purchase!")),
        (
            "unpaid",
            (
                "warning",
                "Thank you! Your payment is being confirmed; your purchase follows in a moment.",
            ),
        ),
    ],
)
def test_the_success_page_syncs_a_purchase_and_thanks_for_it(
    shop: Callable[..., Host],
    stripe_api: responses.RequestsMock,
    received: dict[str, Any],
    payment_status: str,
    flashed: tuple[str, str],
) -> None:
    host = shop(SECRET_KEY="test")
    subscribe(host, 3, PURCHASE["customer"], "sub_current", "active")  # pro, buying credits
    retrieved = stripe_api.add(
        responses.GET,
        f"{SESSIONS}/{PURCHASE['id']}",
        json={**PAID, "client_reference_id": "3", "payment_status": payment_status},
    )

    client = host.client
    response = client.get(f"/billing/success?session_id={PURCHASE['id']}")

    assert (response.status_code, response.headers["Location"]) == (303, "/")
    assert flashes(client) == [flashed]  # not "You are now on the pro plan"
    assert retrieved.call_count == 1
    assert [c.request.method for c in stripe_api.calls] == ["GET"]
    user = host.user(3)
    assert (user.plan, user.stripe_subscription_id) == ("pro", "sub_current")
    assert received.get("plan_changed", [])[1:] == []  # only the subscribe() above


def test_sync_checkout_session_of_a_purchase_changes_no_plan(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id=PURCHASE["customer"])
    stripe_api.add(
        responses.GET, f"{SESSIONS}/{PURCHASE['id']}", json={**PAID, "client_reference_id": "2"}
    )

    with host.app.app_context():
        outcome = host.billing.sync_checkout_session(PURCHASE["id"])

    assert outcome.event.type == "checkout.session.completed"
    assert outcome.error is None
    assert host.user(2).plan == "free"
    assert host.events() == []
