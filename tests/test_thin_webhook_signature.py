"""POST /stripe/thin-webhook: only notifications signed with a thin secret get in; a refusal
records nothing and asks Stripe's API nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import responses
from conftest import Host
from support import SECRET, post_event, sign, subscription_event
from thin_support import API_KEY, THIN_SECRET, notification, serve, subscription_object, thin_config

from flask_stripe_billing.config import Settings

THIN = "/stripe/thin-webhook"


@pytest.fixture
def thin_host(make_host: Callable[..., Host]) -> Host:
    made = make_host(thin_config())
    made.add_user(1, stripe_customer_id="cus_test")
    return made


def post_raw(client: Any, body: bytes, header: str | None, path: str = THIN) -> Any:
    headers = {} if header is None else {"Stripe-Signature": header}
    return client.post(path, data=body, headers=headers, content_type="application/json")


def assert_refused(
    response: Any, host: Host, stripe_api: responses.RequestsMock, status: int, message: str
) -> dict[str, Any]:
    """The JSON error with this status and message prefix; nothing recorded, nothing fetched."""
    assert response.status_code == status, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert set(body) == {"error", "message", "details"}
    assert body["message"].startswith(message), body["message"]
    assert host.events() == []
    assert host.user(1).plan == "free"
    assert len(stripe_api.calls) == 0
    return body


def encoded(thin: dict[str, Any]) -> bytes:
    return json.dumps(thin).encode()


def test_no_signature_header_is_refused(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    response = post_raw(thin_host.client, encoded(notification()), None)

    body = assert_refused(
        response, thin_host, stripe_api, 400, "Invalid webhook signature: no Stripe-Signature"
    )
    assert body["error"] == "validation_error"


def test_a_body_changed_after_signing_is_refused(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    body = encoded(notification(related_id="sub_other"))
    header = sign(encoded(notification()), THIN_SECRET)

    response = post_raw(thin_host.client, body, header)

    assert_refused(response, thin_host, stripe_api, 400, "Invalid webhook signature: No signat")


def test_an_expired_signature_is_refused(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    body = encoded(notification())
    stale = int(time.time()) - 301

    response = post_raw(thin_host.client, body, sign(body, THIN_SECRET, stale))

    assert_refused(response, thin_host, stripe_api, 400, "Invalid webhook signature: Timestamp")


def test_a_signature_dated_in_the_future_is_refused(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    body = encoded(notification())
    future = int(time.time()) + 3600

    response = post_raw(thin_host.client, body, sign(body, THIN_SECRET, future))

    assert_refused(response, thin_host, stripe_api, 400, "Invalid webhook signature")


def test_the_snapshot_webhooks_secret_does_not_open_the_thin_endpoint(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    response = post_event(thin_host.client, notification(), secret=SECRET, path=THIN)

    assert_refused(response, thin_host, stripe_api, 400, "Invalid webhook signature")


def test_the_thin_secret_does_not_open_the_snapshot_webhook(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    response = post_event(thin_host.client, subscription_event(), secret=THIN_SECRET)

    assert_refused(response, thin_host, stripe_api, 400, "Invalid webhook signature")


def test_each_of_several_comma_separated_thin_secrets_is_accepted(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    made = make_host(thin_config(STRIPE_THIN_WEBHOOK_SECRET=f"whsec_old, {THIN_SECRET}"))
    made.add_user(1, stripe_customer_id="cus_test")
    serve(stripe_api, subscription_object())

    response = post_event(made.client, notification(), secret=THIN_SECRET, path=THIN)

    assert response.status_code == 200
    assert made.user(1).plan == "pro"


@pytest.mark.parametrize(
    ("config", "missing"),
    [
        ({"STRIPE_API_KEY": API_KEY}, ["STRIPE_THIN_WEBHOOK_SECRET"]),
        ({"STRIPE_THIN_WEBHOOK_SECRET": THIN_SECRET}, ["STRIPE_API_KEY"]),
        ({}, ["STRIPE_THIN_WEBHOOK_SECRET", "STRIPE_API_KEY"]),
    ],
)
def test_the_thin_endpoint_answers_503_until_its_secret_and_the_api_key_are_set(
    make_host: Callable[..., Host],
    stripe_api: responses.RequestsMock,
    config: dict[str, str],
    missing: list[str],
) -> None:
    made = make_host(config)
    made.add_user(1, stripe_customer_id="cus_test")
    body = encoded(notification())

    response = post_raw(made.client, body, sign(body, THIN_SECRET))

    answer = assert_refused(response, made, stripe_api, 503, "Stripe billing is not configured")
    assert answer == {
        "error": "external_service_error",
        "message": "Stripe billing is not configured",
        "details": {"service": "Stripe", "missing": missing},
    }


def test_a_snapshot_event_sent_to_the_thin_endpoint_is_refused_with_the_reason(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    response = post_event(thin_host.client, subscription_event(), secret=THIN_SECRET, path=THIN)

    assert_refused(response, thin_host, stripe_api, 400, "Webhook error: this is a snapshot event")


def test_a_thin_notification_sent_to_the_snapshot_webhook_is_refused_with_the_reason(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    response = post_event(thin_host.client, notification())

    assert_refused(
        response, thin_host, stripe_api, 400, "Webhook error: this is a thin event notification"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"created": None}, "Webhook error: notification has no creation time"),
        ({"created": "yesterday"}, "Webhook error: notification's creation time is not RFC"),
        ({"id": ""}, "Webhook error: notification has no id"),
        ({"type": 7}, "Webhook error: notification has no type"),
        ({"related_object": "sub_test"}, "Webhook error: related_object is not an object"),
        ({"related_object": {"id": "sub_test"}}, "Webhook error: notification has no related"),
        ({"object": "list"}, "Webhook error: body is not a Stripe thin event notification"),
    ],
)
def test_a_signed_body_that_is_no_thin_notification_is_refused(
    thin_host: Host, stripe_api: responses.RequestsMock, change: dict[str, Any], message: str
) -> None:
    thin = notification()
    thin.update(change)

    response = post_event(thin_host.client, thin, secret=THIN_SECRET, path=THIN)

    assert_refused(response, thin_host, stripe_api, 400, message)


def test_a_signed_body_that_is_not_json_is_refused(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    body = b"{not json"

    response = post_raw(thin_host.client, body, sign(body, THIN_SECRET))

    assert_refused(response, thin_host, stripe_api, 400, "Webhook error: body is not valid JSON")


def test_other_methods_on_the_thin_endpoint_answer_405_json(thin_host: Host) -> None:
    response = thin_host.client.get(THIN)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.get_json()["error"] == "method_not_allowed"


def test_settings_never_show_the_thin_signing_secrets() -> None:
    settings = Settings.from_config({"STRIPE_THIN_WEBHOOK_SECRET": f"whsec_a,{THIN_SECRET}"}, {})

    assert settings.thin_webhook_secrets == ("whsec_a", THIN_SECRET)
    assert THIN_SECRET not in repr(settings)
    assert "thin_webhook_secrets=<2 signing secrets>" in repr(settings)
