"""Usage-based billing in tests: Stripe's meter-event endpoint mocked with ``responses``,
the requests it saw read back as Stripe reads them, and the usage table's rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import responses
import sqlalchemy as sa
from conftest import Host

METER_EVENTS = "https://api.stripe.com/v1/billing/meter_events"
API_KEY = "sk_test_51UsageKey000000000000000000"
USAGE_TABLE = "stripe_billing_usage"


def accept_meter_events(stripe_api: responses.RequestsMock) -> None:
    """Stripe answering every meter event with the event, as its API does."""
    stripe_api.add_callback(responses.POST, METER_EVENTS, callback=_accepted)


def _accepted(request: Any) -> tuple[int, dict[str, str], str]:
    form = dict(parse_qsl(request.body))
    body = (
        '{"object": "billing.meter_event", "created": 1, "livemode": false, '
        f'"event_name": "{form["event_name"]}", "identifier": "{form["identifier"]}", '
        f'"timestamp": {form["timestamp"]}, "payload": {{}}}}'
    )
    return 200, {"Request-Id": "req_usage"}, body


def refusal(status: int, message: str) -> dict[str, Any]:
    """Stripe's error answer."""
    return {
        "status": status,
        "json": {"error": {"type": "invalid_request_error", "message": message}},
    }


def meter_requests(stripe_api: responses.RequestsMock) -> list[dict[str, str]]:
    """Every meter event posted, as the form Stripe received (``payload[value]``, …)."""
    return [
        dict(parse_qsl(call.request.body))
        for call in stripe_api.calls
        if call.request.url == METER_EVENTS
    ]


def usage_rows(host: Host) -> list[dict[str, Any]]:
    """The usage table's rows, by identifier."""
    with host.app.app_context():
        table = host.db.metadata.tables[USAGE_TABLE]
        rows = host.db.session.execute(sa.select(table).order_by(table.c.identifier))
        return [dict(row._mapping) for row in rows]


def make_due(host: Host) -> None:
    """Time passes: every pending row's back-off is over."""
    with host.app.app_context():
        table = host.db.metadata.tables[USAGE_TABLE]
        host.db.session.execute(
            table.update()
            .where(table.c.status == "pending")
            .values(next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
        host.db.session.commit()
