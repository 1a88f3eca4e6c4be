"""Stripe's meter error reports (``v1.billing.meter.error_report_triggered``): fetched as a
v2 event, applied through the pipeline once per event id, sent as ``meter_errors``."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from conftest import Host
from support import load, post_event
from thin_support import API, EXAMPLE, THIN_SECRET, thin_config

from flask_stripe_billing import MeterErrorType
from flask_stripe_billing.core import rules
from flask_stripe_billing.core.events import (
    METER_ERROR_EVENT,
    meter_error_report,
    parse_event,
    read_meter_errors,
)
from flask_stripe_billing.pipeline.fetch import THIN_EVENT_TYPES
from flask_stripe_billing.testing import record_signals

THIN = "/stripe/thin-webhook"
METER = "mtr_test_61RCjiqdTDC91zgip41IqPCzPnxqqSVc"
IDENTIFIER = "cb447754-6880-45c2-8f2f-ef19b6ce81e9"


def fetched(event_id: str = "evt_meter_1") -> dict[str, Any]:
    """Stripe's published v2 meter error event, as ``GET /v2/core/events/{id}`` answers."""
    event = copy.deepcopy(load(EXAMPLE))
    event["id"] = event_id
    return event


def delivered(event_id: str = "evt_meter_1") -> dict[str, Any]:
    """The thin notification an event destination delivers: the event without ``data``."""
    body = fetched(event_id)
    del body["data"]
    return body


def serve_event(mock: responses.RequestsMock, event: dict[str, Any], status: int = 200) -> Any:
    body = event if status == 200 else {"error": {"type": "api_error", "message": "boom"}}
    return mock.get(f"{API}/v2/core/events/{event['id']}", json=body, status=status)


@pytest.fixture
def host(make_host: Callable[..., Host]) -> Host:
    made = make_host(thin_config())
    made.add_user(1, stripe_customer_id="cus_test")
    return made


def post_thin(host: Host, body: dict[str, Any]) -> Any:
    return post_event(host.client, body, secret=THIN_SECRET, path=THIN)


def rows(host: Host) -> dict[str, tuple[str, str | None]]:
    return {row["id"]: (row["status"], row["user_id"]) for row in host.events()}


def test_a_meter_error_report_becomes_meter_errors_with_stripes_reasons(
    host: Host, stripe_api: responses.RequestsMock
) -> None:
    fetch = serve_event(stripe_api, fetched())

    with record_signals() as sent:
        response = post_thin(host, delivered())

    assert response.status_code == 200
    assert fetch.call_count == 1
    assert fetch.calls[0].request.headers["Stripe-Request-Trigger"] == "event=evt_meter_1"
    [report] = sent["meter_errors"]
    assert report["meter_id"] == METER
    assert report["summary"] == "There is 1 invalid event"
    assert report["error_count"] == 1
    assert report["codes"] == ("meter_event_no_customer_defined",)
    assert report["errors"] == (
        MeterErrorType(
            code="meter_event_no_customer_defined",
            error_count=1,
            sample_messages=("Customer mapping key stripe_customer_id not found in payload.",),
            sample_identifiers=(IDENTIFIER,),
        ),
    )
    assert report["validation_start"] == datetime(2024, 9, 26, 17, 46, 10, tzinfo=UTC)
    assert report["validation_end"] == datetime(2024, 9, 26, 17, 46, 20, tzinfo=UTC)
    assert report["event"].type == METER_ERROR_EVENT
    # It names a meter, not a customer: processed, with no account.
    assert rows(host) == {"evt_meter_1": ("processed", None)}
    assert host.user(1).plan == "free"
    assert sent["customer_not_found"] == []


def test_a_repeated_meter_error_report_is_fetched_and_signalled_once(
    host: Host, stripe_api: responses.RequestsMock
) -> None:
    fetch = serve_event(stripe_api, fetched())

    with record_signals() as sent:
        first = post_thin(host, delivered())
        second = post_thin(host, delivered())

    assert (first.status_code, second.status_code) == (200, 200)
    assert fetch.call_count == 1
    assert len(sent["meter_errors"]) == 1
    assert [call["status"] for call in sent["webhook_received"]] == ["processed", "duplicate"]
    assert rows(host) == {"evt_meter_1": ("processed", None)}


def test_a_failed_fetch_of_a_meter_error_report_keeps_it_for_replay(
    host: Host, stripe_api: responses.RequestsMock
) -> None:
    serve_event(stripe_api, fetched(), status=500)

    with record_signals() as sent:
        response = post_thin(host, delivered())

    assert response.status_code == 200
    assert sent["meter_errors"] == []
    [row] = host.events()
    assert row["status"] == "received"
    assert "could not fetch billing.meter " + METER in row["error"]

    stripe_api.replace(responses.GET, f"{API}/v2/core/events/evt_meter_1", json=fetched())
    with record_signals() as sent, host.app.app_context():
        outcome = host.billing.process_event("evt_meter_1")

    assert outcome.status == "processed"
    assert len(sent["meter_errors"]) == 1


def test_an_answer_that_is_another_event_is_not_applied(
    host: Host, stripe_api: responses.RequestsMock
) -> None:
    other = fetched("evt_other")
    stripe_api.get(f"{API}/v2/core/events/evt_meter_1", json=other)

    with record_signals() as sent:
        response = post_thin(host, delivered())

    assert response.status_code == 200
    assert sent["meter_errors"] == []
    [row] = host.events()
    assert row["status"] == "failed"
    assert "evt_other, not evt_meter_1" in row["error"]


def test_a_notification_about_another_kind_of_object_is_ignored_unfetched(
    host: Host, stripe_api: responses.RequestsMock
) -> None:
    body = delivered()
    body["related_object"] = {"id": "sub_1", "type": "subscription", "url": "/v1/subscriptions/x"}

    response = post_thin(host, body)

    assert response.status_code == 200
    assert rows(host) == {"evt_meter_1": ("ignored", None)}
    assert len(stripe_api.calls) == 0


def test_the_meter_error_type_is_a_thin_route_and_not_a_webhook_endpoint_type() -> None:
    assert "v1.billing.meter.error_report_triggered" in THIN_EVENT_TYPES
    # Stripe sends no such snapshot event to a webhook endpoint (it would refuse to enable it).
    assert METER_ERROR_EVENT not in rules.HANDLED_EVENT_TYPES
    assert rules.is_handled(METER_ERROR_EVENT)


def test_a_snapshot_meter_error_event_is_decided_the_same_way(host: Host) -> None:
    """A delivered snapshot of the type (the object the thin route builds) is applied too."""
    event = {
        "id": "evt_snapshot_meter",
        "object": "event",
        "type": METER_ERROR_EVENT,
        "created": 1727372782,
        "api_version": None,
        "livemode": False,
        "data": {"object": meter_error_report(fetched())},
    }

    with record_signals() as sent:
        response = post_event(host.client, json.loads(json.dumps(event)))

    assert response.status_code == 200
    [report] = sent["meter_errors"]
    assert (report["meter_id"], report["codes"]) == (METER, ("meter_event_no_customer_defined",))
    assert rows(host) == {"evt_snapshot_meter": ("processed", None)}


def test_a_meter_error_event_without_its_report_is_ignored() -> None:
    event = parse_event(
        {
            "id": "evt_1",
            "object": "event",
            "type": METER_ERROR_EVENT,
            "created": 1727372782,
            "data": {"object": {"object": "billing.meter", "id": METER}},
        }
    )

    decision = rules.decide_meter_errors(event)

    assert decision.status == "ignored"
    assert decision.notices == ()


def test_the_older_report_layout_is_read_too() -> None:
    """The preview ``billing.meter_error_report`` object: Unix times, ``summary``,
    ``api_request.idempotency_key``."""
    facts = read_meter_errors(
        {
            "object": "billing.meter_error_report",
            "meter": METER,
            "summary": "1 invalid event",
            "validation_start": 1727372770,
            "validation_end": 1727372780,
            "reason": {
                "error_count": 2,
                "error_types": [
                    {
                        "code": "timestamp_too_far_in_past",
                        "error_count": 2,
                        "sample_errors": [
                            {
                                "error_message": "Timestamp too far in the past.",
                                "api_request": {"id": "req_1", "idempotency_key": "usage-7"},
                            }
                        ],
                    }
                ],
            },
        }
    )

    assert facts.summary == "1 invalid event"
    assert facts.validation_start == datetime.fromtimestamp(1727372770, tz=UTC)
    assert facts.error_types[0].sample_identifiers == ("usage-7",)
    assert facts.error_count == 2
