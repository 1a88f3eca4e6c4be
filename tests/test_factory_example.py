"""The app-factory example (examples/factory_app): migrations, Flask-Login, Checkout, webhook.

Its database is made the way its README says, by ``flask db upgrade``
(through Flask-Migrate's API, and once through the CLI), on a fresh SQLite file;
Stripe's HTTP API is mocked by responses.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import flask_migrate
import pytest
import responses
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import DATABASE_URL
from flask import Flask
from support import SECRET, checkout_event, load, post_event

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "factory_app"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

from factory_app import create_app  # noqa: E402
from factory_app.extensions import db  # noqa: E402
from factory_app.models import User  # noqa: E402

API = "https://api.stripe.com/v1"
STRIPE_CONFIG = {
    "STRIPE_API_KEY": "sk_test_51FactoryAppKey000000000",
    "STRIPE_WEBHOOK_SECRET": SECRET,
    "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
    "STRIPE_PRICE_PRO_YEARLY": "price_yearly",
}
CUSTOMER = load("stripe-openapi/customer.json")
SESSION = load(
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json"
)
ENVIRONMENT = (
    "DATABASE_URL",
    "SECRET_KEY",
    "STRIPE_API_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_PRICE_PRO_MONTHLY",
    "STRIPE_PRICE_PRO_YEARLY",
    "STRIPE_SUCCESS_URL",
    "STRIPE_CANCEL_URL",
    "STRIPE_PORTAL_RETURN_URL",
    "STRIPE_BILLING_PLANS",
    "PRO_PLAN_NAME",
)
BILLING_COLUMNS = {
    "plan",
    "stripe_customer_id",
    "stripe_subscription_id",
    "stripe_subscription_status",
    "current_period_end",
    "cancel_at_period_end",
    "updated_at",
    "trial_end",
    "subscription_quantity",
    "stripe_last_event_at",
}
EVENT_COLUMNS = {
    "id",
    "type",
    "created",
    "customer_id",
    "user_id",
    "status",
    "error",
    "payload",
    "attempts",
    "received_at",
    "processed_at",
}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example reads these from the environment: only the tests' values count."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def app(tmp_path: Path, clean_environment: None) -> Iterator[Flask]:
    """The example on a fresh SQLite file, migrated with ``flask db upgrade``."""
    made = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'factory.db'}"}
        | STRIPE_CONFIG
    )
    with made.app_context():
        flask_migrate.upgrade()
    yield made
    with made.app_context():
        db.session.remove()
        db.engine.dispose()


def csrf_token(client: Any) -> str:
    """The CSRF token of the client's session, as the pages carry it."""
    html = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no csrf-token meta tag"
    return match.group(1)


def sign_in(client: Any, email: str) -> int:
    """Sign in with the demo login form; the user's id."""
    answer = client.post("/login", data={"email": email, "csrf_token": csrf_token(client)})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/pricing"
    assert f"Signed in as <b>{email}</b>" in client.get("/").get_data(as_text=True)
    return account(client.application, email)["id"]


def account(app: Flask, email: str) -> dict[str, Any]:
    """The user's row as stored now."""
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        assert user is not None
        return {column: getattr(user, column) for column in {"id", "email"} | BILLING_COLUMNS}


def start_checkout(client: Any, interval: str = "monthly") -> Any:
    """What the pricing page's Upgrade button sends (JSON, with the CSRF token)."""
    return client.post(
        "/billing/checkout-session",
        json={"interval": interval},
        headers={"X-CSRFToken": csrf_token(client)},
    )


def form(call: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def test_db_upgrade_creates_users_with_billing_columns_and_the_event_table(app: Flask) -> None:
    with app.app_context():
        inspector = sa.inspect(db.engine)
        tables = set(inspector.get_table_names())
        users = {column["name"] for column in inspector.get_columns("users")}
        events = {column["name"] for column in inspector.get_columns("stripe_billing_events")}
        user_indexes = {i["name"]: i for i in inspector.get_indexes("users")}
        event_key = inspector.get_pk_constraint("stripe_billing_events")["constrained_columns"]

    assert {"users", "stripe_billing_events", "alembic_version"} <= tables
    assert users == {"id", "email"} | BILLING_COLUMNS
    assert events == EVENT_COLUMNS
    assert event_key == ["id"]  # one row per Stripe event id: duplicates cannot be applied twice
    assert user_indexes["ix_users_stripe_customer_id"]["unique"]
    assert_server_defaults_work(app)


def assert_server_defaults_work(app: Flask) -> None:
    """A row inserted without the billing columns (as by older code) is free, not cancelling."""
    with app.app_context():
        db.session.execute(sa.text("INSERT INTO users (email) VALUES ('raw@example.com')"))
        db.session.commit()
        row = db.session.execute(
            sa.text("SELECT plan, cancel_at_period_end FROM users WHERE email = 'raw@example.com'")
        ).one()
    assert (row.plan, bool(row.cancel_at_period_end)) == ("free", False)


def test_models_and_migrations_agree_after_upgrade(app: Flask) -> None:
    """What ``flask db migrate`` would find to do after ``upgrade``: nothing."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
        assert differences == []
        flask_migrate.check()  # `flask db check`: exits 1 when there is something to migrate


@pytest.mark.postgres
def test_migration_runs_on_postgresql_too(clean_environment: None) -> None:
    """On a new database next to DATABASE_URL's: upgrade, agree with the models, defaults."""
    server = sa.make_url(DATABASE_URL)
    name = f"factory_app_{secrets.token_hex(6)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": server.set(database=name).render_as_string(False)}
        | STRIPE_CONFIG
    )
    try:
        with app.app_context():
            flask_migrate.upgrade()
            tables = set(sa.inspect(db.engine).get_table_names())
            with db.engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"compare_type": True})
                differences = compare_metadata(context, db.metadata)
        assert {"users", "stripe_billing_events", "alembic_version"} <= tables
        assert differences == []
        assert_server_defaults_work(app)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_readme_commands_upgrade_a_fresh_database(tmp_path: Path) -> None:
    """``flask --app factory_app db upgrade`` then ``db check``, run from the example's folder."""
    database = tmp_path / "cli.db"
    environment = {name: value for name, value in os.environ.items() if name not in ENVIRONMENT}
    environment["DATABASE_URL"] = f"sqlite:///{database}"

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "factory_app", *args],
            cwd=EXAMPLE,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )

    upgrade = flask("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert "Running upgrade  -> " in upgrade.stderr
    check = flask("db", "check")
    assert check.returncode == 0, check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr
    tables = set(sa.inspect(sa.create_engine(f"sqlite:///{database}")).get_table_names())
    assert {"users", "stripe_billing_events"} <= tables


def test_signed_in_user_gets_a_checkout_url(app: Flask, stripe_api: responses.RequestsMock) -> None:
    client = app.test_client()
    user_id = sign_in(client, "ada@example.com")
    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    answer = start_checkout(client, "yearly")

    assert answer.status_code == 200
    assert answer.json == {"id": SESSION["id"], "url": SESSION["url"]}
    assert account(app, "ada@example.com")["stripe_customer_id"] == CUSTOMER["id"]
    customer_call, session_call = stripe_api.calls
    assert form(customer_call) == {"email": "ada@example.com", "metadata[user_id]": str(user_id)}
    sent = form(session_call)
    assert sent["client_reference_id"] == str(user_id)
    assert sent["line_items[0][price]"] == "price_yearly"
    assert sent["success_url"] == (
        "http://127.0.0.1:5000/billing/success?session_id={CHECKOUT_SESSION_ID}"
    )


def test_checkout_without_the_csrf_token_is_refused(
    app: Flask, stripe_api: responses.RequestsMock
) -> None:
    client = app.test_client()
    sign_in(client, "ada@example.com")

    answer = client.post("/billing/checkout-session", json={"interval": "monthly"})

    assert answer.status_code == 400  # Flask-WTF's CSRFProtect, before the extension
    assert len(stripe_api.calls) == 0


def test_checkout_is_401_when_signed_out(app: Flask, stripe_api: responses.RequestsMock) -> None:
    client = app.test_client()

    never_signed_in = start_checkout(client)
    sign_in(client, "ada@example.com")
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    signed_out = start_checkout(client)

    for answer in (never_signed_in, signed_out):
        assert answer.status_code == 401
        assert answer.json["error"] == "authentication_error"
    assert len(stripe_api.calls) == 0
    assert account(app, "ada@example.com")["stripe_customer_id"] is None


def test_pro_page_sends_signed_out_visitors_to_sign_in(app: Flask) -> None:
    answer = app.test_client().get("/pro")

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=")


def test_signed_webhook_makes_the_signed_in_user_pro(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    user_id = sign_in(client, "ada@example.com")
    refused = client.get("/pro")
    assert (refused.status_code, refused.headers["Location"]) == (302, "/pricing")
    event = checkout_event(
        customer="cus_ada", subscription="sub_ada", client_reference_id=str(user_id)
    )

    with caplog.at_level(logging.INFO, logger=app.logger.name):
        answer = post_event(client, event, secret=SECRET)  # no CSRF token: Stripe signs it

    assert answer.status_code == 200
    assert answer.json == {"received": True}
    ada = account(app, "ada@example.com")
    assert (ada["plan"], ada["stripe_subscription_status"]) == ("pro", "active")
    assert (ada["stripe_customer_id"], ada["stripe_subscription_id"]) == ("cus_ada", "sub_ada")
    page = client.get("/pro")
    assert page.status_code == 200
    assert "Welcome, ada@example.com: everything here is for pro users." in page.get_data(
        as_text=True
    )
    assert "Welcome to pro, ada@example.com! (was free)" in caplog.messages


def test_migrating_keeps_the_apps_logging(app: Flask) -> None:
    """The example's env.py leaves configured logging alone (Flask-Migrate's template does not)."""
    assert not logging.getLogger("flask_stripe_billing").disabled
    assert not app.logger.disabled


def test_export_is_for_plans_with_the_export_feature(app: Flask) -> None:
    client = app.test_client()
    signed_out = client.get("/export")
    assert signed_out.headers["Location"] == "/login?next=%2Fexport"
    user_id = sign_in(client, "ada@example.com")
    free = client.get("/export")
    assert (free.status_code, free.headers["Location"]) == (302, "/pricing")
    as_json = client.get("/export", headers={"Accept": "application/json"})
    assert as_json.status_code == 403
    assert as_json.json["details"] == {"required_feature": "export", "current_plan": "free"}

    event = checkout_event(
        customer="cus_ada", subscription="sub_ada", client_reference_id=str(user_id)
    )
    assert post_event(client, event, secret=SECRET).status_code == 200

    page = client.get("/export")
    assert page.status_code == 200
    assert "Your pro plan includes exports, ada@example.com." in page.get_data(as_text=True)


def pricing_forms(client: Any) -> dict[str, tuple[str, dict[str, str]]]:
    """The pricing page's ready-made buttons: label → (form action, hidden fields)."""
    html = client.get("/pricing").get_data(as_text=True)
    found = {}
    for action, inputs, label in re.findall(
        r'<form method="post" action="([^"]+)"[^>]*>(.*?)<button[^>]*>([^<]+)</button></form>',
        html,
    ):
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', inputs))
        found[label] = (action, fields)
    return found


def test_the_pricing_pages_ready_made_buttons_carry_the_token_and_open_checkout(
    app: Flask, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)
    client = app.test_client()
    sign_in(client, "ada@example.com")

    forms = pricing_forms(client)
    assert set(forms) == {
        "Upgrade to Pro — monthly",
        "Upgrade to Pro — yearly",
        "Manage billing",
    }
    action, fields = forms["Upgrade to Pro — yearly"]
    assert (action, fields["interval"]) == ("/billing/checkout", "yearly")
    assert fields["csrf_token"]  # signed with a timestamp: the POST below shows it is valid
    without_token = client.post(action, data={"interval": "yearly"})
    answer = client.post(action, data=fields)

    assert without_token.status_code == 400  # Flask-WTF's CSRF refusal
    assert answer.status_code == 303
    assert answer.headers["Location"] == SESSION["url"]
    (session_call,) = [c for c in stripe_api.calls if c.request.url.endswith("/checkout/sessions")]
    assert form(session_call)["line_items[0][price]"] == "price_yearly"
    assert forms["Manage billing"][0] == "/billing/portal/redirect"
