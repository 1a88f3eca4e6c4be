"""The developer commands: ``flask billing trigger``, ``check`` and ``create-webhook-endpoint``."""

from __future__ import annotations

import copy
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses
from conftest import Host
from support import SECRET, load
from werkzeug.serving import make_server

from flask_stripe_billing import stripe_api
from flask_stripe_billing.cli.check import describe_key
from flask_stripe_billing.core.rules import HANDLED_EVENT_TYPES
from flask_stripe_billing.core.templates import TEMPLATE_EVENT_TYPES
from flask_stripe_billing.testing import get_account, record_signals

API_KEY = "sk_test_51DevCheckKey000000000000Zq9X"
PRICE = load("stripe-openapi/price.json")
PRICE_URL = "https://api.stripe.com/v1/prices/"
BALANCE_URL = "https://api.stripe.com/v1/balance"
ENDPOINTS_URL = "https://api.stripe.com/v1/webhook_endpoints"
#: Stripe's balance object (API reference: "The Balance object"); no fixture has one.
BALANCE = {
    "object": "balance",
    "available": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
    "livemode": False,
    "pending": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
}


def billing(host: Host, *args: str) -> Any:
    """Run ``flask billing ARGS`` against the host app, as a developer would."""
    return host.app.test_cli_runner().invoke(args=["billing", *args])


def price(price_id: str, **changes: Any) -> dict[str, Any]:
    """Stripe's price fixture under another id, with fields changed."""
    return copy.deepcopy(PRICE) | {"id": price_id} | changes


@pytest.fixture
def stripe_mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def server(host: Host) -> Iterator[str]:
    """The host app served by a real werkzeug server on a free port: its webhook URL."""
    http = make_server("127.0.0.1", 0, host.app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}/stripe/webhook"
    http.shutdown()
    thread.join(timeout=5)


# trigger


def test_trigger_subscription_created_makes_the_user_pro_and_prints_before_and_after(
    host: Host,
) -> None:
    result = billing(host, "trigger", "customer.subscription.created", "--user", "1")

    assert result.exit_code == 0, result.output
    first, delivered, logged, before, after = result.output.splitlines()
    assert first.startswith("customer.subscription.created evt_test_")
    assert first.endswith(
        "(customer cus_test, subscription sub_test_1, status active, price price_test)"
    )
    assert delivered == '  → /stripe/webhook (in-process): HTTP 200 {"received":true}'
    assert logged == "  event log: processed"
    assert before == (
        "  before: user 1: plan free, status none, customer cus_test, subscription none"
    )
    assert after == (
        "  after:  user 1: plan pro, status active, customer cus_test, subscription sub_test_1"
    )
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    assert user.stripe_subscription_id == "sub_test_1"
    assert [(row["type"], row["status"], row["user_id"]) for row in host.events()] == [
        ("customer.subscription.created", "processed", "1")
    ]


@pytest.mark.parametrize(
    ("event_type", "options", "plan", "status"),
    [
        ("checkout.session.completed", (), "pro", "active"),
        ("checkout.session.async_payment_succeeded", (), "pro", "active"),
        ("checkout.session.completed", ("--payment-status", "unpaid"), "free", None),
        ("customer.subscription.created", (), "pro", "active"),
        ("customer.subscription.created", ("--status", "incomplete"), "free", "incomplete"),
        ("customer.subscription.updated", ("--status", "trialing"), "pro", "trialing"),
        ("customer.subscription.updated", ("--status", "unpaid"), "free", "unpaid"),
        ("customer.subscription.deleted", (), "free", "canceled"),
    ],
)
def test_trigger_changes_the_account_as_the_rules_say(
    host: Host, event_type: str, options: tuple[str, ...], plan: str, status: str | None
) -> None:
    result = billing(host, "trigger", event_type, "--user", "1", *options)

    assert result.exit_code == 0, result.output
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == (plan, status)
    assert f"after:  user 1: plan {plan}, status {status or 'none'}," in result.output
    assert host.events()[0]["status"] == "processed"


def test_trigger_deleted_after_created_takes_the_plan_away(host: Host) -> None:
    billing(host, "trigger", "customer.subscription.created", "--user", "1")

    result = billing(host, "trigger", "customer.subscription.deleted", "--user", "1")

    assert result.exit_code == 0, result.output
    assert "subscription sub_test_1, status canceled" in result.output.splitlines()[0]
    assert "before: user 1: plan pro, status active" in result.output
    assert "after:  user 1: plan free, status canceled" in result.output
    assert host.user(1).plan == "free"


def test_trigger_checkout_links_a_user_without_a_customer(host: Host) -> None:
    host.add_user(2)

    result = billing(host, "trigger", "checkout.session.completed", "--user", "2")

    assert result.exit_code == 0, result.output
    assert "user 2)" in result.output.splitlines()[0]
    assert "before: user 2: plan free, status none, customer none" in result.output
    assert "after:  user 2: plan pro, status active, customer cus_test_2" in result.output
    user = host.user(2)
    assert (user.plan, user.stripe_customer_id) == ("pro", "cus_test_2")
    assert host.user(1).plan == "free"  # cus_test's user is left alone


def test_trigger_by_customer_finds_the_account_and_uses_the_configured_price(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"STRIPE_BILLING_PLANS": "price_gold=gold"})
    host.add_user(1, stripe_customer_id="cus_gold")

    result = billing(
        host, "trigger", "customer.subscription.created", "--customer", "cus_gold",
        "--subscription", "sub_gold", "--price", "price_gold",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "price price_gold" in result.output
    assert "after:  user 1: plan gold, status active, customer cus_gold, subscription sub_gold" in (
        result.output
    )
    assert host.user(1).plan == "gold"


@pytest.mark.parametrize("layout", [(), ("--legacy-layout",)], ids=["current", "legacy"])
def test_trigger_a_failed_payment_sends_payment_failed_and_changes_nothing(
    host: Host, layout: tuple[str, ...]
) -> None:
    with record_signals() as sent:
        result = billing(host, "trigger", "invoice.payment_failed", "--user", "1", *layout)

    assert result.exit_code == 0, result.output
    first, _, logged, before, after = result.output.splitlines()
    assert first.startswith("invoice.payment_failed evt_test_")
    assert "(customer cus_test, invoice in_placeholder, status open, amount_due " in first
    assert logged == "  event log: processed"
    assert before.replace("before: ", "") == after.replace("after:  ", "")
    (call,) = sent["payment_failed"]
    assert (call["user_id"], call["subscription_id"]) == ("1", "sub_test_1")
    assert host.user(1).plan == "free"


def test_trigger_for_an_unknown_customer_leaves_the_event_unmatched(host: Host) -> None:
    result = billing(host, "trigger", "customer.subscription.created", "--customer", "cus_nobody")

    assert result.exit_code == 0
    assert "event log: unmatched" in result.output
    assert "before: no account has customer cus_nobody" in result.output
    assert "after:  no account has customer cus_nobody" in result.output


def test_trigger_legacy_layout_sends_the_period_on_the_subscription(host: Host) -> None:
    result = billing(
        host, "trigger", "customer.subscription.created", "--user", "1", "--legacy-layout"
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(host.events()[0]["payload"])
    subscription = payload["data"]["object"]
    assert payload["api_version"] == "2020-08-27"
    assert "current_period_end" in subscription
    assert all("current_period_end" not in item for item in subscription["items"]["data"])
    user = host.user(1)
    assert user.plan == "pro"
    assert user.current_period_end.timestamp() == subscription["current_period_end"]


def test_trigger_current_layout_sends_the_period_on_the_items(host: Host) -> None:
    billing(host, "trigger", "customer.subscription.created", "--user", "1")

    payload = json.loads(host.events()[0]["payload"])
    subscription = payload["data"]["object"]
    assert "current_period_end" not in subscription
    period_end = subscription["items"]["data"][0]["current_period_end"]
    assert host.user(1).current_period_end.timestamp() == period_end


def test_trigger_url_posts_to_a_running_server(host: Host, server: str) -> None:
    result = billing(
        host, "trigger", "customer.subscription.created", "--user", "1", "--url", server
    )

    assert result.exit_code == 0, result.output
    assert f'  → {server}: HTTP 200 {{"received":true}}' in result.output.splitlines()
    assert "after:  user 1: plan pro, status active" in result.output
    assert host.user(1).plan == "pro"
    assert host.events()[0]["status"] == "processed"


def test_trigger_url_exits_1_when_the_server_refuses_the_signature(
    host: Host, make_host: Callable[..., Host]
) -> None:
    other = make_host({"STRIPE_WEBHOOK_SECRET": "whsec_another_endpoint"})
    http = make_server("127.0.0.1", 0, other.app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{http.server_port}/stripe/webhook"
        result = billing(host, "trigger", "customer.subscription.created", "--url", url)
    finally:
        http.shutdown()
        thread.join(timeout=5)

    assert result.exit_code == 1
    assert f"  → {url}: HTTP 400 " in result.output
    assert "Invalid webhook signature" in result.output
    assert SECRET not in result.output
    assert "whsec_another_endpoint" not in result.output


def test_trigger_url_exits_1_when_nothing_listens(host: Host) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    url = f"http://127.0.0.1:{port}/stripe/webhook"
    result = billing(host, "trigger", "customer.subscription.created", "--url", url)

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: Could not deliver to {url}: ")
    assert host.events() == []


def test_trigger_under_a_url_prefix_posts_to_the_prefixed_webhook(
    make_host: Callable[..., Host],
) -> None:
    host = make_host(url_prefix="/api")
    host.add_user(1, stripe_customer_id="cus_test")

    result = billing(host, "trigger", "customer.subscription.created", "--user", "1")

    assert result.exit_code == 0, result.output
    assert "→ /api/stripe/webhook (in-process): HTTP 200" in result.output
    assert host.user(1).plan == "pro"


def test_trigger_without_a_webhook_secret_exits_1_and_sends_nothing(
    make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    host = make_host({"STRIPE_WEBHOOK_SECRET": ""})
    host.add_user(1, stripe_customer_id="cus_test")

    result = billing(host, "trigger", "customer.subscription.created", "--user", "1")

    assert result.exit_code == 1
    assert result.output == (
        "Error: STRIPE_WEBHOOK_SECRET is not set: trigger signs events with it, as Stripe does.\n"
    )
    assert host.events() == []


def test_trigger_of_an_unhandled_type_lists_the_handled_ones(host: Host) -> None:
    result = billing(host, "trigger", "invoice.finalized")

    assert result.exit_code == 2
    assert "'invoice.finalized' is not a type this package handles" in result.output
    for event_type in TEMPLATE_EVENT_TYPES:
        assert event_type in result.output
    assert host.events() == []


def test_trigger_for_an_unknown_user_exits_2(host: Host) -> None:
    result = billing(host, "trigger", "customer.subscription.created", "--user", "99")

    assert (result.exit_code, result.output) == (2, "Error: No user 99; nothing was sent.\n")
    assert host.events() == []


def test_trigger_refuses_an_option_of_the_other_object(host: Host) -> None:
    result = billing(host, "trigger", "checkout.session.completed", "--status", "active")

    assert result.exit_code == 2
    assert "status is a subscription's; for checkout.session.completed give payment_status" in (
        result.output
    )


# check


def test_check_shows_the_key_masked_and_what_is_missing(make_host: Callable[..., Host]) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_PRICE_PRO_MONTHLY": "price_monthly"})

    result = billing(host, "check")

    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "set STRIPE_WEBHOOK_SECRET 1 signing secret" in lines
    assert "set STRIPE_API_KEY secret key, test mode, ending in Zq9X" in lines
    assert "set STRIPE_PRICE_PRO_MONTHLY price_monthly" in lines
    assert 'missing STRIPE_PRICE_PRO_YEARLY {"interval": "yearly"} answers 503' in lines
    assert "missing STRIPE_SUCCESS_URL Checkout answers 503" in lines
    assert "default PRO_PLAN_NAME pro" in lines
    assert "ok event log table stripe_billing_events exists" in lines
    assert (
        lines[-1]
        == "Ready: everything the webhook needs is in place (4 optional settings missing)."
    )
    assert API_KEY not in result.output
    assert API_KEY[8:-4] not in result.output
    assert SECRET not in result.output


def test_check_without_a_webhook_secret_exits_1(
    make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    host = make_host({"STRIPE_WEBHOOK_SECRET": ""})

    result = billing(host, "check")

    assert result.exit_code == 1
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "missing STRIPE_WEBHOOK_SECRET required: the webhook answers 503 without it" in lines
    assert "missing STRIPE_API_KEY Checkout, the portal and sync answer 503 without it" in lines
    assert lines[-1] == "1 problem to fix: STRIPE_WEBHOOK_SECRET."


def test_check_counts_several_secrets_and_flags_one_that_is_not_a_signing_secret(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"STRIPE_WEBHOOK_SECRET": f"{SECRET}, sk_test_pasted_by_mistake_1234"})

    result = billing(host, "check")

    assert result.exit_code == 1
    assert "2 signing secrets, 1 not starting with whsec_" in result.output
    assert "sk_test_pasted" not in result.output
    assert SECRET not in result.output


def test_check_without_the_event_table_exits_1(make_host: Callable[..., Host]) -> None:
    host = make_host(create_tables=False)

    result = billing(host, "check")

    assert result.exit_code == 1
    assert "table stripe_billing_events does not exist: create it with db.create_all()" in (
        result.output
    )
    assert result.output.splitlines()[-1] == "1 problem to fix: event log."


def test_check_names_the_library_tables_an_upgrade_has_not_created(
    make_host: Callable[..., Host],
) -> None:
    host = make_host()
    with host.app.app_context():
        for name in ("stripe_billing_entitlements", "stripe_billing_subscriptions"):
            host.db.metadata.tables[name].drop(host.db.engine)

    result = billing(host, "check")

    assert result.exit_code == 1
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert (
        "missing subscription records table stripe_billing_subscriptions does not exist (added "
        'in Unreleased (after 0.1.0), "Each Stripe subscription is its own record"): run flask '
        "db migrate, then flask db upgrade (the webhooks answer 503 until then)"
    ) in lines
    assert (
        "missing entitlements table stripe_billing_entitlements does not exist (added in "
        'Unreleased (after 0.1.0), "Stripe Entitlements"): run flask db migrate, then flask db '
        "upgrade (the webhooks answer 503 until then)"
    ) in lines
    assert lines[-1] == "2 problems to fix: subscription records, entitlements."
    with host.app.app_context():
        host.db.create_all()
    assert billing(host, "check").exit_code == 0


def test_check_refetch_mode_without_an_api_key_is_a_problem(
    make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    host = make_host({"STRIPE_REFETCH_SUBSCRIPTIONS": "true"})

    result = billing(host, "check")

    assert result.exit_code == 1
    assert "true, but STRIPE_API_KEY is missing" in result.output


@pytest.mark.parametrize(
    ("key", "text", "usable"),
    [
        ("sk_live_51AbCdEfGhIjKlMnOpQr7Tz1", "secret key, live mode, ending in 7Tz1", True),
        ("rk_test_51AbCdEfGhIjKlMnOpQrWx2y", "restricted key, test mode, ending in Wx2y", True),
        ("pk_test_51AbCdEfGhIjKlMnOpQrAb3c", "publishable key, test mode, ending in Ab3c", False),
        ("sk_test_short", "not a Stripe API key", False),
        ("my-secret-password-value-123", "not a Stripe API key", False),
    ],
)
def test_describe_key_never_shows_more_than_the_last_four(
    key: str, text: str, usable: bool
) -> None:
    description, can_call = describe_key(key)

    assert description.startswith(text)
    assert can_call is usable
    assert key not in description
    assert key[:-4] not in description


def test_check_flags_a_publishable_key(make_host: Callable[..., Host]) -> None:
    key = "pk_live_51AbCdEfGhIjKlMnOpQrAb3c"
    host = make_host({"STRIPE_API_KEY": key})

    result = billing(host, "check")

    assert result.exit_code == 1
    assert "invalid" in result.output
    assert "publishable keys cannot call the API" in result.output
    assert key not in result.output


# check --online


@pytest.fixture
def configured(make_host: Callable[..., Host]) -> Host:
    return make_host(
        {
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
            "STRIPE_PRICE_PRO_YEARLY": "price_yearly",
        }
    )


def test_check_online_accepts_a_valid_key_and_recurring_prices(
    configured: Host, stripe_mock: responses.RequestsMock
) -> None:
    stripe_mock.get(BALANCE_URL, json=BALANCE)
    stripe_mock.get(PRICE_URL + "price_monthly", json=price("price_monthly"))
    yearly = price("price_yearly", recurring=PRICE["recurring"] | {"interval": "year"})
    stripe_mock.get(PRICE_URL + "price_yearly", json=yearly | {"unit_amount": 20000})

    result = billing(configured, "check", "--online")

    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert lines[-5:] == [
        "Stripe",
        "ok API key accepted by Stripe",
        "ok price price_monthly recurring, 20.00 USD every month (STRIPE_PRICE_PRO_MONTHLY)",
        "ok price price_yearly recurring, 200.00 USD every year (STRIPE_PRICE_PRO_YEARLY)",
        "Ready: everything the webhook needs is in place (3 optional settings missing).",
    ]
    assert stripe_mock.calls[0].request.headers["Stripe-Version"] == stripe_api.API_VERSION
    assert API_KEY not in result.output


def test_check_online_names_a_one_time_price(
    configured: Host, stripe_mock: responses.RequestsMock
) -> None:
    stripe_mock.get(BALANCE_URL, json=BALANCE)
    stripe_mock.get(PRICE_URL + "price_monthly", json=price("price_monthly"))
    one_time = price("price_yearly", type="one_time", recurring=None)
    stripe_mock.get(PRICE_URL + "price_yearly", json=one_time)

    result = billing(configured, "check", "--online")

    assert result.exit_code == 1
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert (
        "invalid price price_yearly a one-time price (STRIPE_PRICE_PRO_YEARLY); "
        "a subscription needs a recurring price"
    ) in lines
    assert lines[-1] == "1 problem to fix: price price_yearly."


def test_check_online_wants_one_time_prices_for_products(
    make_host: Callable[..., Host], stripe_mock: responses.RequestsMock
) -> None:
    host = make_host(
        {
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
            "STRIPE_BILLING_PRODUCTS": "price_credits=credits_100,price_life=lifetime",
        }
    )
    stripe_mock.get(BALANCE_URL, json=BALANCE)
    stripe_mock.get(PRICE_URL + "price_monthly", json=price("price_monthly"))
    one_time = price("price_credits", type="one_time", recurring=None, unit_amount=500)
    stripe_mock.get(PRICE_URL + "price_credits", json=one_time)
    stripe_mock.get(PRICE_URL + "price_life", json=price("price_life"))  # recurring

    result = billing(host, "check", "--online")

    assert result.exit_code == 1
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "set STRIPE_BILLING_PRODUCTS price_credits → credits_100, price_life → lifetime" in (
        lines
    )
    assert "ok price price_credits one-time, 5.00 USD (product credits_100)" in lines
    assert (
        "invalid price price_life a recurring price (product lifetime); a one-time purchase "
        "needs a one-time price, and Checkout refuses this one"
    ) in lines
    assert lines[-1] == "1 problem to fix: price price_life."


def test_check_online_names_an_archived_or_missing_product_price(
    make_host: Callable[..., Host], stripe_mock: responses.RequestsMock
) -> None:
    host = make_host(
        {
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
            "STRIPE_BILLING_PRODUCTS": "price_old=credits_10,price_gone=credits_50",
        }
    )
    stripe_mock.get(BALANCE_URL, json=BALANCE)
    stripe_mock.get(PRICE_URL + "price_monthly", json=price("price_monthly"))
    archived = price("price_old", type="one_time", recurring=None, active=False)
    stripe_mock.get(PRICE_URL + "price_old", json=archived)
    stripe_mock.get(
        PRICE_URL + "price_gone",
        status=404,
        headers={"Request-Id": "req_gone"},
        json={"error": {"code": "resource_missing", "type": "invalid_request_error"}},
    )

    result = billing(host, "check", "--online")

    assert result.exit_code == 1
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "invalid price price_old archived (product credits_10); Checkout refuses it" in lines
    assert (
        "missing price price_gone no such price for this key (HTTP 404, request req_gone)" in lines
    )


def test_check_without_products_says_checkout_sells_none(
    configured: Host, stripe_mock: responses.RequestsMock
) -> None:
    result = billing(configured, "check")

    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "default STRIPE_BILLING_PRODUCTS none: Checkout sells no one-time product" in lines
    assert len(stripe_mock.calls) == 0


def test_check_online_names_a_price_stripe_does_not_have(
    configured: Host, stripe_mock: responses.RequestsMock
) -> None:
    stripe_mock.get(BALANCE_URL, json=BALANCE)
    stripe_mock.get(
        PRICE_URL + "price_monthly",
        status=404,
        headers={"Request-Id": "req_nope"},
        json={
            "error": {
                "code": "resource_missing",
                "message": "No such price: 'price_monthly'",
                "param": "price",
                "type": "invalid_request_error",
            }
        },
    )
    stripe_mock.get(PRICE_URL + "price_yearly", json=price("price_yearly"))

    result = billing(configured, "check", "--online")

    assert result.exit_code == 1
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert (
        "missing price price_monthly no such price for this key (HTTP 404, request req_nope)"
        in (lines)
    )
    assert lines[-1] == "1 problem to fix: price price_monthly."


def test_check_online_with_a_refused_key_exits_1_without_showing_it(
    configured: Host, stripe_mock: responses.RequestsMock
) -> None:
    stripe_mock.get(
        BALANCE_URL,
        status=401,
        headers={"Request-Id": "req_key"},
        json={
            "error": {
                "message": f"Invalid API Key provided: {API_KEY}",
                "type": "invalid_request_error",
            }
        },
    )

    result = billing(configured, "check", "--online")

    assert result.exit_code == 1
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "failed API key refused by Stripe (HTTP 401, request req_key)" in lines
    assert lines[-1] == "1 problem to fix: API key."
    assert len(stripe_mock.calls) == 1  # the prices are not asked with a refused key
    assert API_KEY not in result.output
    assert "Invalid API Key" not in result.output


def test_check_online_without_an_api_key_exits_1(
    make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)

    result = billing(make_host(), "check", "--online")

    assert result.exit_code == 1
    assert "STRIPE_API_KEY is not set: nothing to check" in result.output


# create-webhook-endpoint


def test_create_webhook_endpoint_sends_the_handled_types_and_prints_the_secret_once(
    make_host: Callable[..., Host], stripe_mock: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY})
    url = "https://example.com/stripe/webhook"
    signing_secret = "whsec_KNawkCGElQ8WpG4RxazUqZTWcfk24HNe"
    stripe_mock.post(
        ENDPOINTS_URL,
        json={
            "id": "we_1Mg82SKtjYJMPxxdblK6kkRJ",
            "object": "webhook_endpoint",
            "api_version": stripe_api.API_VERSION,
            "application": None,
            "created": 1677509452,
            "description": None,
            "enabled_events": list(HANDLED_EVENT_TYPES),
            "livemode": False,
            "metadata": {},
            "secret": signing_secret,
            "status": "enabled",
            "url": url,
        },
    )

    result = billing(host, "create-webhook-endpoint", "--url", url)

    assert result.exit_code == 0, result.output
    (call,) = stripe_mock.calls
    sent = parse_qsl(call.request.body)
    assert sent == [
        ("url", url),
        ("enabled_events[0]", "checkout.session.completed"),
        ("enabled_events[1]", "checkout.session.async_payment_succeeded"),
        ("enabled_events[2]", "customer.subscription.created"),
        ("enabled_events[3]", "customer.subscription.updated"),
        ("enabled_events[4]", "customer.subscription.deleted"),
        ("enabled_events[5]", "customer.subscription.pending_update_applied"),
        ("enabled_events[6]", "customer.subscription.pending_update_expired"),
        ("enabled_events[7]", "invoice.payment_failed"),
        ("enabled_events[8]", "invoice.paid"),
        ("enabled_events[9]", "invoice.payment_action_required"),
        ("enabled_events[10]", "customer.subscription.trial_will_end"),
        ("enabled_events[11]", "entitlements.active_entitlement_summary.updated"),
        ("enabled_events[12]", "checkout.session.async_payment_failed"),
        ("enabled_events[13]", "charge.refunded"),
        ("enabled_events[14]", "refund.created"),
        ("enabled_events[15]", "refund.updated"),
        ("enabled_events[16]", "refund.failed"),
        ("enabled_events[17]", "charge.dispute.created"),
        ("enabled_events[18]", "charge.dispute.updated"),
        ("enabled_events[19]", "charge.dispute.closed"),
        ("api_version", stripe_api.API_VERSION),
    ]
    assert result.output.count(signing_secret) == 1
    lines = result.output.splitlines()
    assert lines[0] == f"Created webhook endpoint we_1Mg82SKtjYJMPxxdblK6kkRJ (test mode) for {url}"
    assert lines[lines.index(f"  {signing_secret}") - 1].startswith(
        "Signing secret (shown this once"
    )
    assert "STRIPE_WEBHOOK_SECRET" in lines[-1]
    assert API_KEY not in result.output


def test_create_webhook_endpoint_without_an_api_key_exits_1(
    host: Host, monkeypatch: pytest.MonkeyPatch, stripe_mock: responses.RequestsMock
) -> None:
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)

    result = billing(host, "create-webhook-endpoint", "--url", "https://example.com/stripe/webhook")

    assert result.exit_code == 1
    assert "STRIPE_API_KEY is not set" in result.output
    assert len(stripe_mock.calls) == 0


def test_create_webhook_endpoint_reports_stripes_refusal_without_the_key(
    make_host: Callable[..., Host], stripe_mock: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY})
    stripe_mock.post(
        ENDPOINTS_URL,
        status=400,
        headers={"Request-Id": "req_url"},
        json={"error": {"message": "Invalid URL", "param": "url", "type": "invalid_request_error"}},
    )

    result = billing(host, "create-webhook-endpoint", "--url", "https://localhost/stripe/webhook")

    assert result.exit_code == 1
    assert result.output == (
        "Error: Stripe could not create a webhook endpoint (request req_url, HTTP 400)\n"
    )


def test_create_webhook_endpoint_needs_a_full_url(host: Host) -> None:
    result = billing(host, "create-webhook-endpoint", "--url", "example.com/stripe/webhook")

    assert result.exit_code == 2
    assert "give the full URL, https://..." in result.output


def test_trigger_an_entitlement_summary_sets_the_accounts_features(host: Host) -> None:
    result = billing(
        host,
        "trigger",
        "entitlements.active_entitlement_summary.updated",
        "--user",
        "1",
        "--feature",
        "export",
        "--feature",
        "api",
    )
    misplaced = billing(host, "trigger", "customer.subscription.updated", "--feature", "export")

    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("entitlements.active_entitlement_summary.updated evt_test_")
    assert first.endswith("(customer cus_test, features api, export)")
    assert result.output.splitlines()[-1].endswith("subscription none, features api, export")
    account = get_account(host.app, 1)
    assert account is not None and account.features == {"export", "api"}
    assert misplaced.exit_code == 2
    assert "features are an entitlement summary's" in misplaced.output
