"""Plans and prices as data (``billing.plans``, ``billing.prices``), and prices configured
by Stripe lookup key: resolved once per app from Stripe's API (mocked with responses),
used by Checkout and the webhook, checked by ``flask billing check --online``."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from conftest import Host
from flask import Flask, request
from responses import matchers
from support import SECRET, load, post_event, subscription_event
from test_checkout import API, CONFIG, SESSION, form

from flask_stripe_billing import ConflictError, InMemoryUserStore, StripeBilling

PRICE = load("stripe-openapi/price.json")
LOOKUP_CONFIG = {
    **CONFIG,
    "STRIPE_API_MAX_RETRIES": "0",
    "STRIPE_PRICE_PRO_MONTHLY": "lookup_key:pro_monthly",
    "STRIPE_PRICE_PRO_YEARLY": "price_yearly",
    "STRIPE_BILLING_PLANS": {"lookup_key:pro_monthly": "pro", "lookup_key:team_monthly": "team"},
    "STRIPE_TRIAL_DAYS": {"lookup_key:team_monthly": 14},
}
#: What Stripe's live and test mode have for the same lookup keys: other ids.
TEST_MODE_IDS = {"pro_monthly": "price_test_pro", "team_monthly": "price_test_team"}
LIVE_MODE_IDS = {"pro_monthly": "price_live_pro", "team_monthly": "price_live_team"}


def price(lookup_key: str, price_id: str) -> dict[str, Any]:
    """A price as Stripe lists it (Stripe's own fixture), with this id and lookup key."""
    return {**copy.deepcopy(PRICE), "id": price_id, "lookup_key": lookup_key}


def list_prices(mock: responses.RequestsMock, ids: dict[str, str], **kwargs: Any) -> None:
    """``GET /v1/prices`` answers the prices with these lookup keys."""
    body = {
        "object": "list",
        "data": [price(key, price_id) for key, price_id in ids.items()],
        "has_more": False,
        "url": "/v1/prices",
    }
    mock.add(responses.GET, f"{API}/prices", json=body, **kwargs)


def price_lists(mock: responses.RequestsMock) -> list[list[tuple[str, str]]]:
    """The query of each ``GET /v1/prices`` sent."""
    return [
        parse_qsl(urlsplit(call.request.url).query)
        for call in mock.calls
        if urlsplit(call.request.url).path == "/v1/prices"
    ]


@pytest.fixture
def shop(make_host: Callable[..., Host]) -> Callable[..., Host]:
    def make(**config: Any) -> Host:
        host = make_host(
            {**LOOKUP_CONFIG, **config}, current_user_id=lambda: request.headers.get("X-User")
        )
        host.add_user(1, email="ada@example.com", stripe_customer_id="cus_test")
        return host

    return make


# Plans and prices as data


def test_prices_and_plans_describe_the_configuration(make_host: Callable[..., Host]) -> None:
    host = make_host(
        {
            **CONFIG,
            "STRIPE_BILLING_PLANS": {"price_yearly": "pro", "price_team": "team"},
            "STRIPE_BILLING_FEATURES": {"free": ["basics"], "team": ["export", "seats"]},
            "STRIPE_TRIAL_DAYS": 7,
        }
    )

    with host.app.app_context():
        prices, plans = host.billing.prices, host.billing.plans

    assert [p.id for p in prices] == ["price_monthly", "price_yearly", "price_team"]
    assert len(prices) == 3 and "price_team" in prices and "price_other" not in prices
    assert prices.monthly is not None and prices.yearly is not None
    assert (prices.monthly.id, prices.monthly.interval, prices.monthly.plan) == (
        "price_monthly",
        "monthly",
        "pro",
    )
    assert prices.yearly.id == "price_yearly"
    team = prices.get("price_team")
    assert team is not None
    assert (team.plan, team.interval, team.trial_days, team.lookup_key) == ("team", None, 7, None)
    assert prices.get("price_other") is None
    assert [(plan.name, plan.is_free) for plan in plans] == [
        ("free", True),
        ("pro", False),
        ("team", False),
    ]
    assert plans[0].prices == () and plans[0].features == ("basics",)
    assert [p.id for p in plans[1].prices] == ["price_monthly", "price_yearly"]
    assert plans[2].features == ("export", "seats")


def test_without_prices_there_is_only_the_free_plan(make_host: Callable[..., Host]) -> None:
    host = make_host()

    with host.app.app_context():
        assert list(host.billing.prices) == []
        assert host.billing.prices.monthly is None
        assert [plan.name for plan in host.billing.plans] == ["free"]


# Lookup keys


def test_lookup_keys_are_resolved_once_and_checkout_sends_the_price_id(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    list_prices(stripe_api, TEST_MODE_IDS)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)
    client = host.client

    first = client.post(
        "/billing/checkout-session", json={"interval": "monthly"}, headers={"X-User": "1"}
    )
    second = client.post(
        "/billing/checkout-session",
        json={"price_id": "price_test_team"},
        headers={"X-User": "1"},
    )

    assert (first.status_code, second.status_code) == (200, 200)
    (query,) = price_lists(stripe_api)
    assert sorted(value for name, value in query if name.startswith("lookup_keys")) == [
        "pro_monthly",
        "team_monthly",
    ]
    assert ("active", "true") in query
    sessions = [c for c in stripe_api.calls if c.request.url.endswith("/checkout/sessions")]
    assert form(sessions[0])["line_items[0][price]"] == "price_test_pro"
    assert form(sessions[1])["line_items[0][price]"] == "price_test_team"
    assert form(sessions[1])["subscription_data[trial_period_days]"] == "14"


def test_a_lookup_key_is_not_a_price_a_client_may_name(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    list_prices(stripe_api, TEST_MODE_IDS)

    answer = host.client.post(
        "/billing/checkout-session",
        json={"price_id": "lookup_key:pro_monthly"},
        headers={"X-User": "1"},
    )

    assert (answer.status_code, answer.get_json()["error"]) == (400, "validation_error")


def test_the_webhook_maps_the_resolved_ids_to_their_plans(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    list_prices(stripe_api, TEST_MODE_IDS)

    response = post_event(host.client, subscription_event(price="price_test_team"))

    assert response.status_code == 200
    assert host.user(1).plan == "team"


def test_prices_outside_a_request_resolve_too(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    list_prices(stripe_api, TEST_MODE_IDS)

    with host.app.app_context():
        prices = host.billing.prices
        again = host.billing.plans

    assert prices.monthly is not None
    assert (prices.monthly.id, prices.monthly.lookup_key) == ("price_test_pro", "pro_monthly")
    assert [p.id for p in prices] == ["price_test_pro", "price_yearly", "price_test_team"]
    assert [plan.name for plan in again] == ["free", "pro", "team"]
    assert len(price_lists(stripe_api)) == 1


def test_an_unknown_lookup_key_is_a_clear_503_and_the_hosts_pages_go_on(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock, caplog: Any
) -> None:
    host = shop()
    host.app.add_url_rule("/", "home", lambda: "home")
    list_prices(stripe_api, {"pro_monthly": "price_test_pro"})  # no team_monthly
    client = host.client

    with caplog.at_level(logging.ERROR, logger="flask_stripe_billing"):
        webhook = post_event(client, subscription_event(price="price_test_team"))
        home = client.get("/")

    assert webhook.status_code == 503
    body = webhook.get_json()
    assert body["error"] == "external_service_error"
    assert body["details"]["missing"] == [
        "STRIPE_BILLING_PLANS: no active price has the lookup key 'team_monthly' "
        "(in this API key's mode: see the Dashboard's product catalogue)"
    ]
    assert host.events() == []  # not recorded: Stripe delivers it again
    assert (home.status_code, home.get_data(as_text=True)) == (200, "home")
    assert "team_monthly" in caplog.text
    with host.app.app_context(), pytest.raises(Exception, match="not configured"):
        host.billing.prices  # noqa: B018


def test_a_stripe_failure_is_not_kept_the_next_request_asks_again(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    stripe_api.add(responses.GET, f"{API}/prices", status=500, json={"error": {}})
    client = host.client

    failed = post_event(client, subscription_event(price="price_test_team"))
    stripe_api.replace(
        responses.GET,
        f"{API}/prices",
        json={
            "object": "list",
            "data": [price(k, v) for k, v in TEST_MODE_IDS.items()],
            "has_more": False,
            "url": "/v1/prices",
        },
    )
    retried = post_event(client, subscription_event(price="price_test_team"))

    assert failed.status_code == 502
    assert retried.status_code == 200
    assert host.user(1).plan == "team"
    assert len(price_lists(stripe_api)) == 2


def test_the_same_config_resolves_per_app_in_its_keys_mode(
    stripe_api: responses.RequestsMock,
) -> None:
    """One extension on two apps with one configuration: the test-mode and the live-mode
    key each get their own mode's ids."""
    billing = StripeBilling(user_store=InMemoryUserStore([]))
    apps = {}
    for mode, ids in (("test", TEST_MODE_IDS), ("live", LIVE_MODE_IDS)):
        key = f"sk_{mode}_51LookupKeys000000000000"
        app = Flask(mode)
        app.config.update({**LOOKUP_CONFIG, "STRIPE_API_KEY": key, "STRIPE_WEBHOOK_SECRET": SECRET})
        billing.init_app(app)
        apps[mode] = app
        auth = matchers.header_matcher({"Authorization": f"Bearer {key}"})
        list_prices(stripe_api, ids, match=[auth])

    for mode, ids in (("test", TEST_MODE_IDS), ("live", LIVE_MODE_IDS)):
        with apps[mode].app_context():
            monthly = billing.prices.monthly
            assert monthly is not None and monthly.id == ids["pro_monthly"]
    assert len(price_lists(stripe_api)) == 2


def test_the_check_command_online_resolves_the_lookup_keys(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    stripe_api.add(responses.GET, f"{API}/balance", json={"object": "balance"})
    list_prices(stripe_api, {"pro_monthly": "price_test_pro"})
    for price_id in ("price_test_pro", "price_yearly"):
        stripe_api.add(responses.GET, f"{API}/prices/{price_id}", json=price("x", price_id))

    result = host.app.test_cli_runner().invoke(args=["billing", "check", "--online"])

    shown = [" ".join(line.split()) for line in result.output.splitlines()]
    assert result.exit_code != 0
    assert (
        "missing price lookup keys STRIPE_BILLING_PLANS: no active price has the lookup key "
        "'team_monthly' (in this API key's mode: see the Dashboard's product catalogue)"
    ) in shown
    assert any(line.startswith("ok price price_yearly") for line in shown)


def test_the_check_command_online_shows_the_resolved_ids(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    stripe_api.add(responses.GET, f"{API}/balance", json={"object": "balance"})
    list_prices(stripe_api, TEST_MODE_IDS)
    for price_id in ("price_test_pro", "price_yearly", "price_test_team"):
        stripe_api.add(responses.GET, f"{API}/prices/{price_id}", json=price("x", price_id))

    result = host.app.test_cli_runner().invoke(args=["billing", "check", "--online"])

    shown = [" ".join(line.split()) for line in result.output.splitlines()]
    assert (
        "ok price lookup keys pro_monthly → price_test_pro, team_monthly → price_test_team"
    ) in shown
    assert any(line.startswith("ok price price_test_team") for line in shown)


def test_cli_commands_that_decide_resolve_the_lookup_keys_first(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    list_prices(stripe_api, {"pro_monthly": "price_test_pro"})  # team_monthly resolves to nothing
    runner = host.app.test_cli_runner()

    listed = runner.invoke(args=["billing", "events"])
    assert listed.exit_code == 0, listed.output
    assert price_lists(stripe_api) == []  # listing decides nothing: no call
    refused = runner.invoke(args=["billing", "cancel", "1"])

    assert refused.exit_code == 1
    assert "Price lookup keys not resolved: Stripe billing is not configured" in refused.output
    assert "'team_monthly'" in refused.output
    assert len(price_lists(stripe_api)) == 1
    assert not [c for c in stripe_api.calls if "/subscriptions" in c.request.url]


def test_the_python_api_resolves_the_lookup_keys_before_a_change(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop()
    list_prices(stripe_api, TEST_MODE_IDS)

    with host.app.app_context(), pytest.raises(ConflictError, match="No subscription"):
        host.billing.change_plan(1, "price_test_team")  # the resolved id is a configured price

    assert len(price_lists(stripe_api)) == 1
