"""Before ``flask billing schema --upgrade`` (or the migration) has run, on the previous
release's schema (tests/fixtures/schema/0.1.0.*.sql): the operations page shows an account
and says in each section whose table is missing what the start-up error says; the
DB-API store's account reads, questions, gates, templates and settings partial answer from
the columns 0.1 had; the webhook answers 503 naming the fix. SQLite, and PostgreSQL when
DATABASE_URL names one; the SQLAlchemy store and the DB-API store."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from conftest import DATABASE_URL, ON_POSTGRES
from dbapi_support import Database
from flask import Flask, render_template_string
from support import SECRET, post_event, subscription_event
from test_checkout import API, SESSION, form, stripe_calls
from test_checkout import CONFIG as CHECKOUT
from test_upgrades import (
    LAGGING,
    SCHEMA_UPGRADE,
    Host,
    billing_errors,
    old_database,
    run_script,
)

from flask_stripe_billing import DBAPIUserStore, StripeBilling

PREFIX = "/billing/admin"
FEATURES = {"pro": ["export"]}
PRODUCTS = {
    "STRIPE_BILLING_PRODUCTS": {"price_lifetime": "lifetime"},
    "STRIPE_BILLING_PRODUCT_FEATURES": {"lifetime": ["export"]},
}
MIGRATE = "flask db migrate, then flask db upgrade"
#: The start-up error's words for each missing table (test_upgrades checks that error).
ADDED = {
    "stripe_billing_subscriptions": '"Each Stripe subscription is its own record"',
    "stripe_billing_entitlements": '"Stripe Entitlements"',
    "stripe_billing_usage": '"Usage-based billing"',
    "stripe_billing_purchases": '"One-time purchases"',
}


def lacks(table: str, command: str) -> str:
    """The note a section shows for a missing table: the start-up error's wording."""
    return (
        f"The database lacks table {table} (added in Unreleased (after 0.1.0), "
        f"{ADDED[table]}). Run {command}."
    )


def notes(page: str) -> dict[str, str]:
    """Each note on the page saying what the database lacks, by its element id."""
    found = re.findall(r'<p class="missing" id="([\w-]+)">(.*?)</p>', page, re.S)
    return {name: html.unescape(text) for name, text in found}


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """0.1.0's schema; user 1 on pro with customer ``cus_test``, as 0.1 left it."""
    made = old_database(tmp_path)
    made.run("UPDATE users SET plan = 'pro', stripe_subscription_status = 'active'")
    yield made
    made.drop("users")


def dbapi_host(database: Database, **config: Any) -> tuple[Flask, StripeBilling]:
    """A raw-SQL app on ``database``: the operations page, a gated page, a template, the
    settings partial; the signed-in user is the ``X-User`` header's."""
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY="lagging",
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_BILLING_FEATURES=FEATURES,
        **config,
    )
    billing = StripeBilling(
        app,
        user_store=DBAPIUserStore(database.connect, close=True),
        current_user_id=lambda: _signed_in(),
    )
    app.register_blueprint(billing.admin_blueprint(lambda: True))

    @app.get("/pro")
    @billing.plan_required()
    def pro() -> str:
        return "pro page"

    @app.get("/page")
    def page() -> str:
        return render_template_string("plan: {{ billing_account.plan if billing_account }}")

    @app.get("/settings")
    def settings() -> str:
        return render_template_string("{{ billing_settings() }}")

    return app, billing


def _signed_in() -> str | None:
    from flask import request

    return request.headers.get("X-User")


# The operations page


EXPECTED_NOTES = {
    "missing-columns": "Shown without them: The database lacks column users.trial_end (added "
    'in Unreleased (after 0.1.0), "Upgrading from 0.1"); column users.subscription_quantity '
    '(added in Unreleased (after 0.1.0), "Upgrading from 0.1"). Run {command}.',
    "missing-subscriptions": lacks("stripe_billing_subscriptions", "{command}"),
    "missing-entitlements": lacks("stripe_billing_entitlements", "{command}"),
    "section-1-note": lacks("stripe_billing_purchases", "{command}"),
    "section-2-note": lacks("stripe_billing_usage", "{command}"),
}


def expected_notes(command: str) -> dict[str, str]:
    return {name: text.replace("{command}", command) for name, text in EXPECTED_NOTES.items()}


def test_the_ops_page_shows_a_lagging_dbapi_account_and_names_each_missing_table(
    database: Database,
) -> None:
    app, _ = dbapi_host(database)
    client = app.test_client()
    post_event(client, subscription_event(customer="cus_test", status="active"))  # 503, kept

    answer = client.get(f"{PREFIX}/accounts/1")

    assert answer.status_code == 200, answer.get_data(as_text=True)
    page = answer.get_data(as_text=True)
    assert '<dd id="plan">pro</dd>' in page
    assert '<dd id="customer">cus_test</dd>' in page
    assert notes(page) == expected_notes(SCHEMA_UPGRADE)
    assert "<h2>Usage</h2>" in page and "<h2>Purchases</h2>" in page
    assert "No events of cus_test stored." in page  # the timeline still reads the log
    assert client.get(f"{PREFIX}/").status_code == 200
    assert client.get(f"{PREFIX}/accounts", query_string={"q": "cus_test"}).status_code == 302


def test_after_the_upgrade_the_ops_page_shows_every_section_again(database: Database) -> None:
    app, _ = dbapi_host(database)
    client = app.test_client()
    script = app.test_cli_runner().invoke(args=["billing", "schema", "--upgrade"]).output
    run_script(database, script)
    assert post_event(client, subscription_event(customer="cus_test")).status_code == 200

    page = client.get(f"{PREFIX}/accounts/1").get_data(as_text=True)

    assert notes(page) == {}
    assert 'id="subscriptions"' in page and "sub_test" in page


@pytest.fixture
def sqlalchemy_host(database: Database, tmp_path: Path) -> Iterator[Host]:
    """A Flask-SQLAlchemy app (test_upgrades' host) on ``database``, with the operations
    page and products whose purchases grant features."""
    url = DATABASE_URL if ON_POSTGRES else f"sqlite:///{tmp_path / 'billing.db'}"
    host = Host(url, SECRET_KEY="lagging", **PRODUCTS)
    host.app.register_blueprint(host.billing.admin_blueprint(lambda: True))
    yield host
    host.close()


def test_the_ops_page_shows_a_lagging_sqlalchemy_account_and_names_each_missing_table(
    sqlalchemy_host: Host,
) -> None:
    host = sqlalchemy_host
    client = host.app.test_client()

    answer = client.get(f"{PREFIX}/accounts/1")

    assert answer.status_code == 200, answer.get_data(as_text=True)
    page = answer.get_data(as_text=True)
    assert '<dd id="plan">pro</dd>' in page
    assert notes(page) == expected_notes(MIGRATE)

    host.upgrade()

    assert notes(client.get(f"{PREFIX}/accounts/1").get_data(as_text=True)) == {}


# The DB-API store's reads before the upgrade


def test_a_lagging_dbapi_app_answers_the_questions_from_0_1s_columns(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    app, billing = dbapi_host(database, **PRODUCTS)
    assert len(billing_errors(caplog)) == 1

    with app.app_context():
        account = billing.account(1)
        assert (account.plan, account.stripe_customer_id) == ("pro", "cus_test")
        assert (account.is_paying(), account.on_trial(), account.on_grace_period()) == (
            True,
            False,
            False,
        )
        assert account.has_feature("export", billing.settings)  # the plan's, no entitlements
        assert (account.trial_end, account.subscription_quantity) == (None, None)
        assert billing.purchases(1) == []  # no table yet: none, rather than an error
        assert billing.has_purchased(1, "lifetime") is False
    client = app.test_client()
    page = client.get("/page", headers={"X-User": "1"})
    assert (page.status_code, page.get_data(as_text=True)) == (200, "plan: ")
    settings = client.get("/settings", headers={"X-User": "1"})
    assert settings.status_code == 200, settings.get_data(as_text=True)
    assert "pro" in settings.get_data(as_text=True)
    gated = client.get("/pro", headers={"X-User": "1", "Accept": "application/json"})
    assert gated.status_code == 503
    assert gated.get_json()["details"] == {
        "service": "database",
        "missing": LAGGING,
        "command": SCHEMA_UPGRADE,
    }
    webhook = post_event(client, subscription_event(customer="cus_test", status="active"))
    assert webhook.status_code == 503
    assert SCHEMA_UPGRADE in webhook.get_json()["message"]
    assert len(billing_errors(caplog)) == 1


def test_a_running_dbapi_app_writes_the_new_columns_once_they_are_added(
    database: Database,
) -> None:
    """The store read the users table's columns before the upgrade: it reads them again
    once an inspection finds the missing ones, without a restart."""
    app, billing = dbapi_host(database)
    with app.app_context():
        assert billing.account(1).subscription_quantity is None  # columns read: 0.1's
    script = app.test_cli_runner().invoke(args=["billing", "schema", "--upgrade"]).output
    run_script(database, script)

    event = subscription_event(customer="cus_test", status="trialing")
    event["data"]["object"]["trial_end"] = event["created"] + 7 * 86400
    event["data"]["object"]["items"]["data"][0]["quantity"] = 3
    event["data"]["object"].pop("quantity", None)
    assert post_event(app.test_client(), event).status_code == 200

    assert database.row("SELECT subscription_quantity FROM users WHERE id = 1") == (3,)
    with app.app_context():
        upgraded = billing.account(1)
    assert (upgraded.subscription_quantity, upgraded.trial_end is not None) == (3, True)
    gated = app.test_client().get("/pro", headers={"X-User": "1"})
    assert gated.get_data(as_text=True) == "pro page"


def test_the_start_up_error_is_logged_once_however_many_pages_ask(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flask_stripe_billing")
    app, _ = dbapi_host(database)
    client = app.test_client()
    for path in (f"{PREFIX}/accounts/1", "/page", "/settings", "/pro"):
        client.get(path, headers={"X-User": "1"})

    assert len(billing_errors(caplog)) == 1


def test_a_lagging_app_opens_checkout_without_a_trial_it_cannot_check(
    database: Database, stripe_api: responses.RequestsMock
) -> None:
    """Without the subscription records a trial's "never subscribed" cannot be told: the
    Checkout opens, with no trial (none given twice), rather than failing."""
    app, _ = dbapi_host(database, **CHECKOUT, STRIPE_TRIAL_DAYS="14")
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    answer = app.test_client().post(
        "/billing/checkout-session", json={"interval": "yearly"}, headers={"X-User": "1"}
    )

    assert answer.status_code == 200, answer.get_json()
    sent = form(stripe_calls(stripe_api, "/checkout/sessions")[-1])
    assert sent["customer"] == "cus_test"
    assert not [key for key in sent if "trial" in key]
