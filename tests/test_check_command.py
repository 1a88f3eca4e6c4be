"""``flask billing check`` warns about what would break at runtime: old versions, a key
of the other mode than the webhook's events or endpoints. Through the CLI, as a user runs it."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from conftest import Host
from support import post_event, subscription_event
from test_gates import header_user_id
from thin_support import event_destination

from flask_stripe_billing.cli.check import settings as version_checks
from flask_stripe_billing.core.rules import HANDLED_EVENT_TYPES
from flask_stripe_billing.pipeline.fetch import THIN_EVENT_TYPES

TEST_KEY = "sk_test_51CheckCommandKey0000000000"
LIVE_KEY = "sk_live_51CheckCommandKey0000000000"
API = "https://api.stripe.com/v1"
BALANCE = {"object": "balance", "available": [], "pending": [], "livemode": False}
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def check(host: Host, *args: str) -> Any:
    return host.app.test_cli_runner().invoke(args=["billing", "check", *args])


def lines(result: Any) -> list[str]:
    return [" ".join(line.split()) for line in result.output.splitlines()]


@pytest.fixture
def stripe_api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{API}/balance", json=BALANCE)
        yield mock


def endpoint(url: str, status: str = "enabled", events: list[str] | None = None) -> dict[str, Any]:
    """A webhook endpoint as Stripe lists it."""
    return {
        "id": "we_1",
        "object": "webhook_endpoint",
        "url": url,
        "status": status,
        "enabled_events": list(HANDLED_EVENT_TYPES) if events is None else events,
        "livemode": False,
    }


def endpoints(mock: responses.RequestsMock, *items: dict[str, Any]) -> None:
    body = {
        "object": "list",
        "data": list(items),
        "has_more": False,
        "url": "/v1/webhook_endpoints",
    }
    mock.get(f"{API}/webhook_endpoints", json=body)


# Versions


def test_a_flask_older_than_supported_is_a_problem(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = version_checks.installed_version
    monkeypatch.setattr(
        version_checks,
        "installed_version",
        lambda name: "2.3.3" if name == "flask" else real(name),
    )

    result = check(host)

    assert result.exit_code == 1, result.output
    assert (
        "invalid flask 2.3.3 is older than 3.0, the oldest flask-stripe-billing supports: "
        "upgrade it (pip install 'flask>=3.0')" in lines(result)
    )
    assert lines(result)[-1] == "1 problem to fix: flask."


def test_supported_versions_add_no_line(host: Host) -> None:
    result = check(host)

    assert result.exit_code == 0, result.output
    assert not [line for line in lines(result) if "older than" in line]


def test_the_checked_minimums_are_the_floors_pyproject_declares() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    floors = {}
    for requirement in declared:
        name, _, rest = requirement.partition(">=")
        release = tuple(int(part) for part in rest.split(",")[0].split("."))
        floors[name.strip()] = release + (0,) * (2 - len(release))  # "16" is 16.0

    for name, minimum in version_checks.MIN_VERSIONS.items():
        assert floors[name] == minimum, name


# The key's mode against the events received


def test_a_test_key_with_live_events_in_the_log_is_warned_about(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"STRIPE_API_KEY": TEST_KEY})
    host.add_user(1, stripe_customer_id="cus_test")
    event = subscription_event(event_id="evt_live_1")
    event["livemode"] = True
    assert post_event(host.client, event).status_code == 200

    result = check(host)

    assert result.exit_code == 0, result.output
    assert (
        "warning event log the last event received (evt_live_1) is live-mode but "
        "STRIPE_API_KEY is a test-mode key: Checkout and the portal act in test mode while "
        "the webhook receives live-mode events; use keys and secrets of one mode"
    ) in lines(result)
    assert lines(result)[-1].startswith(
        "Ready: everything the webhook needs is in place (1 warning"
    )


def test_a_key_of_the_events_mode_gives_no_warning(make_host: Callable[..., Host]) -> None:
    host = make_host({"STRIPE_API_KEY": LIVE_KEY})
    host.add_user(1, stripe_customer_id="cus_test")
    event = subscription_event(event_id="evt_live_2")
    event["livemode"] = True
    post_event(host.client, event)

    result = check(host)

    assert "ok event log table stripe_billing_events exists" in lines(result)
    assert not [line for line in lines(result) if line.startswith("warning")]


def test_a_missing_event_table_is_still_a_problem(make_host: Callable[..., Host]) -> None:
    host = make_host({"STRIPE_API_KEY": TEST_KEY}, create_tables=False)

    result = check(host)

    assert result.exit_code == 1
    assert any("table stripe_billing_events does not exist" in line for line in lines(result))


# Online: the key's mode's webhook endpoints


@pytest.fixture
def keyed(make_host: Callable[..., Host]) -> Host:
    return make_host({"STRIPE_API_KEY": TEST_KEY})


def test_online_no_endpoint_in_the_keys_mode_is_warned_about(
    keyed: Host, stripe_api: responses.RequestsMock
) -> None:
    endpoints(stripe_api)

    result = check(keyed, "--online")

    assert result.exit_code == 0, result.output
    assert (
        "warning webhook endpoints this account has no test-mode endpoint: unless "
        "STRIPE_WEBHOOK_SECRET comes from `stripe listen`, it belongs to an endpoint of the "
        "other mode, and its events will not match this key's customers"
    ) in lines(result)


def test_online_endpoints_elsewhere_are_warned_about(
    keyed: Host, stripe_api: responses.RequestsMock
) -> None:
    endpoints(stripe_api, endpoint("https://other.example.com/hooks"))

    result = check(keyed, "--online")

    assert any(
        line.startswith("warning webhook endpoints no test-mode endpoint ends in /stripe/webhook")
        for line in lines(result)
    ), result.output


def test_online_a_disabled_endpoint_or_missing_events_are_warned_about(
    keyed: Host, stripe_api: responses.RequestsMock
) -> None:
    endpoints(
        stripe_api,
        endpoint("https://a.example.com/stripe/webhook", status="disabled"),
        endpoint("https://b.example.com/api/stripe/webhook", events=["charge.captured"]),
    )

    result = check(keyed, "--online")

    assert "warning webhook endpoints https://a.example.com/stripe/webhook is disabled" in lines(
        result
    )
    assert (
        "warning webhook endpoints https://b.example.com/api/stripe/webhook does not send "
        + ", ".join(HANDLED_EVENT_TYPES)
    ) in lines(result)
    assert "2 warnings" in lines(result)[-1]


def test_online_a_good_endpoint_is_ok(keyed: Host, stripe_api: responses.RequestsMock) -> None:
    endpoints(stripe_api, endpoint("https://app.example.com/stripe/webhook/", events=["*"]))

    result = check(keyed, "--online")

    assert result.exit_code == 0, result.output
    assert (
        "ok webhook endpoints https://app.example.com/stripe/webhook/ "
        "(test-mode enabled, every handled event)"
    ) in lines(result)
    listed = [c for c in stripe_api.calls if "webhook_endpoints" in c.request.url]
    assert len(listed) == 1


def test_online_endpoints_that_cannot_be_listed_add_nothing(
    keyed: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(
        f"{API}/webhook_endpoints",
        status=403,
        json={"error": {"type": "invalid_request_error", "message": "restricted key"}},
    )

    result = check(keyed, "--online")

    assert result.exit_code == 0, result.output
    assert not [line for line in lines(result) if "webhook endpoints" in line]


def test_online_an_endpoint_without_only_the_entitlement_summary_is_ok_with_a_note(
    keyed: Host, stripe_api: responses.RequestsMock
) -> None:
    before_entitlements = [t for t in HANDLED_EVENT_TYPES if not t.startswith("entitlements.")]
    endpoints(
        stripe_api, endpoint("https://app.example.com/stripe/webhook", events=before_entitlements)
    )

    result = check(keyed, "--online")

    assert result.exit_code == 0, result.output
    assert (
        "ok webhook endpoints https://app.example.com/stripe/webhook (test-mode enabled, every "
        "handled event but entitlements.active_entitlement_summary.updated: add it if you use "
        "Stripe Entitlements)"
    ) in lines(result)


THIN_DESTINATIONS = "https://api.stripe.com/v2/core/event_destinations"


@pytest.fixture
def thin_keyed(make_host: Callable[..., Host]) -> Host:
    return make_host({"STRIPE_API_KEY": TEST_KEY, "STRIPE_THIN_WEBHOOK_SECRET": "whsec_thin_x"})


def test_online_with_thin_events_the_event_destinations_are_checked(
    thin_keyed: Host, stripe_api: responses.RequestsMock
) -> None:
    endpoints(stripe_api, endpoint("https://app.example.com/stripe/webhook"))
    listed = stripe_api.get(
        THIN_DESTINATIONS,
        json={
            "data": [
                event_destination(
                    "https://app.example.com/stripe/thin-webhook", list(THIN_EVENT_TYPES)
                ),
                event_destination(
                    "https://old.example.com/stripe/thin-webhook", THIN_EVENT_TYPES[:2]
                ),
                event_destination("https://app.example.com/other", list(THIN_EVENT_TYPES)),
                event_destination(
                    "https://app.example.com/stripe/thin-webhook", ["*"], payload="snapshot"
                ),
            ],
            "next_page_url": None,
            "previous_page_url": None,
        },
    )

    result = check(thin_keyed, "--online")

    assert result.exit_code == 0, result.output
    [call] = listed.calls
    assert "webhook_endpoint.url" in call.request.url  # URLs are redacted unless asked for
    assert (
        "ok event destinations https://app.example.com/stripe/thin-webhook "
        "(test-mode enabled, every handled event)"
    ) in lines(result)
    assert (
        "warning event destinations https://old.example.com/stripe/thin-webhook does not send "
        + ", ".join(THIN_EVENT_TYPES[2:])
    ) in lines(result)
    assert not [line for line in lines(result) if "app.example.com/other" in line]


def test_online_with_thin_events_and_no_destination_is_warned_about(
    thin_keyed: Host, stripe_api: responses.RequestsMock, keyed: Host
) -> None:
    endpoints(stripe_api, endpoint("https://app.example.com/stripe/webhook"))
    stripe_api.get(THIN_DESTINATIONS, json={"data": [], "next_page_url": None})

    with_thin = check(thin_keyed, "--online")
    without_thin = check(keyed, "--online")

    assert (
        "warning event destinations no test-mode event destination sends thin events to a URL "
        "ending in /stripe/thin-webhook: STRIPE_THIN_WEBHOOK_SECRET may be of another "
        "destination or mode (flask billing create-webhook-endpoint --thin makes one)"
    ) in lines(with_thin)
    assert not [line for line in lines(without_thin) if "event destinations" in line]


# What the view gates read


def test_check_shows_the_gate_settings(make_host: Callable[..., Host]) -> None:
    host = make_host(
        {
            "STRIPE_BILLING_FEATURES": '{"pro": ["export", "api"], "free": []}',
            "STRIPE_BILLING_PRICING_URL": "pricing",
        }
    )

    result = check(host)

    assert "set STRIPE_BILLING_FEATURES pro: export, api; free: -" in lines(result)
    assert "set STRIPE_BILLING_PRICING_URL pricing" in lines(result)
    assert (
        "default STRIPE_BILLING_LOGIN_URL none: gates use Flask-Login's login_view, else the "
        "pricing URL" in lines(result)
    )


def test_check_says_what_the_gates_do_without_their_settings(host: Host) -> None:
    result = check(host)

    assert (
        "default STRIPE_BILLING_FEATURES none: feature gates follow Stripe Entitlements alone"
        in lines(result)
    )
    assert (
        "default STRIPE_BILLING_PRICING_URL none: gates answer browsers with a plain HTML "
        "402/403 page" in lines(result)
    )


def test_what_check_says_of_the_pricing_url_is_what_a_gate_does_without_it(
    make_host: Callable[..., Host],
) -> None:
    """Without STRIPE_BILLING_PRICING_URL a browser without the feature gets an HTML 403,
    not JSON (check used to say JSON)."""
    host = make_host(current_user_id=header_user_id)
    host.add_user(1)

    @host.app.route("/export")
    @host.billing.feature_required("export")
    def export() -> str:
        return "exported"

    response = host.client.get("/export", headers={"Accept": "text/html", "X-User": "1"})

    assert response.status_code == 403
    assert response.mimetype == "text/html"


def test_check_shows_what_each_product_grants(make_host: Callable[..., Host], host: Host) -> None:
    granting = make_host(
        {
            "STRIPE_BILLING_PRODUCTS": "price_life=lifetime",
            "STRIPE_BILLING_PRODUCT_FEATURES": '{"lifetime": ["export", "api"]}',
        }
    )

    assert "set STRIPE_BILLING_PRODUCT_FEATURES lifetime: export, api" in lines(check(granting))
    assert "default STRIPE_BILLING_PRODUCT_FEATURES none: a purchase grants no feature" in lines(
        check(host)
    )


def test_check_shows_the_subscription_management_settings(
    make_host: Callable[..., Host], host: Host
) -> None:
    changed = make_host(
        {"STRIPE_PRORATION_BEHAVIOR": "always_invoice", "STRIPE_BILLING_MANAGEMENT_ROUTES": "1"}
    )

    assert "default STRIPE_PRORATION_BEHAVIOR create_prorations" in lines(check(host))
    assert "default STRIPE_BILLING_MANAGEMENT_ROUTES false" in lines(check(host))
    assert "set STRIPE_PRORATION_BEHAVIOR always_invoice" in lines(check(changed))
    assert "set STRIPE_BILLING_MANAGEMENT_ROUTES true" in lines(check(changed))
