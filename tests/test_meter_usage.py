"""``billing.usage``: a customer's meter event summaries read back from Stripe (mocked with
responses, stripe-python really runs), paged within the listing bounds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from conftest import Host

from flask_stripe_billing import UsageSummary
from flask_stripe_billing.errors import (
    NotConfiguredError,
    NotFoundError,
    StripeServiceError,
    ValidationError,
)

API = "https://api.stripe.com"
API_KEY = "sk_test_meters_0123456789"
METER = "mtr_test_61Q8nQMqIFk9Y5o2c41IqPCzPnxqqSVc"
METERS = f"{API}/v1/billing/meters"
SUMMARIES = f"{METERS}/{METER}/event_summaries"
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)


def meter(
    meter_id: str = METER, event_name: str = "api_requests", status: str = "active"
) -> dict[str, Any]:
    """A meter as Stripe's API reference shows it."""
    return {
        "id": meter_id,
        "object": "billing.meter",
        "created": 1727303036,
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "default_aggregation": {"formula": "sum"},
        "display_name": "API Requests",
        "event_name": event_name,
        "event_time_window": None,
        "livemode": False,
        "status": status,
        "status_transitions": {"deactivated_at": None},
        "updated": 1727303036,
        "value_settings": {"event_payload_key": "value"},
    }


def summary(summary_id: str, start: datetime, end: datetime, value: float) -> dict[str, Any]:
    """A meter event summary as Stripe's API reference shows it."""
    return {
        "id": summary_id,
        "object": "billing.meter_event_summary",
        "aggregated_value": value,
        "end_time": int(end.timestamp()),
        "livemode": False,
        "meter": METER,
        "start_time": int(start.timestamp()),
    }


def page(data: list[dict[str, Any]], url: str, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def query(call: Any) -> dict[str, str]:
    return {key: value[0] for key, value in parse_qs(urlsplit(call.request.url).query).items()}


@pytest.fixture
def metered(make_host: Callable[..., Host]) -> Host:
    """A host with an API key; user 1 linked to ``cus_test``, user 2 not linked yet."""
    made = make_host({"STRIPE_API_KEY": API_KEY})
    made.add_user(1, stripe_customer_id="cus_test")
    made.add_user(2)
    return made


def usage(host: Host, *args: Any, **kwargs: Any) -> list[UsageSummary]:
    with host.app.app_context():
        result: list[UsageSummary] = host.billing.usage(*args, **kwargs)
        return result


def test_usage_by_event_name_resolves_the_meter_once_and_reads_its_summaries(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    meters = stripe_api.get(
        METERS, json=page([meter("mtr_other", "storage"), meter()], "/v1/billing/meters")
    )
    listed = stripe_api.get(
        SUMMARIES, json=page([summary("sum_1", START, END, 1234)], "/v1/billing/meters/x")
    )

    first = usage(metered, 1, "api_requests", START, END)
    second = usage(metered, "1", "api_requests", START, END)

    assert first == second == [UsageSummary(START, END, 1234.0)]
    assert meters.call_count == 1  # cached for the app
    assert listed.call_count == 2
    assert query(listed.calls[0]) == {
        "customer": "cus_test",
        "start_time": str(int(START.timestamp())),
        "end_time": str(int(END.timestamp())),
        "limit": "100",
    }
    assert listed.calls[0].request.headers["Authorization"] == f"Bearer {API_KEY}"


def test_usage_by_meter_id_needs_no_lookup_and_groups_by_day_oldest_first(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    day = timedelta(days=1)
    days = [summary(f"sum_{n}", START + n * day, START + (n + 1) * day, n) for n in range(3)]
    listed = stripe_api.get(SUMMARIES, json=page(list(reversed(days)), "/v1/x"))

    result = usage(metered, 1, METER, START, START + 3 * day, grouping="day")

    assert [(s.start, s.aggregated_value) for s in result] == [
        (START, 0.0),
        (START + day, 1.0),
        (START + 2 * day, 2.0),
    ]
    assert query(listed.calls[0])["value_grouping_window"] == "day"
    assert [call.request.url.split("?")[0] for call in stripe_api.calls] == [SUMMARIES]


def test_usage_reads_every_page(metered: Host, stripe_api: responses.RequestsMock) -> None:
    hour = timedelta(hours=1)
    first = [summary(f"sum_{n}", START + n * hour, START + (n + 1) * hour, 1) for n in range(2)]
    last = [summary("sum_2", START + 2 * hour, START + 3 * hour, 5)]
    stripe_api.get(SUMMARIES, json=page(first, "/v1/x", has_more=True))
    stripe_api.get(SUMMARIES, json=page(last, "/v1/x"))

    result = usage(metered, 1, METER, START, START + 3 * hour, grouping="hour")

    assert [s.aggregated_value for s in result] == [1.0, 1.0, 5.0]
    assert query(stripe_api.calls[1])["starting_after"] == "sum_1"


def test_usage_stops_at_the_page_cap_with_a_502(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_BILLING_MAX_PAGES": "2"})
    host.add_user(1, stripe_customer_id="cus_test")
    for n in range(3):
        stripe_api.get(
            SUMMARIES, json=page([summary(f"sum_{n}", START, END, 1)], "/v1/x", has_more=True)
        )

    with pytest.raises(StripeServiceError, match="more than 2 pages"):
        usage(host, 1, METER, START, END)
    assert len(stripe_api.calls) == 2


def test_a_meter_name_stripe_does_not_have_is_not_found_and_listed_again_next_time(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    meters = stripe_api.get(METERS, json=page([meter()], "/v1/billing/meters"))

    for _ in range(2):
        with pytest.raises(NotFoundError, match="no meter with event_name 'tokens'"):
            usage(metered, 1, "tokens", START, END)

    assert meters.call_count == 2  # a meter made since may be there now


def test_an_active_meter_wins_over_a_deactivated_one_of_the_same_name(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    old = meter("mtr_old", status="inactive")
    stripe_api.get(METERS, json=page([meter(), old], "/v1/billing/meters"))
    listed = stripe_api.get(SUMMARIES, json=page([], "/v1/x"))

    assert usage(metered, 1, "api_requests", START, END) == []
    assert listed.call_count == 1


def test_an_account_without_a_customer_has_no_usage_and_stripe_is_not_asked(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    assert usage(metered, 2, "api_requests", START, END) == []
    assert len(stripe_api.calls) == 0


@pytest.mark.parametrize("status", [500, 401])
def test_stripe_failing_is_a_stripe_service_error_without_the_key(
    metered: Host, stripe_api: responses.RequestsMock, status: int
) -> None:
    body = {"error": {"type": "api_error", "message": f"boom {API_KEY}"}}
    stripe_api.get(SUMMARIES, json=body, status=status, headers={"Request-Id": "req_7"})

    with pytest.raises(StripeServiceError) as raised:
        usage(metered, 1, METER, START, END)

    assert raised.value.message == "Stripe could not list meter event summaries"
    assert raised.value.details["request_id"] == "req_7"
    assert API_KEY not in str(raised.value.details)


def test_a_summary_without_its_window_is_a_502(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    broken = summary("sum_1", START, END, 1)
    del broken["aggregated_value"]
    stripe_api.get(SUMMARIES, json=page([broken], "/v1/x"))

    with pytest.raises(StripeServiceError, match="without its window or value"):
        usage(metered, 1, METER, START, END)


@pytest.mark.parametrize(
    ("start", "end", "grouping", "message"),
    [
        (START.replace(tzinfo=None), END, None, "start must be an aware datetime"),
        (START, END + timedelta(seconds=30), None, "end must be a whole minute"),
        (END, START, None, "start must be before end"),
        (START, END, "week", "grouping must be one of hour, day"),
    ],
)
def test_a_bad_range_is_refused_before_stripe_is_asked(
    metered: Host,
    stripe_api: responses.RequestsMock,
    start: datetime,
    end: datetime,
    grouping: str | None,
    message: str,
) -> None:
    with pytest.raises(ValidationError, match=message):
        usage(metered, 1, METER, start, end, grouping=grouping)
    assert len(stripe_api.calls) == 0


def test_an_unknown_user_is_a_lookup_error(metered: Host) -> None:
    with pytest.raises(LookupError):
        usage(metered, 99, METER, START, END)


def test_usage_without_an_api_key_is_not_configured(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.add_user(1, stripe_customer_id="cus_test")

    with pytest.raises(NotConfiguredError):
        usage(host, 1, METER, START, END)
