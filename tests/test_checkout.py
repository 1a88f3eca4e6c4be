"""Checkout, Billing portal and success-page sync; Stripe's HTTP API mocked by responses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from conftest import Host
from flask import request
from support import SECRET, checkout_event, load, post_event, subscription_event

from flask_stripe_billing import BillingError, StripeServiceError
from flask_stripe_billing.stripe_api import API_VERSION

API_KEY = "sk_test_51CheckoutKey000000000000"
API = "https://api.stripe.com/v1"
CONFIG = {
    "STRIPE_API_KEY": API_KEY,
    "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
    "STRIPE_PRICE_PRO_YEARLY": "price_yearly",
    "STRIPE_SUCCESS_URL": "https://app.example.com/billing/success?session_id={CHECKOUT_SESSION_ID}",
    "STRIPE_CANCEL_URL": "https://app.example.com/pricing",
}
CUSTOMER = load("stripe-openapi/customer.json")
SESSION = load(
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json"
)
#: The session once the user paid for it, for user 1: what the success page reads.
COMPLETED_SESSION = {
    **SESSION,
    "status": "complete",
    "payment_status": "paid",
    "client_reference_id": "1",
    "subscription": "sub_new",
}
PORTAL = load("api-objects/pay-rails-vcr__2026-03-25.dahlia__billing_portal.session.json")


def as_user(user_id: str | None) -> dict[str, str]:
    return {"X-User": user_id} if user_id else {}


def subscribe(
    host: Host,
    user_id: int,
    customer: str,
    subscription: str,
    status: str,
    *,
    webhook: str = "/stripe/webhook",
) -> None:
    """User ``user_id`` of customer ``customer`` has ``subscription`` in ``status``, as
    Stripe's webhook told the app (the account row is the projection of that record)."""
    host.add_user(user_id, stripe_customer_id=customer)
    event = subscription_event(
        "customer.subscription.created",
        customer=customer,
        subscription=subscription,
        status=status,
    )
    assert post_event(host.client, event, path=webhook).status_code == 200
    user = host.user(user_id)
    assert (user.stripe_subscription_id, user.stripe_subscription_status) == (subscription, status)


@pytest.fixture
def shop(make_host: Callable[..., Host]) -> Callable[..., Host]:
    """A host whose current user is named by the X-User header."""

    def make(**config: Any) -> Host:
        made = make_host(
            {**CONFIG, **config}, current_user_id=lambda: request.headers.get("X-User")
        )
        made.add_user(1, email="ada@example.com")
        return made

    return make


def form(call: Any) -> dict[str, str]:
    """The form fields of a recorded request, flattened as stripe-python sends them."""
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def stripe_calls(mock: Any, path: str) -> list[Any]:
    """The calls to ``path``, but the listing of open sessions every Checkout makes
    (tests/test_checkout_open_sessions.py is about that one)."""
    return [
        c
        for c in mock.calls
        if c.request.url.split("?")[0] == f"{API}{path}" and "status=open" not in c.request.url
    ]


def test_checkout_creates_customer_then_session_for_the_monthly_price(
    shop: Callable[..., Host], stripe_api: Any, received: dict[str, Any]
) -> None:
    host = shop()
    stored_before_session: list[str | None] = []

    def session_created(req: Any) -> tuple[int, dict[str, str], str]:
        stored_before_session.append(host.user(1).stripe_customer_id)
        return 200, {"Request-Id": "req_session"}, json.dumps(SESSION)

    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add_callback(responses.POST, f"{API}/checkout/sessions", callback=session_created)

    response = host.client.post("/billing/checkout-session", json={}, headers=as_user("1"))

    assert response.status_code == 200
    assert response.json == {"id": SESSION["id"], "url": SESSION["url"]}
    assert host.user(1).stripe_customer_id == CUSTOMER["id"]
    assert stored_before_session == [CUSTOMER["id"]]

    (customer_call,) = stripe_calls(stripe_api, "/customers")
    assert form(customer_call) == {"email": "ada@example.com", "metadata[user_id]": "1"}
    assert customer_call.request.headers["Idempotency-Key"].startswith(
        "flask-stripe-billing-customer-"
    )
    (session_call,) = stripe_calls(stripe_api, "/checkout/sessions")
    assert form(session_call) == {
        "mode": "subscription",
        "customer": CUSTOMER["id"],
        "line_items[0][price]": "price_monthly",
        "line_items[0][quantity]": "1",
        "success_url": CONFIG["STRIPE_SUCCESS_URL"],
        "cancel_url": CONFIG["STRIPE_CANCEL_URL"],
        "client_reference_id": "1",
        "metadata[user_id]": "1",
        "metadata[price_id]": "price_monthly",
        "subscription_data[metadata][user_id]": "1",
        "allow_promotion_codes": "false",
    }
    headers = session_call.request.headers
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Stripe-Version"] == API_VERSION
    assert headers["Idempotency-Key"].startswith("flask-stripe-billing-checkout-")
    (created,) = received["checkout_session_created"]
    assert (created["user_id"], created["session_id"], created["price_id"]) == (
        "1",
        SESSION["id"],
        "price_monthly",
    )


def test_checkout_yearly_interval_uses_the_yearly_price(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_existing")
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    response = host.client.post(
        "/billing/checkout-session", json={"interval": "yearly"}, headers=as_user("2")
    )

    assert response.status_code == 200
    assert stripe_calls(stripe_api, "/customers") == []  # the stored customer is reused
    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    assert form(call)["line_items[0][price]"] == "price_yearly"
    assert form(call)["customer"] == "cus_existing"


def test_checkout_accepts_a_configured_price_id_and_promotion_codes(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop(STRIPE_BILLING_PLANS={"price_team": "team"}, STRIPE_ALLOW_PROMOTION_CODES=True)
    host.add_user(2, stripe_customer_id="cus_existing")
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    response = host.client.post(
        "/billing/checkout-session", json={"price_id": "price_team"}, headers=as_user("2")
    )

    assert response.status_code == 200
    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    assert form(call)["line_items[0][price]"] == "price_team"
    assert form(call)["allow_promotion_codes"] == "true"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price_id": "price_cheap_from_the_client"}, "price_id"),
        ({"price_id": 42}, "price_id"),
        ({"interval": "weekly"}, "interval"),
    ],
)
def test_checkout_refuses_prices_that_are_not_configured(
    shop: Callable[..., Host], stripe_api: Any, body: dict[str, Any], field: str
) -> None:
    host = shop()

    response = host.client.post("/billing/checkout-session", json=body, headers=as_user("1"))

    assert response.status_code == 400
    assert response.json["error"] == "validation_error"
    assert response.json["details"] == {"field": field}
    assert len(stripe_api.calls) == 0
    assert host.user(1).stripe_customer_id is None


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"monthly"'])
def test_checkout_refuses_a_body_that_is_not_a_json_object(
    shop: Callable[..., Host], stripe_api: Any, raw: bytes
) -> None:
    host = shop()

    response = host.client.post(
        "/billing/checkout-session",
        data=raw,
        content_type="application/json",
        headers=as_user("1"),
    )

    assert response.status_code == 400
    assert response.json["error"] == "validation_error"
    assert len(stripe_api.calls) == 0


@pytest.mark.parametrize("status", ["active", "trialing"])
def test_checkout_refuses_a_second_subscription_with_409(
    shop: Callable[..., Host], stripe_api: Any, status: str
) -> None:
    host = shop()
    subscribe(host, 2, "cus_paying", "sub_current", status)
    assert host.user(2).plan == "pro"

    response = host.client.post("/billing/checkout-session", json={}, headers=as_user("2"))

    assert response.status_code == 409
    assert response.json["error"] == "conflict"
    assert response.json["details"]["portal"] == "/billing/portal"
    assert len(stripe_api.calls) == 0


@pytest.mark.parametrize("status", ["canceled", "past_due", "incomplete_expired"])
def test_checkout_is_allowed_after_the_subscription_ended_or_failed(
    shop: Callable[..., Host], stripe_api: Any, status: str
) -> None:
    host = shop()
    subscribe(host, 2, "cus_former", "sub_old", status)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    response = host.client.post("/billing/checkout-session", json={}, headers=as_user("2"))

    assert response.status_code == 200


def test_two_clicks_send_the_same_idempotency_keys(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop()
    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)
    host.add_user(2, email="bo@example.com")
    host.add_user(3, email="bo@example.com")

    for user in ("2", "2", "3"):
        with host.app.app_context():  # forget the customer, as if the clicks raced
            host.db.session.execute(host.User.__table__.update().values(stripe_customer_id=None))
            host.db.session.commit()
        host.client.post("/billing/checkout-session", json={}, headers=as_user(user))

    keys = [c.request.headers["Idempotency-Key"] for c in stripe_calls(stripe_api, "/customers")]
    assert keys[0] == keys[1]  # the same user twice: Stripe returns one customer
    assert keys[2] != keys[0]  # another user: another customer


def test_checkout_without_a_user_is_401(shop: Callable[..., Host], stripe_api: Any) -> None:
    host = shop()

    response = host.client.post("/billing/checkout-session", json={})

    assert response.status_code == 401
    assert response.json["error"] == "authentication_error"
    assert len(stripe_api.calls) == 0


def test_checkout_for_a_user_the_store_does_not_know_is_401(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop()

    response = host.client.post("/billing/checkout-session", json={}, headers=as_user("99"))

    assert response.status_code == 401
    assert len(stripe_api.calls) == 0


@pytest.mark.parametrize(
    ("missing", "body", "named"),
    [
        ("STRIPE_API_KEY", {}, "STRIPE_API_KEY"),
        ("STRIPE_PRICE_PRO_MONTHLY", {}, "STRIPE_PRICE_PRO_MONTHLY"),
        ("STRIPE_PRICE_PRO_YEARLY", {"interval": "yearly"}, "STRIPE_PRICE_PRO_YEARLY"),
        ("STRIPE_SUCCESS_URL", {}, "STRIPE_SUCCESS_URL"),
    ],
)
def test_checkout_without_configuration_is_503(
    shop: Callable[..., Host],
    stripe_api: Any,
    monkeypatch: pytest.MonkeyPatch,
    missing: str,
    body: dict[str, str],
    named: str,
) -> None:
    monkeypatch.delenv(missing, raising=False)
    host = shop(**{missing: None})

    response = host.client.post("/billing/checkout-session", json=body, headers=as_user("1"))

    assert response.status_code == 503
    assert response.json == {
        "error": "external_service_error",
        "message": "Stripe billing is not configured",
        "details": {"service": "Stripe", "missing": [named]},
    }
    assert len(stripe_api.calls) == 0


def test_stripe_failure_is_502_with_the_request_id_and_no_key(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop()
    stripe_api.add(
        responses.POST,
        f"{API}/customers",
        status=401,
        headers={"Request-Id": "req_failed123"},
        json={
            "error": {
                "type": "invalid_request_error",
                "message": f"Invalid API Key provided: {API_KEY}",
            }
        },
    )

    response = host.client.post("/billing/checkout-session", json={}, headers=as_user("1"))

    assert response.status_code == 502
    assert response.json["error"] == "external_service_error"
    assert response.json["details"] == {
        "service": "Stripe",
        "request_id": "req_failed123",
        "status": 401,
    }
    assert API_KEY not in response.get_data(as_text=True)
    assert host.user(1).stripe_customer_id is None


def test_portal_returns_the_session_url_for_the_users_customer(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_paying")
    stripe_api.add(responses.POST, f"{API}/billing_portal/sessions", json=PORTAL)

    response = host.client.get("/billing/portal", headers=as_user("2"))

    assert response.status_code == 200
    assert response.json == {"url": PORTAL["url"]}
    (call,) = stripe_calls(stripe_api, "/billing_portal/sessions")
    # No STRIPE_PORTAL_RETURN_URL: the success URL's origin.
    assert form(call) == {"customer": "cus_paying", "return_url": "https://app.example.com/"}
    assert call.request.headers["Authorization"] == f"Bearer {API_KEY}"


def test_portal_uses_the_configured_return_url(shop: Callable[..., Host], stripe_api: Any) -> None:
    host = shop(STRIPE_PORTAL_RETURN_URL="https://app.example.com/account")
    host.add_user(2, stripe_customer_id="cus_paying")
    stripe_api.add(responses.POST, f"{API}/billing_portal/sessions", json=PORTAL)

    host.client.get("/billing/portal", headers=as_user("2"))

    (call,) = stripe_calls(stripe_api, "/billing_portal/sessions")
    assert form(call)["return_url"] == "https://app.example.com/account"


@pytest.mark.parametrize(
    ("flow", "flow_data"),
    [
        ("payment_method_update", {"flow_data[type]": "payment_method_update"}),
        (
            "subscription_cancel",
            {
                "flow_data[type]": "subscription_cancel",
                "flow_data[subscription_cancel][subscription]": "sub_paying",
            },
        ),
        (
            "subscription_update",
            {
                "flow_data[type]": "subscription_update",
                "flow_data[subscription_update][subscription]": "sub_paying",
            },
        ),
    ],
)
def test_portal_deep_links_into_a_flow_with_the_configured_portal(
    shop: Callable[..., Host], stripe_api: Any, flow: str, flow_data: dict[str, str]
) -> None:
    host = shop(STRIPE_PORTAL_CONFIGURATION="bpc_settings_page")
    host.add_user(2, stripe_customer_id="cus_paying")
    paid = subscription_event(customer="cus_paying", subscription="sub_paying")
    assert post_event(host.client, paid).status_code == 200
    stripe_api.add(responses.POST, f"{API}/billing_portal/sessions", json=PORTAL)

    response = host.client.get(f"/billing/portal?flow={flow}", headers=as_user("2"))

    assert response.status_code == 200
    assert response.json == {"url": PORTAL["url"]}
    (call,) = stripe_calls(stripe_api, "/billing_portal/sessions")
    assert form(call) == {
        "customer": "cus_paying",
        "return_url": "https://app.example.com/",
        "configuration": "bpc_settings_page",
        **flow_data,
    }


def test_portal_refuses_an_unknown_flow_and_a_subscription_flow_without_one(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_paying")

    unknown = host.client.get("/billing/portal?flow=refund_everything", headers=as_user("2"))
    nothing_to_cancel = host.client.get(
        "/billing/portal?flow=subscription_cancel", headers=as_user("2")
    )

    assert unknown.status_code == 400
    assert unknown.json["error"] == "validation_error"
    assert unknown.json["details"] == {"field": "flow"}
    assert nothing_to_cancel.status_code == 409
    assert nothing_to_cancel.json["error"] == "conflict"
    assert len(stripe_api.calls) == 0


def test_portal_url_from_python_for_a_payment_failed_email(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_paying")
    stripe_api.add(responses.POST, f"{API}/billing_portal/sessions", json=PORTAL)

    with host.app.app_context():
        url = host.billing.portal_url(2, flow="payment_method_update")
        with pytest.raises(LookupError, match="no user '9'"):
            host.billing.portal_url("9")

    assert url == PORTAL["url"]
    (call,) = stripe_calls(stripe_api, "/billing_portal/sessions")
    assert form(call) == {
        "customer": "cus_paying",
        "return_url": "https://app.example.com/",
        "flow_data[type]": "payment_method_update",
    }


def test_portal_without_a_customer_is_404(shop: Callable[..., Host], stripe_api: Any) -> None:
    host = shop()

    response = host.client.get("/billing/portal", headers=as_user("1"))

    assert response.status_code == 404
    assert response.json["error"] == "not_found"
    assert len(stripe_api.calls) == 0


def test_portal_errors(shop: Callable[..., Host], stripe_api: Any) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_paying")
    stripe_api.add(
        responses.POST,
        f"{API}/billing_portal/sessions",
        status=400,
        headers={"Request-Id": "req_portal"},
        json={"error": {"type": "invalid_request_error", "message": "No configuration"}},
    )

    assert host.client.get("/billing/portal").status_code == 401
    failed = host.client.get("/billing/portal", headers=as_user("2"))
    assert failed.status_code == 502
    assert failed.json["details"]["request_id"] == "req_portal"
    unconfigured = shop(STRIPE_API_KEY=None)
    assert unconfigured.client.get("/billing/portal", headers=as_user("1")).status_code == 503


def test_sync_checkout_session_applies_the_session_before_the_webhook_and_once(
    shop: Callable[..., Host], stripe_api: Any, received: dict[str, Any]
) -> None:
    host = shop()
    completed = COMPLETED_SESSION
    stripe_api.add(responses.GET, f"{API}/checkout/sessions/{SESSION['id']}", json=completed)

    with host.app.app_context():
        outcome = host.billing.sync_checkout_session(SESSION["id"])

    assert outcome.status == "processed"
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    assert (user.stripe_customer_id, user.stripe_subscription_id) == (
        SESSION["customer"],
        "sub_new",
    )
    assert len(received["plan_changed"]) == 1
    assert host.events() == []

    webhook = checkout_event(
        customer=SESSION["customer"], subscription="sub_new", client_reference_id="1"
    )
    assert post_event(host.client, webhook).status_code == 200

    assert host.user(1).plan == "pro"
    assert len(received["plan_changed"]) == 1  # the webhook found nothing left to change
    assert [row["status"] for row in host.events()] == ["processed"]


@pytest.mark.parametrize(
    ("created", "reason"),
    [
        (None, "event has no creation time"),
        (10**20, "created is not a Unix time between 1970 and the year 9999"),
        ("yesterday", "event has no creation time"),
    ],
    ids=["no-created", "created-out-of-range", "created-text"],
)
def test_a_session_stripe_answers_unreadably_is_a_502_billing_error_the_success_page_survives(
    shop: Callable[..., Host],
    stripe_api: Any,
    received: dict[str, Any],
    created: Any,
    reason: str,
) -> None:
    host = shop()
    completed = {**COMPLETED_SESSION, "created": created}
    if created is None:
        del completed["created"]
    stripe_api.add(
        responses.GET,
        f"{API}/checkout/sessions/{SESSION['id']}",
        json=completed,
        headers={"Request-Id": "req_session"},
    )

    @host.app.get("/welcome")
    def welcome() -> str:  # an app's own success page (the default route is tested apart)
        try:  # noqa: SIM105
            host.billing.sync_checkout_session(request.args["session_id"])
        except BillingError:
            pass  # no API key, or Stripe unreachable: the webhook will apply it
        return "welcome"

    page = host.client.get(f"/welcome?session_id={SESSION['id']}")
    with host.app.app_context(), pytest.raises(StripeServiceError) as raised:
        host.billing.sync_checkout_session(SESSION["id"])

    assert (page.status_code, page.get_data(as_text=True)) == (200, "welcome")
    assert raised.value.message.startswith(
        "Stripe's answer for the checkout.session cannot be applied: "
    )
    assert raised.value.details == {"service": "Stripe", "reason": reason}
    assert host.user(1).plan == "free"
    assert host.user(1).stripe_subscription_id is None
    assert received.get("plan_changed") is None
    assert host.events() == []


def test_csrf_protect_guards_checkout_but_not_the_webhook(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    from flask_wtf.csrf import CSRFProtect

    host = shop(WTF_CSRF_ENABLED=True, SECRET_KEY="test", TESTING=False)
    CSRFProtect(host.app)  # set up after the extension, as apps often do
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    webhook = post_event(host.client, checkout_event(client_reference_id="1"))
    checkout = host.client.post("/billing/checkout-session", json={}, headers=as_user("1"))

    assert webhook.status_code == 200
    assert host.user(1).plan == "pro"
    assert checkout.status_code == 400
    assert b"CSRF" in checkout.data
    assert len(stripe_api.calls) == 0


def test_csrf_protect_set_up_before_the_extension_also_exempts_the_webhook(
    stripe_api: Any,
) -> None:
    from flask import Flask
    from flask_wtf.csrf import CSRFProtect

    from flask_stripe_billing import BillingAccount, InMemoryUserStore, StripeBilling

    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", STRIPE_WEBHOOK_SECRET=SECRET)
    CSRFProtect(app)  # before the extension
    store = InMemoryUserStore([BillingAccount(user_id="1")])
    StripeBilling(app, user_store=store, current_user_id=lambda: "1")

    webhook = post_event(app.test_client(), checkout_event(client_reference_id="1"))
    checkout = app.test_client().post("/billing/checkout-session", json={})

    assert webhook.status_code == 200
    account = store.get("1")
    assert account is not None and account.plan == "pro"
    assert checkout.status_code == 400
    assert b"CSRF" in checkout.data


def test_checkout_needs_a_json_content_type_so_a_cross_site_form_cannot_start_one(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop()

    response = host.client.post(
        "/billing/checkout-session",
        data={"interval": "monthly"},  # what a plain HTML form on another site sends
        headers=as_user("1"),
    )

    assert response.status_code == 400
    assert response.json["error"] == "validation_error"
    assert "application/json" in response.json["message"]
    assert len(stripe_api.calls) == 0
    assert host.user(1).stripe_customer_id is None


def test_conflict_points_to_the_portal_under_the_blueprints_prefix(
    make_host: Callable[..., Host], stripe_api: Any
) -> None:
    host = make_host(
        CONFIG, url_prefix="/api", current_user_id=lambda: request.headers.get("X-User")
    )
    subscribe(host, 2, "cus_paying", "sub_current", "active", webhook="/api/stripe/webhook")

    response = host.client.post("/api/billing/checkout-session", json={}, headers=as_user("2"))

    assert response.status_code == 409
    assert response.json["details"]["portal"] == "/api/billing/portal"
    assert len(stripe_api.calls) == 0


def test_checkout_options_from_the_configuration_reach_stripe(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop(
        STRIPE_CHECKOUT_AUTOMATIC_TAX=True,
        STRIPE_CHECKOUT_TAX_ID_COLLECTION="true",
        STRIPE_CHECKOUT_BILLING_ADDRESS="required",
        STRIPE_CHECKOUT_COUPON="coupon_launch",
        STRIPE_CHECKOUT_LOCALE="fr",
        STRIPE_ALLOW_PROMOTION_CODES=True,
    )
    host.add_user(2, stripe_customer_id="cus_existing")
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    response = host.client.post("/billing/checkout-session", json={}, headers=as_user("2"))

    assert response.status_code == 200
    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    sent = form(call)
    assert {key: value for key, value in sent.items() if key not in BASE_FIELDS} == {
        "automatic_tax[enabled]": "true",
        "tax_id_collection[enabled]": "true",
        "customer_update[address]": "auto",
        "customer_update[name]": "auto",
        "billing_address_collection": "required",
        "discounts[0][coupon]": "coupon_launch",
        "locale": "fr",
    }
    assert "allow_promotion_codes" not in sent  # Stripe takes a coupon or codes, not both


BASE_FIELDS = {
    "mode",
    "customer",
    "line_items[0][price]",
    "line_items[0][quantity]",
    "success_url",
    "cancel_url",
    "client_reference_id",
    "metadata[user_id]",
    "metadata[price_id]",
    "subscription_data[metadata][user_id]",
}


def test_a_billing_address_option_stripe_does_not_know_is_refused_at_set_up(
    shop: Callable[..., Host],
) -> None:
    with pytest.raises(ValueError, match="STRIPE_CHECKOUT_BILLING_ADDRESS must be one of"):
        shop(STRIPE_CHECKOUT_BILLING_ADDRESS="sometimes")
