"""The example app (examples/simple_app) as a user clicks through it; Stripe mocked by responses."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from flask import Flask
from purchase_support import PI, charge_refunded_event, dispute_event, refund_event, session_event
from support import checkout_event, load, post_event

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from simple_app.app import DEMO_WEBHOOK_SECRET, CreditGrant, billing, create_app, db  # noqa: E402

API = "https://api.stripe.com/v1"
STRIPE_CONFIG = {
    "STRIPE_API_KEY": "sk_test_51ExampleAppKey0000000000",
    "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
    "STRIPE_PRICE_PRO_YEARLY": "price_yearly",
}
CUSTOMER = load("stripe-openapi/customer.json")
SESSION = load(
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json"
)
PORTAL = load("api-objects/pay-rails-vcr__2026-03-25.dahlia__billing_portal.session.json")
PURCHASE = load(
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_payment.open.json"
)
ENVIRONMENT = (
    "STRIPE_API_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_PRICE_PRO_MONTHLY",
    "STRIPE_PRICE_PRO_YEARLY",
    "STRIPE_SUCCESS_URL",
    "STRIPE_CANCEL_URL",
    "STRIPE_PORTAL_RETURN_URL",
    "STRIPE_BILLING_PLANS",
    "STRIPE_BILLING_PRODUCTS",
    "STRIPE_BILLING_PRICING_URL",
    "STRIPE_BILLING_FEATURES",
    "STRIPE_BILLING_USAGE_QUOTAS",
    "PRO_PLAN_NAME",
    "SECRET_KEY",
)
ALICE, BOB = 1, 2  # alice is customer cus_demo_alice; bob has no customer yet


@pytest.fixture
def make_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Flask]]:
    """The example app with a fresh SQLite file in a temporary folder, as demo.py does."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    apps: list[Flask] = []
    numbers = itertools.count(1)

    def make(**config: Any) -> Flask:
        database = tmp_path / f"example{next(numbers)}.db"
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}", **config})
        app.testing = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def user(app: Flask, user_id: int) -> dict[str, Any]:
    """The user's billing state as the example's own JSON page shows it."""
    data: dict[str, Any] = app.test_client().get(f"/users/{user_id}").json
    return data


def form(call: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def test_pricing_page_has_the_upgrade_and_manage_billing_buttons(
    make_example: Callable[..., Flask],
) -> None:
    page = make_example().test_client().get("/pricing")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Upgrade to Pro — monthly" in html
    assert "Upgrade to Pro — yearly" in html
    assert "Manage billing" in html
    assert '"POST", "/billing/checkout-session", {interval: interval}' in html
    assert '"GET", "/billing/portal"' in html


def test_acting_as_a_user_is_remembered_until_changed(make_example: Callable[..., Flask]) -> None:
    client = make_example().test_client()

    assert "Acting as <b>nobody</b>" in client.get("/pricing").get_data(as_text=True)
    assert "Acting as <b>bob@example.com</b>" in client.get("/?as=2").get_data(as_text=True)
    assert "Acting as <b>bob@example.com</b>" in client.get("/pricing").get_data(as_text=True)
    assert "Acting as <b>nobody</b>" in client.get("/pricing?as=").get_data(as_text=True)
    assert "Acting as <b>nobody</b>" in client.get("/pricing?as=99").get_data(as_text=True)
    # The extension sees the same user: nobody is signed in now.
    answer = client.post("/billing/checkout-session", json={"interval": "monthly"})
    assert answer.status_code == 401
    assert answer.json["error"] == "authentication_error"


def test_pro_page_sends_free_users_to_pricing_until_the_checkout_webhook(
    make_example: Callable[..., Flask],
) -> None:
    app = make_example()  # no STRIPE_WEBHOOK_SECRET: the example's demo secret
    client = app.test_client()
    nobody = client.get("/pro")
    assert (nobody.status_code, nobody.headers["Location"]) == (302, "/pricing")
    bob_free = client.get("/pro?as=2")
    assert (bob_free.status_code, bob_free.headers["Location"]) == (302, "/pricing")
    as_json = client.get("/pro", headers={"Accept": "application/json"})
    assert (as_json.status_code, as_json.json["details"]) == (
        402,
        {"required_plans": [], "current_plan": "free"},
    )

    event = checkout_event(customer="cus_bob", subscription="sub_bob", client_reference_id="2")
    assert post_event(client, event, secret=DEMO_WEBHOOK_SECRET).status_code == 200

    page = client.get("/pro")
    assert page.status_code == 200
    assert "Welcome, bob@example.com: everything here is for pro users" in page.get_data(
        as_text=True
    )
    bob = user(app, BOB)
    assert (bob["plan"], bob["subscription_status"]) == ("pro", "active")
    assert bob["stripe_customer_id"] == "cus_bob"


def test_export_page_is_for_plans_with_the_export_feature(
    make_example: Callable[..., Flask],
) -> None:
    app = make_example()
    client = app.test_client()
    bob_free = client.get("/export?as=2")
    assert (bob_free.status_code, bob_free.headers["Location"]) == (302, "/pricing")
    as_json = client.get("/export", headers={"Accept": "application/json"})
    assert (as_json.status_code, as_json.json["details"]) == (
        403,
        {"required_feature": "export", "current_plan": "free"},
    )

    event = checkout_event(customer="cus_bob", subscription="sub_bob", client_reference_id="2")
    assert post_event(client, event, secret=DEMO_WEBHOOK_SECRET).status_code == 200

    page = client.get("/export")
    assert page.status_code == 200
    assert "Your pro plan includes exports, bob@example.com." in page.get_data(as_text=True)


def test_the_features_map_from_the_environment_wins_over_the_examples(
    make_example: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_BILLING_FEATURES", '{"pro": []}')
    client = make_example().test_client()
    event = checkout_event(customer="cus_bob", subscription="sub_bob", client_reference_id="2")
    post_event(client, event, secret=DEMO_WEBHOOK_SECRET)

    assert client.get("/pro?as=2").status_code == 200
    assert client.get("/export").status_code == 302  # pro includes no export here


def test_buttons_answer_503_without_an_api_key_and_the_app_still_works(
    make_example: Callable[..., Flask],
) -> None:
    client = make_example().test_client()
    client.get("/pricing?as=2")

    for answer in (
        client.post("/billing/checkout-session", json={"interval": "yearly"}),
        client.get("/billing/portal"),
    ):
        assert answer.status_code == 503
        assert answer.json["message"] == "Stripe billing is not configured"
        assert answer.json["details"]["missing"] == ["STRIPE_API_KEY"]
    assert client.get("/pricing").status_code == 200


def test_upgrade_button_gets_a_checkout_url_that_returns_to_the_example(
    make_example: Callable[..., Flask], stripe_api: responses.RequestsMock
) -> None:
    app = make_example(**STRIPE_CONFIG)
    client = app.test_client()
    client.get("/pricing?as=2")
    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    answer = client.post("/billing/checkout-session", json={"interval": "yearly"})

    assert answer.status_code == 200
    assert answer.json == {"id": SESSION["id"], "url": SESSION["url"]}
    assert user(app, BOB)["stripe_customer_id"] == CUSTOMER["id"]
    session_call = stripe_api.calls[-1]
    assert form(session_call)["line_items[0][price]"] == "price_yearly"
    assert form(session_call)["client_reference_id"] == "2"
    assert form(session_call)["success_url"] == (
        "http://127.0.0.1:5000/billing/success?session_id={CHECKOUT_SESSION_ID}"
    )
    assert form(session_call)["cancel_url"] == "http://127.0.0.1:5000/pricing"


def test_the_pricing_page_sells_a_credit_pack_through_a_payment_checkout(
    make_example: Callable[..., Flask], stripe_api: responses.RequestsMock
) -> None:
    app = make_example(**STRIPE_CONFIG)
    client = app.test_client()
    page = client.get("/pricing?as=2").get_data(as_text=True)
    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=PURCHASE)

    assert (
        '<form method="post" action="/billing/checkout" class="stripe-billing-form">'
        '<input type="hidden" name="product" value="credits_100">'
        '<input type="hidden" name="quantity" value="5">'
        '<button type="submit">Buy 500 credits</button></form>'
    ) in page
    answer = client.post(
        "/billing/checkout",
        data={"product": "credits_100", "quantity": "5"},
        headers={"Sec-Fetch-Site": "same-origin"},
    )

    assert (answer.status_code, answer.headers["Location"]) == (303, PURCHASE["url"])
    sent = form(stripe_api.calls[-1])
    assert sent["mode"] == "payment"
    assert sent["line_items[0][price]"] == "price_demo_credits_100"
    assert sent["line_items[0][quantity]"] == "5"
    assert sent["metadata[stripe_billing_product]"] == "credits_100"
    assert sent["payment_intent_data[metadata][stripe_billing_quantity]"] == "5"
    assert user(app, BOB)["plan"] == "free"


def test_configured_urls_win_over_the_examples_defaults(
    make_example: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_CANCEL_URL", "https://shop.example.com/plans")
    app = make_example(STRIPE_SUCCESS_URL="https://shop.example.com/thanks")

    assert app.config["STRIPE_SUCCESS_URL"] == "https://shop.example.com/thanks"
    assert app.config.get("STRIPE_CANCEL_URL") is None  # the environment's is read instead


def test_errors_the_pricing_page_shows_come_with_a_message(
    make_example: Callable[..., Flask], stripe_api: responses.RequestsMock
) -> None:
    app = make_example(**STRIPE_CONFIG)
    client = app.test_client()
    client.get("/pricing?as=2")

    no_customer = client.get("/billing/portal")
    assert no_customer.status_code == 404
    assert no_customer.json["message"].startswith("No Stripe customer")

    event = checkout_event(customer="cus_bob", subscription="sub_bob", client_reference_id="2")
    post_event(client, event, secret=DEMO_WEBHOOK_SECRET)
    subscribed = client.post("/billing/checkout-session", json={"interval": "monthly"})
    assert subscribed.status_code == 409
    assert "already have an active subscription" in subscribed.json["message"]
    assert len(stripe_api.calls) == 0


def test_manage_billing_returns_the_portal_url(
    make_example: Callable[..., Flask], stripe_api: responses.RequestsMock
) -> None:
    client = make_example(**STRIPE_CONFIG).test_client()
    client.get("/pricing?as=1")
    stripe_api.add(responses.POST, f"{API}/billing_portal/sessions", json=PORTAL)

    answer = client.get("/billing/portal")

    assert answer.status_code == 200
    assert answer.json == {"url": PORTAL["url"]}
    assert form(stripe_api.calls[0]) == {
        "customer": "cus_demo_alice",
        "return_url": "http://127.0.0.1:5000/",
    }


def test_success_page_syncs_the_session_and_the_user_is_pro_at_once(
    make_example: Callable[..., Flask], stripe_api: responses.RequestsMock
) -> None:
    app = make_example(**STRIPE_CONFIG)
    client = app.test_client()
    client.get("/pricing?as=2")
    completed = {
        **SESSION,
        "status": "complete",
        "payment_status": "paid",
        "client_reference_id": "2",
        "subscription": "sub_bob",
    }
    stripe_api.add(responses.GET, f"{API}/checkout/sessions/{SESSION['id']}", json=completed)

    back = client.get(f"/billing/success?session_id={SESSION['id']}")
    page = client.get(back.headers["Location"])

    assert (back.status_code, back.headers["Location"]) == (303, "/account")
    html = page.get_data(as_text=True)
    assert "Thank you! You are now on the pro plan." in html
    assert '<dd class="stripe-billing-plan">pro</dd>' in html
    assert client.get("/pro").status_code == 200
    bob = user(app, BOB)
    assert (bob["plan"], bob["subscription_status"]) == ("pro", "active")
    assert (bob["stripe_customer_id"], bob["stripe_subscription_id"]) == (
        SESSION["customer"],
        "sub_bob",
    )


def test_success_page_without_an_api_key_waits_for_the_webhook(
    make_example: Callable[..., Flask],
) -> None:
    client = make_example().test_client()
    client.get("/pricing?as=2")

    back = client.get("/billing/success?session_id=cs_test_123")
    page = client.get(back.headers["Location"])

    assert (back.status_code, back.headers["Location"]) == (303, "/account")
    html = page.get_data(as_text=True)
    assert "your plan changes as soon as Stripe tells us" in html
    assert 'You are on the <strong class="stripe-billing-plan">free</strong> plan.' in html


def test_the_settings_page_sends_a_user_without_subscription_to_pricing(
    make_example: Callable[..., Flask], stripe_api: responses.RequestsMock
) -> None:
    app = make_example(**STRIPE_CONFIG)
    client = app.test_client()

    page = client.get(f"/settings?as={BOB}")
    refused = client.post("/billing/subscription/cancel", json={})

    assert page.status_code == 200
    assert b"You have no subscription yet" in page.data
    assert b'href="/pricing"' in page.data
    assert refused.status_code == 409  # the example turns the routes on
    assert refused.json["message"] == "No subscription to change; subscribe first"
    assert list(stripe_api.calls) == []


def test_the_metered_route_reports_usage_once_per_request_id_within_the_quota(
    make_example: Callable[..., Flask], stripe_api: responses.RequestsMock
) -> None:
    app = make_example(**STRIPE_CONFIG)
    client = app.test_client()
    assert client.post("/api/convert").status_code == 401  # nobody: nothing reported
    headers = {"X-Request-Id": "req_a"}
    assert client.post("/api/convert?as=2", headers=headers).json == {"converted": True, "left": 2}
    assert client.post("/api/convert", headers=headers).json == {"converted": True, "left": 2}
    assert client.post("/api/convert").json == {"converted": True, "left": 1}
    assert client.post("/api/convert").json == {"converted": True, "left": 0}
    refused = client.post("/api/convert")
    assert refused.status_code == 429
    assert refused.json["error"] == "quota_exceeded"

    stripe_api.post(f"{API}/billing/meter_events", json={"object": "billing.meter_event"})
    stripe_api.post(f"{API}/customers", json=CUSTOMER)
    result = app.test_cli_runner().invoke(args=["billing", "usage", "send"])
    assert result.output == "0 rows sent, 0 failed, 0 to retry, 3 waiting for a Stripe customer\n"
    assert not [call for call in stripe_api.calls if "meter_events" in call.request.url]


# Credits: the example's own receivers of the purchase signals


def deliver(app: Flask, *events: dict[str, Any]) -> None:
    """POST each event to the example, signed with its demo secret; each is answered 200."""
    client = app.test_client()
    for event in events:
        assert post_event(client, event, secret=DEMO_WEBHOOK_SECRET).status_code == 200


def bobs_pack(quantity: int = 2, **changes: Any) -> dict[str, Any]:
    """bob's paid payment-mode session for ``quantity`` packs of credits_100 (30.00)."""
    return session_event(customer="cus_bob", user_id=str(BOB), quantity=quantity, **changes)


def purchase_row(app: Flask) -> tuple[int, str, int]:
    """bob's credits, and his one purchase's status and amount refunded, from /users/2."""
    bob = user(app, BOB)
    (purchase,) = bob["purchases"]
    return bob["credits"], purchase["status"], purchase["amount_refunded"]


def test_a_paid_credit_pack_grants_its_credits_once_and_the_pages_show_them(
    make_example: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_example()
    paid = bobs_pack(quantity=3, amount=4500)

    deliver(app, paid, paid)  # Stripe delivers it twice

    assert purchase_row(app) == (300, "paid", 0)
    assert user(app, BOB)["purchases"] == [
        {
            "id": PI,
            "product": "credits_100",
            "quantity": 3,
            "status": "paid",
            "amount": 4500,
            "amount_refunded": 0,
            "currency": "usd",
        }
    ]
    assert user(app, ALICE)["credits"] == 0
    client = app.test_client()
    pricing = client.get("/pricing?as=2").get_data(as_text=True)
    assert '<p id="credits">You have <b>300</b> credits.</p>' in pricing
    assert f"<td>{PI}</td>" in pricing
    assert "<td>paid</td>" in pricing
    assert "0.00 of 45.00\n      USD</td>" in pricing
    assert "<td>bob@example.com</td>" in client.get("/").get_data(as_text=True)
    assert "<td>300</td>" in client.get("/").get_data(as_text=True)
    bought = [r.getMessage() for r in caplog.records if "bought" in r.getMessage()]
    assert bought == [f"bob@example.com bought 300 credits ({PI})"]


def test_a_partial_refund_leaves_the_credits_and_a_full_one_takes_them_all_back(
    make_example: Callable[..., Flask],
) -> None:
    app = make_example()
    deliver(app, bobs_pack(created=1_800_000_000))

    deliver(app, refund_event(amount=1000, created=1_800_000_100))
    assert purchase_row(app) == (200, "partially_refunded", 1000)

    full = charge_refunded_event(amount_refunded=3000, customer="cus_bob", created=1_800_000_200)
    deliver(app, full, full)
    assert purchase_row(app) == (0, "refunded", 3000)
    pricing = app.test_client().get("/pricing?as=2").get_data(as_text=True)
    assert '<p id="credits">You have <b>0</b> credits.</p>' in pricing
    assert "<td>refunded</td>" in pricing


def test_a_refund_that_came_before_its_session_grants_and_takes_back_at_once(
    make_example: Callable[..., Flask],
) -> None:
    app = make_example()
    early = charge_refunded_event(amount_refunded=3000, customer="cus_bob", created=1_800_000_200)

    deliver(app, early)
    assert user(app, BOB)["credits"] == 0  # no account known yet: nothing granted
    deliver(app, bobs_pack(created=1_800_000_000))

    assert purchase_row(app) == (0, "refunded", 3000)
    with app.app_context():
        grant = db.session.get(CreditGrant, PI)
        assert grant is not None
        assert (grant.credits, grant.revoked) == (200, True)


def test_a_lost_dispute_takes_the_credits_back_an_open_one_does_not(
    make_example: Callable[..., Flask],
) -> None:
    app = make_example()
    deliver(app, bobs_pack(created=1_800_000_000))

    deliver(app, dispute_event(status="needs_response", created=1_800_000_100))
    assert user(app, BOB)["credits"] == 200
    deliver(app, dispute_event("charge.dispute.closed", status="lost", created=1_800_000_200))
    assert purchase_row(app) == (0, "paid", 0)


def test_a_purchase_of_a_product_that_is_no_credit_pack_grants_no_credits(
    make_example: Callable[..., Flask],
) -> None:
    app = make_example()

    deliver(app, bobs_pack(product=None, line_items=[("price_someone_elses", 1)]))

    bob = user(app, BOB)
    assert bob["credits"] == 0
    assert [(p["product"], p["status"]) for p in bob["purchases"]] == [(None, "paid")]


def test_the_success_page_and_the_webhook_that_follows_grant_the_credits_once(
    make_example: Callable[..., Flask], stripe_api: responses.RequestsMock
) -> None:
    app = make_example(**STRIPE_CONFIG)
    client = app.test_client()
    client.get("/pricing?as=2")
    paid = bobs_pack(quantity=5, amount=7500)
    session = paid["data"]["object"]
    stripe_api.add(responses.GET, f"{API}/checkout/sessions/{session['id']}", json=session)

    back = client.get(f"/billing/success?session_id={session['id']}")
    assert back.status_code == 303
    assert user(app, BOB)["credits"] == 500  # at once, before the webhook
    deliver(app, paid)

    assert purchase_row(app) == (500, "paid", 0)


def test_billing_refund_of_the_whole_pack_takes_the_credits_back(
    make_example: Callable[..., Flask], stripe_api: responses.RequestsMock
) -> None:
    app = make_example(**STRIPE_CONFIG)
    deliver(app, bobs_pack(created=1_800_000_000))
    refund = {
        **load("stripe-openapi/refund.json"),
        "id": "re_example_1",
        "amount": 3000,
        "payment_intent": PI,
        "status": "succeeded",
        "created": 1_800_000_100,
    }
    stripe_api.add(
        responses.POST,
        f"{API}/refunds",
        json=refund,
        headers={"Date": "Fri, 15 Jan 2027 08:00:00 GMT"},
    )

    with app.app_context():
        after = billing.refund(PI, reason="requested_by_customer")

    assert (after.status, after.amount_refunded) == ("refunded", 3000)
    assert form(stripe_api.calls[-1])["payment_intent"] == PI
    assert purchase_row(app) == (0, "refunded", 3000)
