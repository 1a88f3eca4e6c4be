"""POST /stripe/thin-webhook: thin notifications, their object fetched from Stripe's API,
applied by the same pipeline as snapshot events."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses
from conftest import Host
from support import NOW, load_object, post_event, subscription_event
from thin_support import (
    API,
    INVOICE_OBJECT,
    THIN_SECRET,
    notification,
    serve,
    subscription_object,
    thin_config,
)

from flask_stripe_billing.stripe_api import API_VERSION
from flask_stripe_billing.testing import record_signals

THIN = "/stripe/thin-webhook"
Received = dict[str, list[dict[str, Any]]]


@pytest.fixture
def thin_host(make_host: Callable[..., Host]) -> Host:
    """A host with thin events configured and user 1 linked to customer ``cus_test``."""
    made = make_host(thin_config())
    made.add_user(1, stripe_customer_id="cus_test")
    return made


def post_thin(
    client: Any, body: dict[str, Any] | bytes, *, secret: str = THIN_SECRET, **kwargs: Any
) -> Any:
    """POST a notification signed with the thin secret, as an event destination would."""
    return post_event(client, body, secret=secret, path=THIN, **kwargs)


def rows(host: Host) -> dict[str, tuple[str, str | None, int]]:
    """Event log: id → (status, user id, attempts)."""
    return {r["id"]: (r["status"], r["user_id"], r["attempts"]) for r in host.events()}


def test_a_thin_subscription_update_applies_the_subscription_as_stripe_has_it_now(
    thin_host: Host, stripe_api: responses.RequestsMock, received: Received
) -> None:
    fetch = serve(stripe_api, subscription_object(status="active"))
    thin = notification(event_id="evt_thin_1")

    response = post_thin(thin_host.client, thin)

    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    user = thin_host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    assert user.stripe_subscription_id == "sub_test"
    assert thin_host.subscription("sub_test")["status"] == "active"
    [row] = thin_host.events()
    assert (row["id"], row["type"], row["status"]) == (
        "evt_thin_1",
        "v1.customer.subscription.updated",
        "processed",
    )
    assert json.loads(row["payload"]) == thin  # the notification as Stripe sent it
    assert row["attempts"] == 1
    [call] = fetch.calls
    assert call.request.method == "GET"
    assert call.request.url == f"{API}/v1/subscriptions/sub_test"
    assert call.request.headers["Stripe-Request-Trigger"] == "event=evt_thin_1"
    assert call.request.headers["Stripe-Version"] == API_VERSION
    assert "Stripe-Context" not in call.request.headers
    [changed] = received["plan_changed"]
    assert (changed["old_plan"], changed["new_plan"], changed["event"].id) == (
        "free",
        "pro",
        "evt_thin_1",
    )
    [seen] = received["webhook_received"]
    assert (seen["event"].id, seen["status"]) == ("evt_thin_1", "processed")


def test_the_fetch_runs_in_the_notifications_account_context(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host(thin_config(STRIPE_CONNECT_ACCOUNTS="acct_123"))  # applied: opted in
    host.add_user(1, stripe_customer_id="cus_test")
    fetch = serve(stripe_api, subscription_object())

    post_thin(host.client, notification(context="acct_123"))

    assert fetch.calls[0].request.headers["Stripe-Context"] == "acct_123"


def test_a_thin_deleted_notification_ends_the_subscription_from_its_fetched_state(
    thin_host: Host, stripe_api: responses.RequestsMock, received: Received
) -> None:
    serve(stripe_api, subscription_object(status="active"))
    post_thin(thin_host.client, notification("v1.customer.subscription.created"))
    stripe_api.replace(
        responses.GET,
        f"{API}/v1/subscriptions/sub_test",
        json=subscription_object(status="canceled"),
    )

    response = post_thin(thin_host.client, notification("v1.customer.subscription.deleted"))

    assert response.status_code == 200
    user = thin_host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("free", "canceled")
    assert [c["new_plan"] for c in received["plan_changed"]] == ["pro", "free"]


def test_a_thin_notification_links_a_new_customer_to_the_user_its_subscription_names(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    thin_host.add_user(2)
    serve(stripe_api, subscription_object(customer="cus_new", subscription="sub_new", user_id="2"))

    post_thin(thin_host.client, notification(related_id="sub_new"))

    user = thin_host.user(2)
    assert (user.stripe_customer_id, user.plan) == ("cus_new", "pro")


def test_a_duplicate_notification_is_fetched_and_applied_once(
    thin_host: Host, stripe_api: responses.RequestsMock, received: Received
) -> None:
    fetch = serve(stripe_api, subscription_object())
    thin = notification(event_id="evt_thin_dup")

    first = post_thin(thin_host.client, thin)
    second = post_thin(thin_host.client, thin)

    assert (first.status_code, second.status_code) == (200, 200)
    assert len(fetch.calls) == 1
    assert rows(thin_host) == {"evt_thin_dup": ("processed", "1", 2)}  # two deliveries
    assert len(received["plan_changed"]) == 1
    assert [s["status"] for s in received["webhook_received"]] == ["processed", "duplicate"]


def test_a_late_snapshot_event_never_rolls_back_what_a_thin_notification_fetched(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    serve(stripe_api, subscription_object(status="active"))
    post_thin(thin_host.client, notification())
    older = subscription_event(status="past_due", event_id="evt_old", created=NOW - 60)

    post_event(thin_host.client, older)

    user = thin_host.user(1)
    assert user.stripe_subscription_status == "active"
    assert rows(thin_host)["evt_old"][0] == "stale"


def test_a_late_thin_notification_applies_the_latest_state_not_its_own_moment(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    post_event(thin_host.client, subscription_event(status="past_due", created=NOW - 10))
    serve(stripe_api, subscription_object(status="active"))
    old = notification(created=datetime.now(UTC) - timedelta(hours=2))

    post_thin(thin_host.client, old)

    assert thin_host.user(1).stripe_subscription_status == "active"


def test_an_unhandled_thin_type_is_recorded_ignored_and_not_fetched(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    # Stripe's meter error report is handled now; "no meter found" is not.
    example = notification("v1.billing.meter.no_meter_found", event_id="evt_meter")
    example["related_object"] = {"id": "mtr_1", "type": "billing.meter", "url": "/v1/mtr_1"}

    response = post_thin(thin_host.client, example)

    assert response.status_code == 200
    assert rows(thin_host) == {"evt_meter": ("ignored", None, 1)}
    assert len(stripe_api.calls) == 0


def test_a_thin_invoice_payment_failed_becomes_the_payment_failed_signal(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    invoice = load_object(INVOICE_OBJECT)
    invoice.update(id="in_1", customer="cus_test", status="open", amount_due=1500)
    serve(stripe_api, invoice)
    thin = notification("v1.invoice.payment_failed", "in_1", related_type="invoice")

    with record_signals() as signals_sent:
        response = post_thin(thin_host.client, thin)

    assert response.status_code == 200
    [failed] = signals_sent["payment_failed"]
    assert (failed["user_id"], failed["invoice_id"], failed["amount_due"]) == (
        "1",
        "in_1",
        1500,
    )
    assert thin_host.user(1).plan == "free"


@pytest.mark.parametrize(
    ("answer", "calls"),
    [
        pytest.param(requests.exceptions.ReadTimeout("read timed out"), 2, id="timeout"),
        pytest.param(500, 2, id="5xx"),
        pytest.param(404, 1, id="404"),
    ],
)
def test_a_failed_fetch_keeps_the_notification_received_and_replay_fetches_it_again(
    thin_host: Host,
    stripe_api: responses.RequestsMock,
    received: Received,
    answer: Any,
    calls: int,
) -> None:
    url = f"{API}/v1/subscriptions/sub_test"
    if isinstance(answer, Exception):
        failing = stripe_api.get(url, body=answer)
    else:
        failing = serve(stripe_api, subscription_object(), status=answer)
    thin = notification(event_id="evt_thin_fail")

    response = post_thin(thin_host.client, thin)

    assert response.status_code == 200  # recorded: Stripe must not retry, replay will
    assert len(failing.calls) == calls  # the configured retries (one), not for a 404
    [row] = thin_host.events()
    assert (row["status"], row["attempts"]) == ("received", 1)
    assert row["error"].startswith("could not fetch subscription sub_test: StripeServiceError")
    assert thin_host.user(1).plan == "free"
    assert received.get("plan_changed") is None

    stripe_api.replace(responses.GET, url, json=subscription_object())
    result = thin_host.app.test_cli_runner().invoke(args=["billing", "replay", "--all"])

    assert result.exit_code == 0, result.output
    assert "evt_thin_fail v1.customer.subscription.updated: received → processed" in result.output
    assert thin_host.user(1).plan == "pro"
    assert rows(thin_host) == {"evt_thin_fail": ("processed", "1", 2)}
    assert len(received["plan_changed"]) == 1


def test_stripes_next_delivery_of_a_notification_whose_fetch_failed_fetches_again(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    serve(stripe_api, subscription_object(), status=503)
    thin = notification()
    post_thin(
        thin_host.client,
        thin,
    )
    stripe_api.replace(
        responses.GET, f"{API}/v1/subscriptions/sub_test", json=subscription_object()
    )

    post_thin(thin_host.client, thin)

    assert thin_host.user(1).plan == "pro"


def test_a_notification_not_recorded_answers_503_so_stripe_retries(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    serve(stripe_api, subscription_object())
    with thin_host.app.app_context():
        thin_host.db.drop_all()

    response = post_thin(thin_host.client, notification())

    assert response.status_code == 503
    assert response.get_json()["error"] == "external_service_error"
    with thin_host.app.app_context():
        thin_host.db.create_all()


def test_a_stored_notification_replays_through_the_extension_api(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    serve(stripe_api, subscription_object(), status=500)
    post_thin(thin_host.client, notification(event_id="evt_thin_api"))
    stripe_api.replace(
        responses.GET, f"{API}/v1/subscriptions/sub_test", json=subscription_object()
    )

    with thin_host.app.app_context():
        outcome = thin_host.billing.process_event("evt_thin_api")

    assert (outcome.status, outcome.event.id) == ("processed", "evt_thin_api")
    assert thin_host.user(1).plan == "pro"


def test_dispatch_mode_records_the_notification_and_the_worker_fetches(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    queued: list[str] = []
    made = make_host(thin_config(), dispatch=queued.append)
    made.add_user(1, stripe_customer_id="cus_test")
    fetch = serve(stripe_api, subscription_object())

    response = post_thin(made.client, notification(event_id="evt_thin_q"))

    assert response.status_code == 200
    assert queued == ["evt_thin_q"]
    assert rows(made) == {"evt_thin_q": ("received", None, 1)}
    assert len(fetch.calls) == 0
    with made.app.app_context():
        made.billing.process_event("evt_thin_q")
    assert made.user(1).plan == "pro"
    assert len(fetch.calls) == 1


def test_csrf_protect_leaves_the_thin_endpoint_open_and_the_memory_store_applies_it(
    stripe_api: responses.RequestsMock,
) -> None:
    from flask import Flask
    from flask_wtf.csrf import CSRFProtect

    from flask_stripe_billing import BillingAccount, InMemoryUserStore, StripeBilling

    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", **thin_config())
    store = InMemoryUserStore([BillingAccount(user_id="1", stripe_customer_id="cus_test")])
    StripeBilling(app, user_store=store)
    CSRFProtect(app)  # after the extension, as apps often do
    serve(stripe_api, subscription_object())

    response = post_thin(app.test_client(), notification())

    assert response.status_code == 200, response.get_data(as_text=True)
    account = store.get("1")
    assert account is not None
    assert (account.plan, account.subscription_status) == ("pro", "active")


def test_the_public_testing_helpers_build_and_post_a_thin_notification(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    from flask_stripe_billing.testing import (
        build_notification,
        post_stripe_event,
        thin_webhook_path,
    )

    subscription = subscription_object(subscription="sub_helper")
    stripe_api.get(f"{API}/v1/subscriptions/sub_helper", json=subscription)
    thin = build_notification("v1.customer.subscription.updated", "sub_helper", "subscription")

    response = post_stripe_event(
        thin_host.client,
        thin,
        secret=thin_host.app.config["STRIPE_THIN_WEBHOOK_SECRET"],
        path=thin_webhook_path(thin_host.app),
    )

    assert response.status_code == 200
    assert thin["related_object"]["url"] == "/v1/subscriptions/sub_helper"
    assert thin["created"].endswith("Z")
    assert thin_host.user(1).stripe_subscription_id == "sub_helper"


def test_a_notification_about_an_unknown_customer_stays_unmatched_until_linked(
    thin_host: Host, stripe_api: responses.RequestsMock, received: Received
) -> None:
    thin_host.add_user(2)
    serve(stripe_api, subscription_object(customer="cus_unknown", subscription="sub_x"))
    thin = notification(related_id="sub_x", event_id="evt_thin_unknown", snapshot_event="evt_s")

    response = post_thin(thin_host.client, thin)

    assert response.status_code == 200
    statuses = {row["id"]: (row["status"], row["error"]) for row in thin_host.events()}
    reason = "no account is linked to customer cus_unknown"
    assert statuses == {"evt_thin_unknown": ("unmatched", reason), "evt_s": ("unmatched", reason)}
    [missing] = received["customer_not_found"]
    assert missing["customer_id"] == "cus_unknown"

    runner = thin_host.app.test_cli_runner()
    linked = runner.invoke(args=["billing", "link", "2", "cus_unknown"], input="y\n")
    assert linked.exit_code == 0, linked.output
    replayed = runner.invoke(args=["billing", "replay", "evt_thin_unknown"])

    assert replayed.exit_code == 0, replayed.output
    assert thin_host.user(2).plan == "pro"
    statuses = {row["id"]: row["status"] for row in thin_host.events()}
    assert statuses == {"evt_thin_unknown": "processed", "evt_s": "processed"}


# bookkeeping: attempts and the customer, as for snapshot events


def test_each_delivery_and_replay_of_a_thin_notification_counts_one_attempt_as_a_snapshots_does(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    serve(stripe_api, subscription_object())
    thin = notification(event_id="evt_thin_again")
    snapshot = subscription_event(event_id="evt_snap_again", status="active", created=NOW - 60)

    for _ in range(3):
        assert post_thin(thin_host.client, thin).status_code == 200
        assert post_event(thin_host.client, snapshot).status_code == 200
    replayed = thin_host.app.test_cli_runner().invoke(
        args=["billing", "replay", "evt_thin_again", "evt_snap_again"]
    )

    assert replayed.exit_code == 0, replayed.output
    assert rows(thin_host) == {
        "evt_thin_again": ("processed", "1", 4),
        "evt_snap_again": ("stale", "1", 4),
    }


def test_a_thin_twin_settled_by_its_applied_snapshot_counts_each_delivery(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    fetch = serve(stripe_api, subscription_object())
    post_event(thin_host.client, subscription_event(event_id="evt_snap_first", status="active"))
    thin = notification(event_id="evt_thin_twin", snapshot_event="evt_snap_first")

    post_thin(thin_host.client, thin)
    post_thin(thin_host.client, thin)

    assert len(fetch.calls) == 0
    [row] = [r for r in thin_host.events() if r["id"] == "evt_thin_twin"]
    assert (row["status"], row["attempts"], row["customer_id"]) == ("processed", 2, "cus_test")
    listed = thin_host.app.test_cli_runner().invoke(
        args=["billing", "events", "--customer", "cus_test"]
    )
    assert "evt_thin_twin" in listed.output


@pytest.mark.parametrize("how", ["replay", "process_event"])
def test_a_thin_notification_applied_after_a_failed_fetch_records_its_customer(
    thin_host: Host, stripe_api: responses.RequestsMock, how: str
) -> None:
    serve(stripe_api, subscription_object(), status=404)
    post_thin(thin_host.client, notification(event_id="evt_thin_later"))
    [waiting] = thin_host.events()
    assert (waiting["status"], waiting["customer_id"]) == ("received", None)  # not known yet
    stripe_api.replace(
        responses.GET, f"{API}/v1/subscriptions/sub_test", json=subscription_object()
    )

    if how == "replay":
        result = thin_host.app.test_cli_runner().invoke(args=["billing", "replay", "--all"])
        assert result.exit_code == 0, result.output
    else:
        with thin_host.app.app_context():
            assert thin_host.billing.process_event("evt_thin_later").status == "processed"

    [row] = thin_host.events()
    assert (row["status"], row["customer_id"], row["user_id"]) == ("processed", "cus_test", "1")
    listed = thin_host.app.test_cli_runner().invoke(
        args=["billing", "events", "--customer", "cus_test"]
    )
    assert listed.exit_code == 0
    assert "evt_thin_later" in listed.output
