"""The raw-sqlite3 example (examples/sqlite3_app): Flask's tutorial style, DBAPIUserStore,
end to end: init-db, a signed webhook, the user's row in the sqlite3 file."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from flask import Flask
from support import checkout_event, load, post_event, subscription_event

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "sqlite3_app"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from sqlite3_app import DEMO_WEBHOOK_SECRET, create_app  # noqa: E402

API = "https://api.stripe.com/v1"
CHECKOUT_CONFIG = {
    "STRIPE_API_KEY": "sk_test_51Sqlite3Example000000",
    "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
    "STRIPE_SUCCESS_URL": "https://app.example.com/success",
    "STRIPE_CANCEL_URL": "https://app.example.com/pricing",
}
CUSTOMER = load("stripe-openapi/customer.json")
SESSION = load(
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json"
)


@pytest.fixture
def make_example(tmp_path: Path) -> Callable[..., Flask]:
    """The example over a fresh sqlite3 file, made by its ``init-db`` command."""

    def make(**config: Any) -> Flask:
        app = create_app({"DATABASE": str(tmp_path / "app.sqlite"), "TESTING": True, **config})
        result = app.test_cli_runner().invoke(args=["init-db"])
        assert result.output == "Initialized the database.\n"
        return app

    return make


def form(request: Any) -> dict[str, str]:
    """The form fields stripe-python sent."""
    return {key: values[0] for key, values in parse_qs(request.body).items()}


def row(app: Flask, username: str) -> tuple[Any, ...]:
    """The user's billing columns, read from the file by another connection."""
    with sqlite3.connect(app.config["DATABASE"]) as connection:
        found = connection.execute(
            "SELECT plan, stripe_subscription_status, stripe_subscription_id, stripe_customer_id "
            "FROM user WHERE username = ?",
            (username,),
        ).fetchone()
    assert found is not None
    return tuple(found)


def test_shipped_billing_sql_is_what_flask_billing_schema_prints(
    make_example: Callable[..., Flask],
) -> None:
    result = make_example().test_cli_runner().invoke(args=["billing", "schema"])

    assert result.exit_code == 0
    assert result.output == (EXAMPLES / "sqlite3_app" / "billing.sql").read_text()


def test_signed_webhook_changes_the_users_row(make_example: Callable[..., Flask]) -> None:
    app = make_example()
    client = app.test_client()
    assert row(app, "ada") == ("free", None, None, "cus_demo_ada")
    event = subscription_event(customer="cus_demo_ada", subscription="sub_ada", status="active")

    response = post_event(client, event, secret=DEMO_WEBHOOK_SECRET)
    again = post_event(client, event, secret=DEMO_WEBHOOK_SECRET)

    assert (response.status_code, response.get_json()) == (200, {"received": True})
    assert again.status_code == 200
    assert row(app, "ada") == ("pro", "active", "sub_ada", "cus_demo_ada")
    assert client.get("/").get_json() == [
        {"id": 1, "username": "ada", "plan": "pro", "stripe_subscription_status": "active"},
        {"id": 2, "username": "bob", "plan": "free", "stripe_subscription_status": None},
    ]
    listed = app.test_cli_runner().invoke(args=["billing", "events"])
    assert event["id"] in listed.output
    assert "processed" in listed.output


def test_pro_page_opens_after_the_checkout_webhook(make_example: Callable[..., Flask]) -> None:
    app = make_example()
    client = app.test_client()
    client.get("/login/2")
    refused = client.get("/pro", headers={"Accept": "application/json"})
    assert (refused.status_code, refused.get_json()["error"]) == (402, "payment_required")

    event = checkout_event(customer="cus_bob", subscription="sub_bob", client_reference_id="2")
    assert post_event(client, event, secret=DEMO_WEBHOOK_SECRET).status_code == 200

    assert row(app, "bob") == ("pro", "active", "sub_bob", "cus_bob")
    page = client.get("/pro", headers={"Accept": "application/json"})
    assert page.status_code == 200
    assert page.get_json() == {"message": "Welcome, user 2: this page is for paying users."}


def test_checkout_stores_the_new_customer_on_the_request_connection(
    make_example: Callable[..., Flask], stripe_api: Any
) -> None:
    app = make_example(**CHECKOUT_CONFIG)
    stripe_api.add(responses.POST, f"{API}/customers", json={**CUSTOMER, "id": "cus_new_bob"})
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)
    client = app.test_client()
    client.get("/login/2")

    response = client.post("/billing/checkout-session", json={"interval": "monthly"})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"id": SESSION["id"], "url": SESSION["url"]}
    assert row(app, "bob") == ("free", None, None, "cus_new_bob")  # committed by the store
    customer, session = (call.request for call in stripe_api.calls)
    assert customer.url == f"{API}/customers"
    assert form(customer)["metadata[user_id]"] == "2"
    assert (session.url, form(session)["customer"]) == (f"{API}/checkout/sessions", "cus_new_bob")
    assert form(session)["line_items[0][price]"] == "price_monthly"
