"""Logging: one structured record per webhook, and never a secret, key or signature."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Host
from support import post_event, sign, subscription_event

from flask_stripe_billing import SQLAlchemyUserStore, signals

LOGGER = "flask_stripe_billing"
MESSAGE = "Stripe webhook received"
WEBHOOK_SECRET = "whsec_logtestSecret0123456789"
API_KEY = "sk_test_logtestKey0123456789"
CONFIG = {"STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_API_KEY": API_KEY}


def received_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.getMessage() == MESSAGE]


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as a handler would print it, plus all its attributes."""
    formatter = logging.Formatter()
    parts = []
    for record in caplog.records:
        parts.append(formatter.format(record))
        for name, value in vars(record).items():
            parts.append(f"{name}={value!s} {value!r}")
    return "\n".join(parts)


def assert_nothing_secret(text: str, headers: list[str]) -> None:
    for secret in (WEBHOOK_SECRET, API_KEY, "logtestSecret0123456789", "logtestKey0123456789"):
        assert secret not in text
    for header in headers:
        assert header not in text
        for item in header.split(","):
            if item.startswith(("v0=", "v1=")) and len(item) > 20:
                assert item[3:] not in text


@pytest.fixture
def logged_host(make_host: Callable[..., Host]) -> Host:
    """A host with a webhook secret and an API key, user 1 linked to ``cus_test``."""
    host = make_host(CONFIG)
    host.add_user(1, stripe_customer_id="cus_test")
    return host


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture everything, Stripe's own loggers included, from DEBUG up."""
    with caplog.at_level(logging.DEBUG):
        yield caplog


# One structured record per webhook


def test_each_webhook_logs_one_structured_record(
    logged_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    event = subscription_event()

    response = post_event(logged_host.client, event, secret=WEBHOOK_SECRET)

    assert response.status_code == 200
    [record] = received_records(caplog)
    assert record.levelno == logging.INFO
    assert record.event_id == event["id"]  # type: ignore[attr-defined]
    assert record.event_type == "customer.subscription.updated"  # type: ignore[attr-defined]
    assert record.customer_id == "cus_test"  # type: ignore[attr-defined]


def test_a_duplicate_delivery_logs_its_own_record(
    logged_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    event = subscription_event()

    post_event(logged_host.client, event, secret=WEBHOOK_SECRET)
    post_event(logged_host.client, event, secret=WEBHOOK_SECRET)

    records = received_records(caplog)
    assert [r.event_id for r in records] == [event["id"], event["id"]]  # type: ignore[attr-defined]
    assert len(logged_host.events()) == 1


def test_event_for_unknown_customer_logs_its_customer_id(
    logged_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    event = subscription_event(customer="cus_stranger")

    post_event(logged_host.client, event, secret=WEBHOOK_SECRET)

    [record] = received_records(caplog)
    assert (record.event_id, record.customer_id) == (event["id"], "cus_stranger")  # type: ignore[attr-defined]


def test_rejected_signature_logs_no_received_record(
    logged_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    response = post_event(logged_host.client, subscription_event(), secret="whsec_forged")

    assert response.status_code == 400
    assert received_records(caplog) == []
    assert logged_host.events() == []


def test_structured_fields_reach_a_json_formatter(
    logged_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    event = subscription_event()

    post_event(logged_host.client, event, secret=WEBHOOK_SECRET)

    [record] = received_records(caplog)
    standard = set(vars(logging.makeLogRecord({})))
    fields = {k: v for k, v in vars(record).items() if k not in standard}
    as_json = json.loads(json.dumps({"message": record.getMessage(), **fields}, default=str))
    assert as_json["event_id"] == event["id"]
    assert as_json["event_type"] == event["type"]
    assert as_json["customer_id"] == "cus_test"


# Never a secret, a key or the signature


def test_successful_webhook_logs_and_answers_no_secret(
    logged_host: Host, debug_logs: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(subscription_event()).encode()
    header = sign(body, WEBHOOK_SECRET)

    response = logged_host.client.post(
        "/stripe/webhook",
        data=body,
        headers={"Stripe-Signature": header},
        content_type="application/json",
    )

    assert response.status_code == 200
    assert logged_host.user(1).plan == "pro"
    assert received_records(debug_logs)
    assert_nothing_secret(everything_logged(debug_logs), [header])
    assert_nothing_secret(response.get_data(as_text=True), [header])


@pytest.mark.parametrize(
    "make_header",
    [
        pytest.param(lambda body: sign(body, "whsec_forged0123456789"), id="wrong-secret"),
        pytest.param(lambda body: sign(body, WEBHOOK_SECRET, int(time.time()) - 3600), id="stale"),
        pytest.param(lambda body: sign(body, WEBHOOK_SECRET).replace(",v1=", ",v0="), id="v0-only"),
        pytest.param(lambda body: "t=notanumber,v1=" + "ab" * 32, id="malformed"),
        pytest.param(lambda body: sign(body + b" ", WEBHOOK_SECRET), id="other-body"),
    ],
)
def test_failing_signature_logs_and_answers_no_secret(
    logged_host: Host,
    debug_logs: pytest.LogCaptureFixture,
    make_header: Callable[[bytes], str],
) -> None:
    body = json.dumps(subscription_event()).encode()
    header = make_header(body)

    response = logged_host.client.post(
        "/stripe/webhook",
        data=body,
        headers={"Stripe-Signature": header},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert logged_host.events() == []
    assert_nothing_secret(everything_logged(debug_logs), [header])
    assert_nothing_secret(response.get_data(as_text=True), [header])


def test_not_configured_webhook_logs_and_answers_no_key_or_signature(
    make_host: Callable[..., Host],
    debug_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    host = make_host({"STRIPE_WEBHOOK_SECRET": None, "STRIPE_API_KEY": API_KEY})
    host.add_user(1, stripe_customer_id="cus_test")
    body = json.dumps(subscription_event()).encode()
    header = sign(body, WEBHOOK_SECRET)

    response = host.client.post(
        "/stripe/webhook",
        data=body,
        headers={"Stripe-Signature": header},
        content_type="application/json",
    )

    assert response.status_code == 503
    assert host.events() == []
    assert_nothing_secret(everything_logged(debug_logs), [header])
    assert_nothing_secret(response.get_data(as_text=True), [header])


def test_handler_failure_logs_and_answers_no_secret(
    logged_host: Host,
    debug_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_write(self: Any, **outcome: Any) -> Any:
        raise RuntimeError("the billing columns are locked by a migration")

    monkeypatch.setattr(SQLAlchemyUserStore, "write_outcome", broken_write)
    event = subscription_event()
    body = json.dumps(event).encode()
    header = sign(body, WEBHOOK_SECRET)

    response = logged_host.client.post(
        "/stripe/webhook",
        data=body,
        headers={"Stripe-Signature": header},
        content_type="application/json",
    )

    assert response.status_code == 200
    assert [(row["id"], row["status"]) for row in logged_host.events()] == [(event["id"], "failed")]
    assert logged_host.user(1).plan == "free"
    failures = [r for r in debug_logs.records if r.name == LOGGER and r.levelno >= logging.ERROR]
    assert failures, "the failure is logged"
    assert "the billing columns are locked" in everything_logged(debug_logs)
    assert len(received_records(debug_logs)) == 1
    assert_nothing_secret(everything_logged(debug_logs), [header])
    assert_nothing_secret(response.get_data(as_text=True), [header])


def test_failing_signal_receiver_logs_no_secret(
    logged_host: Host, debug_logs: pytest.LogCaptureFixture
) -> None:
    def receiver(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("welcome mail could not be sent")

    signals.plan_changed.connect(receiver)
    try:
        body = json.dumps(subscription_event()).encode()
        header = sign(body, WEBHOOK_SECRET)
        response = logged_host.client.post(
            "/stripe/webhook",
            data=body,
            headers={"Stripe-Signature": header},
            content_type="application/json",
        )
    finally:
        signals.plan_changed.disconnect(receiver)

    assert response.status_code == 200
    assert logged_host.user(1).plan == "pro"
    assert "welcome mail could not be sent" in everything_logged(debug_logs)
    assert_nothing_secret(everything_logged(debug_logs), [header])
    assert_nothing_secret(response.get_data(as_text=True), [header])
