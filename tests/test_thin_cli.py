"""``flask billing trigger --thin`` and ``create-webhook-endpoint --thin``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import responses
from conftest import Host
from thin_support import (
    API,
    API_KEY,
    event_destination,
    serve,
    subscription_object,
    thin_config,
)

from flask_stripe_billing.pipeline.fetch import THIN_EVENT_TYPES
from flask_stripe_billing.testing import build_event, get_account

DESTINATIONS_URL = f"{API}/v2/core/event_destinations"


def billing(host: Host, *args: str) -> Any:
    return host.app.test_cli_runner().invoke(args=["billing", *args])


def test_trigger_thin_signs_a_notification_and_the_app_fetches_its_subscription(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host(thin_config())
    host.add_user(1, stripe_customer_id="cus_test")
    fetch = serve(stripe_api, subscription_object(subscription="sub_cli"))

    result = billing(
        host, "trigger", "--thin", "customer.subscription.updated", "--subscription", "sub_cli"
    )

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("v1.customer.subscription.updated evt_test_")
    assert lines[0].endswith("(subscription sub_cli)")
    assert lines[1:] == [
        '  → /stripe/thin-webhook (in-process): HTTP 200 {"received":true}',
        "  event log: processed",
    ]
    assert fetch.calls[0].request.url == f"{API}/v1/subscriptions/sub_cli"
    assert host.user(1).plan == "pro"
    [row] = host.events()
    assert row["type"] == "v1.customer.subscription.updated"
    notification = json.loads(row["payload"])
    assert notification["object"] == "v2.core.event"
    assert notification["related_object"] == {
        "id": "sub_cli",
        "type": "subscription",
        "url": "/v1/subscriptions/sub_cli",
    }


def test_trigger_thin_defaults_to_the_users_subscription_and_reports_a_failed_fetch(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host(thin_config(STRIPE_API_MAX_RETRIES="0"))
    host.add_user(1, stripe_customer_id="cus_test", stripe_subscription_id="sub_mine")
    serve(stripe_api, subscription_object(subscription="sub_mine"), status=404)

    result = billing(host, "trigger", "--thin", "v1.customer.subscription.updated", "--user", "1")

    assert result.exit_code == 0, result.output
    assert "(subscription sub_mine)" in result.output
    assert "  event log: received (could not fetch subscription sub_mine: " in result.output


def test_trigger_thin_needs_the_thin_signing_secret(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY})

    result = billing(host, "trigger", "--thin", "customer.subscription.updated")

    assert result.exit_code == 1
    assert "STRIPE_THIN_WEBHOOK_SECRET is not set" in result.output
    assert host.events() == []


def test_trigger_thin_refuses_a_type_it_does_not_handle_and_an_invoice_without_its_id(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host(thin_config())

    unknown = billing(host, "trigger", "--thin", "customer.created")
    no_invoice = billing(host, "trigger", "--thin", "invoice.payment_failed")

    assert unknown.exit_code == 2
    assert "'customer.created' is not a thin type this package handles" in unknown.output
    assert no_invoice.exit_code == 2
    assert "--object (the invoice id) is required" in no_invoice.output
    assert host.events() == []
    assert len(stripe_api.calls) == 0


def test_create_webhook_endpoint_thin_creates_an_event_destination_for_thin_events(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY})
    url = "https://example.com/stripe/thin-webhook"
    signing_secret = "whsec_thin_KNawkCGElQ8WpG4RxazUqZTW"
    stripe_api.post(
        DESTINATIONS_URL,
        json=event_destination(url, list(THIN_EVENT_TYPES), signing_secret=signing_secret),
    )

    result = billing(host, "create-webhook-endpoint", "--thin", "--url", url)

    assert result.exit_code == 0, result.output
    [call] = stripe_api.calls
    assert call.request.method == "POST"
    assert call.request.headers["Content-Type"].startswith("application/json")
    assert json.loads(call.request.body) == {
        "name": "flask-stripe-billing thin events",
        "type": "webhook_endpoint",
        "event_payload": "thin",
        "enabled_events": [
            "v1.customer.subscription.created",
            "v1.customer.subscription.updated",
            "v1.customer.subscription.deleted",
            "v1.customer.subscription.trial_will_end",
            "v1.checkout.session.completed",
            "v1.checkout.session.async_payment_succeeded",
            "v1.invoice.payment_failed",
            "v1.invoice.paid",
            "v1.invoice.payment_action_required",
            "v1.entitlements.active_entitlement_summary.updated",
            "v1.billing.meter.error_report_triggered",
        ],
        "webhook_endpoint": {"url": url},
        "include": ["webhook_endpoint.signing_secret"],
    }
    assert result.output.splitlines()[0] == (
        "Created event destination ed_test_61RM8ltWcTW4mbsxf16RJyfa2xSQLHJJh1sxm7H0KVT6 "
        f"(test mode) for {url}"
    )
    assert f"  {signing_secret}" in result.output.splitlines()
    assert "STRIPE_THIN_WEBHOOK_SECRET" in result.output


def test_create_webhook_endpoint_thin_reports_stripes_refusal_as_one_line(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY})
    stripe_api.post(
        DESTINATIONS_URL,
        status=400,
        json={"error": {"type": "invalid_request_error", "message": "Unknown event type"}},
    )

    result = billing(host, "create-webhook-endpoint", "--thin", "--url", "https://example.com/thin")

    assert result.exit_code == 1
    assert "Stripe could not create an event destination" in result.output
    assert API_KEY not in result.output


def check_lines(host: Host) -> tuple[int, list[str]]:
    result = billing(host, "check")
    return result.exit_code, [" ".join(line.split()) for line in result.output.splitlines()]


def test_check_reports_the_thin_secret_and_takes_thin_events_alone_as_enough(
    make_host: Callable[..., Host],
) -> None:
    thin_only = make_host({**thin_config(), "STRIPE_WEBHOOK_SECRET": ""})
    no_key = make_host({"STRIPE_THIN_WEBHOOK_SECRET": "whsec_thin"})
    snapshot_only = make_host()

    code, shown = check_lines(thin_only)
    assert code == 0, shown
    assert "missing STRIPE_WEBHOOK_SECRET the webhook answers 503; thin events only" in shown
    assert "set STRIPE_THIN_WEBHOOK_SECRET 1 signing secret" in shown
    code, shown = check_lines(no_key)
    assert code == 1
    assert "invalid STRIPE_THIN_WEBHOOK_SECRET set, but STRIPE_API_KEY is needed to fetch" in shown
    code, shown = check_lines(snapshot_only)
    assert code == 0, shown
    assert (
        "default STRIPE_THIN_WEBHOOK_SECRET none: thin events off (/stripe/thin-webhook: 503)"
        in shown
    )
    assert "whsec_thin" not in " ".join(check_lines(no_key)[1])


def test_trigger_thin_of_an_entitlement_summary_names_its_snapshot_event(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host(thin_config())
    host.add_user(1, stripe_customer_id="cus_test")
    summary = build_event(
        "entitlements.active_entitlement_summary.updated",
        features=["export"],
        event_id="evt_snap_cli",
    )
    fetch = stripe_api.get(f"{API}/v1/events/evt_snap_cli", json=summary)

    missing = billing(host, "trigger", "--thin", "entitlements.active_entitlement_summary.updated")
    result = billing(
        host,
        "trigger",
        "--thin",
        "entitlements.active_entitlement_summary.updated",
        "--object",
        "evt_snap_cli",
    )

    assert missing.exit_code == 2
    assert "--object (the snapshot event id) is required" in missing.output
    assert result.exit_code == 0, result.output
    assert "  event log: processed" in result.output
    assert len(fetch.calls) == 1
    [row, twin] = sorted(host.events(), key=lambda row: row["id"] == "evt_snap_cli")
    notification = json.loads(row["payload"])
    assert "related_object" not in notification
    assert notification["snapshot_event"] == "evt_snap_cli"
    assert twin["status"] == "processed"
    assert get_account(host.app, 1).features == {"export"}  # type: ignore[union-attr]
