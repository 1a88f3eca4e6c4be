"""Usage-based billing: ``report_usage`` in the host's transaction, the sender posting
meter events to Stripe (mocked with ``responses``: stripe-python really runs), what a
refusal, a timeout or a crash leaves, the listing, and quotas."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses
import sqlalchemy as sa
from click.testing import Result
from conftest import Host
from flask import Flask
from usage_support import (
    API_KEY,
    METER_EVENTS,
    USAGE_TABLE,
    accept_meter_events,
    make_due,
    meter_requests,
    refusal,
    usage_rows,
)

from flask_stripe_billing import (
    BillingAccount,
    InMemoryUserStore,
    StoreContractError,
    StripeBilling,
    UsageNotKeptError,
    ValidationError,
    signals,
)

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def metered(make_host: Callable[..., Host]) -> Host:
    """A host with an API key; user 1 linked to ``cus_test``, user 2 not linked yet."""
    host = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_BILLING_API_DEADLINE": "1"})
    host.add_user(1, stripe_customer_id="cus_test", plan="pro")
    host.add_user(2)
    return host


@pytest.fixture
def rejected() -> Any:
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)

    signals.usage_rejected.connect(receiver)
    yield calls
    signals.usage_rejected.disconnect(receiver)


def report(host: Host, user: int, value: int, **options: Any) -> None:
    """The host's request: its own row and a usage report, committed together."""
    with host.app.app_context():
        host.billing.report_usage(user, "api_calls", value, **options)
        host.db.session.commit()


def send(host: Host) -> Any:
    with host.app.app_context():
        return host.billing.send_usage()


def cli(host: Host, *args: str) -> Result:
    return host.app.test_cli_runner().invoke(args=["billing", *args])


def test_a_report_is_sent_as_one_meter_event_with_its_identifier(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    accept_meter_events(stripe_api)
    report(metered, 1, 3, identifier="req_42", timestamp=NOW - timedelta(minutes=2))
    (row,) = usage_rows(metered)
    # No read of the account in the host's request: the sender finds the customer.
    assert (row["status"], row["customer_id"], row["value"]) == ("pending", None, 3)

    outcome = send(metered)

    assert (outcome.sent, outcome.failed, outcome.retrying, outcome.waiting) == (1, 0, 0, 0)
    assert meter_requests(stripe_api) == [
        {
            "event_name": "api_calls",
            "identifier": "req_42",
            "timestamp": str(int((NOW - timedelta(minutes=2)).timestamp())),
            "payload[stripe_customer_id]": "cus_test",
            "payload[value]": "3",
        }
    ]
    (call,) = stripe_api.calls
    assert call.request.method == "POST"
    assert call.request.headers["Authorization"] == f"Bearer {API_KEY}"
    (row,) = usage_rows(metered)
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 1, None)
    assert row["sent_at"] is not None
    assert send(metered).sent == 0  # nothing left: nothing posted again
    assert len(meter_requests(stripe_api)) == 1


def test_the_default_identifier_is_new_for_each_report(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    accept_meter_events(stripe_api)
    report(metered, 1, 1)
    report(metered, 1, 1)
    send(metered)
    identifiers = [form["identifier"] for form in meter_requests(stripe_api)]
    assert len(set(identifiers)) == 2
    assert all(identifier.startswith("usage_") for identifier in identifiers)


def test_the_same_identifier_reported_twice_is_one_row_and_one_event(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    accept_meter_events(stripe_api)
    report(metered, 1, 5, identifier="req_1")
    report(metered, 1, 7, identifier="req_1")  # a retried request: a no-op
    send(metered)
    report(metered, 1, 7, identifier="req_1")  # even once sent
    send(metered)
    assert [row["value"] for row in usage_rows(metered)] == [5]
    assert [form["identifier"] for form in meter_requests(stripe_api)] == ["req_1"]


def test_a_duplicate_report_leaves_the_hosts_transaction_usable(metered: Host) -> None:
    report(metered, 1, 5, identifier="req_1")
    with metered.app.app_context():
        metered.billing.report_usage(1, "api_calls", 5, identifier="req_1")
        metered.db.session.add(metered.User(id=3, email="three@example.com"))
        metered.db.session.commit()
    assert metered.user(3) is not None


def test_a_rolled_back_host_transaction_leaves_no_row_and_nothing_is_sent(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    accept_meter_events(stripe_api)
    with metered.app.app_context():
        metered.db.session.add(metered.User(id=3, email="three@example.com"))
        metered.billing.report_usage(1, "api_calls", 9)
        metered.db.session.rollback()  # the host's work failed
    assert usage_rows(metered) == []
    assert metered.user(3) is None
    assert send(metered).sent == 0
    assert meter_requests(stripe_api) == []


@pytest.mark.parametrize(
    ("value", "offset", "message"),
    [
        (1, -timedelta(days=35, minutes=1), r"older than Stripe accepts \(35 days\)"),
        (1, timedelta(minutes=6), "more than 5 minutes ahead"),
        (1.5, None, "whole number"),
        (True, None, "whole number"),
        (-1, None, "must not be negative"),
    ],
)
def test_usage_stripe_would_refuse_is_refused_at_report_time(
    metered: Host, value: Any, offset: timedelta | None, message: str
) -> None:
    timestamp = None if offset is None else datetime.now(UTC) + offset
    with metered.app.app_context(), pytest.raises(ValidationError, match=message):
        metered.billing.report_usage(1, "api_calls", value, timestamp=timestamp)
    assert usage_rows(metered) == []


def test_a_naive_timestamp_is_refused(metered: Host) -> None:
    with metered.app.app_context(), pytest.raises(ValidationError, match="timezone-aware"):
        metered.billing.report_usage(1, "api_calls", 1, timestamp=datetime(2026, 1, 1))


def test_usage_within_stripes_window_is_accepted(metered: Host) -> None:
    report(metered, 1, 1, timestamp=datetime.now(UTC) - timedelta(days=34, hours=23))
    report(metered, 1, 1, timestamp=datetime.now(UTC) + timedelta(minutes=4))
    assert len(usage_rows(metered)) == 2


@pytest.mark.parametrize("name", ["", "api calls", "x" * 101])
def test_a_bad_meter_event_name_is_refused(metered: Host, name: str) -> None:
    with metered.app.app_context(), pytest.raises(ValidationError, match="meter event name"):
        metered.billing.report_usage(1, name, 1)


def test_usage_of_an_unknown_user_fails_at_send_with_the_reason(
    metered: Host, stripe_api: responses.RequestsMock, rejected: list[dict[str, Any]]
) -> None:
    accept_meter_events(stripe_api)
    report(metered, 99, 1, identifier="req_nobody")
    assert send(metered).failed == 1
    assert meter_requests(stripe_api) == []
    (row,) = usage_rows(metered)
    assert (row["status"], row["error"]) == ("failed", "no user '99' in the store")
    assert [call["identifier"] for call in rejected] == ["req_nobody"]


def test_an_account_given_sends_its_customer_without_a_read(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    accept_meter_events(stripe_api)
    with metered.app.app_context():
        account = metered.billing.account(1)
        metered.billing.report_usage(account, "api_calls", 1, identifier="req_acct")
        metered.db.session.commit()
    assert usage_rows(metered)[0]["customer_id"] == "cus_test"
    send(metered)
    assert meter_requests(stripe_api)[0]["payload[stripe_customer_id]"] == "cus_test"


def test_a_permanent_refusal_marks_the_row_failed_with_the_reason_and_signals(
    metered: Host, stripe_api: responses.RequestsMock, rejected: list[dict[str, Any]]
) -> None:
    message = "No active meter was found for event_name 'api_calls'."
    stripe_api.post(METER_EVENTS, **refusal(400, message))
    report(metered, 1, 2, identifier="req_bad")

    outcome = send(metered)

    assert (outcome.sent, outcome.failed) == (0, 1)
    (row,) = usage_rows(metered)
    assert row["status"] == "failed"
    assert row["error"] == f"HTTP 400: {message}"
    (call,) = rejected
    assert call["identifier"] == "req_bad"
    assert call["user_id"] == "1"
    assert (call["event_name"], call["value"]) == ("api_calls", 2)
    assert call["reason"] == f"HTTP 400: {message}"
    make_due(metered)
    send(metered)
    assert len(meter_requests(stripe_api)) == 1  # a failed row is not sent again
    with metered.app.app_context():
        assert metered.billing.usage_remaining(1, "api_calls") is None


@pytest.mark.parametrize(
    "failure",
    [
        {"body": requests.exceptions.ReadTimeout("timed out")},
        {"body": requests.exceptions.ConnectionError("refused")},
        refusal(429, "Too many requests"),
        refusal(500, "An unknown error occurred"),
        refusal(503, "Service unavailable"),
    ],
    ids=["timeout", "connection", "429", "500", "503"],
)
def test_a_transient_failure_is_retried_later_and_billed_once(
    metered: Host, stripe_api: responses.RequestsMock, failure: dict[str, Any]
) -> None:
    stripe_api.post(METER_EVENTS, **failure)
    report(metered, 1, 4, identifier="req_t")

    first = send(metered)

    assert (first.sent, first.retrying) == (0, 1)
    (row,) = usage_rows(metered)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["next_attempt_at"].replace(tzinfo=UTC) > datetime.now(UTC)
    assert row["error"].startswith(("no answer", "HTTP 429", "HTTP 5"))
    # A 429 is retried within the call's deadline (the app's pacing), each time the same.
    tried = len(meter_requests(stripe_api))
    assert tried >= 1
    assert send(metered).sent == 0  # not due yet: Stripe is not asked again at once
    assert len(meter_requests(stripe_api)) == tried

    stripe_api.replace(responses.POST, METER_EVENTS, status=200, json={"identifier": "req_t"})
    make_due(metered)
    second = send(metered)

    assert second.sent == 1
    forms = meter_requests(stripe_api)
    assert len(forms) == tried + 1
    assert {form["identifier"] for form in forms} == {"req_t"}  # one billed event
    assert all(form == forms[0] for form in forms)
    (row,) = usage_rows(metered)
    assert (row["status"], row["attempts"]) == ("sent", 2)


def test_a_transient_failure_ends_the_pass_the_rest_waits(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_BILLING_USAGE_BATCH_SIZE": 1})
    host.add_user(1, stripe_customer_id="cus_test")
    stripe_api.post(METER_EVENTS, **refusal(503, "Service unavailable"))
    report(host, 1, 1, identifier="a")
    report(host, 1, 1, identifier="b")
    outcome = send(host)
    assert (outcome.retrying, outcome.sent) == (1, 0)  # Stripe is limiting: no second batch
    assert len(meter_requests(stripe_api)) == 1
    assert [row["attempts"] for row in usage_rows(host)] == [1, 0]


def test_a_sender_killed_after_stripes_answer_sends_the_same_identifier_again(
    metered: Host, stripe_api: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    accept_meter_events(stripe_api)
    report(metered, 1, 6, identifier="req_k1")
    report(metered, 1, 1, identifier="req_k2")
    store = metered.billing.user_store
    assert store is not None

    def killed(self: Any, records: Any) -> None:
        raise SystemExit("killed between Stripe's 200 and the local mark")

    with monkeypatch.context() as patch:
        patch.setattr(type(store), "save_usage", killed)
        with pytest.raises(SystemExit):
            send(metered)
    assert {row["status"] for row in usage_rows(metered)} == {"pending"}

    assert send(metered).sent == 2

    identifiers = [form["identifier"] for form in meter_requests(stripe_api)]
    assert sorted(identifiers) == ["req_k1", "req_k1", "req_k2", "req_k2"]
    assert {row["status"] for row in usage_rows(metered)} == {"sent"}


def test_usage_of_an_account_without_a_customer_waits_until_it_is_linked(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    accept_meter_events(stripe_api)
    report(metered, 2, 8, identifier="req_u")

    outcome = send(metered)

    assert (outcome.sent, outcome.waiting) == (0, 1)
    assert meter_requests(stripe_api) == []
    (row,) = usage_rows(metered)
    assert (row["status"], row["customer_id"]) == ("pending", None)
    assert row["error"] == "the account has no Stripe customer yet"
    listing = cli(metered, "usage")
    assert listing.exit_code == 0, listing.output
    assert "(no customer yet)" in listing.output

    with metered.app.app_context():
        metered.billing.user_store.set_customer_id("2", "cus_two")  # type: ignore[union-attr]
    make_due(metered)
    assert send(metered).sent == 1
    (form,) = meter_requests(stripe_api)
    assert form["payload[stripe_customer_id]"] == "cus_two"
    (row,) = usage_rows(metered)
    assert (row["status"], row["customer_id"]) == ("sent", "cus_two")


def test_the_meters_customer_mapping_key_is_configurable(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_BILLING_USAGE_CUSTOMER_KEY": "cust"})
    host.add_user(1, stripe_customer_id="cus_test")
    accept_meter_events(stripe_api)
    report(host, 1, 1)
    send(host)
    (form,) = meter_requests(stripe_api)
    assert form["payload[cust]"] == "cus_test"
    assert "payload[stripe_customer_id]" not in form


def test_rows_are_sent_in_batches_of_the_configured_size(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_BILLING_USAGE_BATCH_SIZE": 2})
    host.add_user(1, stripe_customer_id="cus_test")
    accept_meter_events(stripe_api)
    for number in range(5):
        report(host, 1, 1, identifier=f"b{number}")
    with host.app.app_context():
        assert host.billing.send_usage(limit=3).sent == 3  # two batches: 2, then 1
    assert send(host).sent == 2
    identifiers = sorted(form["identifier"] for form in meter_requests(stripe_api))
    assert identifiers == [f"b{number}" for number in range(5)]


def test_sending_needs_an_api_key(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.add_user(1, stripe_customer_id="cus_test")
    report(host, 1, 1)
    result = cli(host, "usage", "send")
    assert result.exit_code == 1
    assert "Stripe billing is not configured" in result.output
    assert usage_rows(host)[0]["status"] == "pending"


def test_flask_billing_usage_lists_rows_with_counts(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.add_callback(
        responses.POST,
        METER_EVENTS,
        callback=lambda request: (
            (400, {}, '{"error": {"message": "No such customer"}}')
            if "bad" in request.body
            else (200, {}, '{"object": "billing.meter_event"}')
        ),
    )
    report(metered, 1, 1, identifier="good")
    report(metered, 1, 1, identifier="bad")
    report(metered, 2, 1, identifier="later")

    sent = cli(metered, "usage", "send")

    assert sent.exit_code == 0, sent.output
    assert sent.output == ("1 row sent, 1 failed, 0 to retry, 1 waiting for a Stripe customer\n")
    listing = cli(metered, "usage")
    assert listing.exit_code == 0, listing.output
    assert listing.output.splitlines()[0] == "1 pending, 1 sent, 1 failed"
    assert "HTTP 400: No such customer" in listing.output
    failed = cli(metered, "usage", "--status", "failed")
    (line,) = failed.output.splitlines()[1:]
    assert "  failed   api_calls  1  user 1  cus_test  bad  HTTP 400: No such customer" in line


def test_usage_remaining_counts_this_periods_rows_against_the_plans_quota(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"STRIPE_BILLING_USAGE_QUOTAS": '{"pro": {"api_calls": 100}}'})
    period_end = NOW + timedelta(days=10)
    host.add_user(1, stripe_customer_id="cus_test", plan="pro", current_period_end=period_end)
    host.add_user(2, plan="free")
    report(host, 1, 30)
    report(host, 1, 25, timestamp=NOW - timedelta(minutes=1))
    # Before the period started (a month before its end): not counted.
    with host.app.app_context():
        table = host.db.metadata.tables[USAGE_TABLE]
        host.billing.report_usage(1, "api_calls", 1000, identifier="old")
        host.db.session.execute(
            table.update()
            .where(table.c.identifier == "old")
            .values(timestamp=period_end - timedelta(days=40))
        )
        host.db.session.commit()
    with host.app.app_context():
        assert host.billing.usage_remaining(1, "api_calls") == 45
        assert host.billing.usage_remaining(1, "other_meter") is None
        assert host.billing.usage_remaining(2, "api_calls") is None
        host.billing.report_usage(1, "api_calls", 100)
        assert host.billing.usage_remaining(1, "api_calls") == 0  # never below zero


def test_a_store_without_a_usage_table_refuses_clearly(make_host: Callable[..., Host]) -> None:
    class NoUsage(InMemoryUserStore):
        add_usage = None  # type: ignore[assignment]
        claim_usage = save_usage = list_usage = count_usage = usage_total = None

    app = Flask(__name__)
    billing = StripeBilling(app, user_store=NoUsage([BillingAccount(user_id="1", email=None)]))
    with app.app_context(), pytest.raises(UsageNotKeptError, match="keeps no usage") as raised:
        billing.report_usage("1", "api_calls", 1)
    assert raised.value.details == {"service": "database", "missing": ["UsageLog"]}


def test_the_memory_store_reports_and_sends(stripe_api: responses.RequestsMock) -> None:
    app = Flask(__name__)
    app.config["STRIPE_API_KEY"] = API_KEY
    store = InMemoryUserStore([BillingAccount(user_id="1", email=None, stripe_customer_id="cus_m")])
    billing = StripeBilling(app, user_store=store)
    accept_meter_events(stripe_api)
    with app.app_context():
        with pytest.raises(RuntimeError), store.transaction():
            billing.report_usage("1", "api_calls", 1, identifier="rolled_back")
            raise RuntimeError("the host's work failed")
        billing.report_usage("1", "api_calls", 2, identifier="m1")
        billing.report_usage("1", "api_calls", 2, identifier="m1")
        assert billing.send_usage().sent == 1
    assert [(r.identifier, r.status) for r in store.usage] == [("m1", "sent")]
    (form,) = meter_requests(stripe_api)
    assert (form["identifier"], form["payload[stripe_customer_id]"]) == ("m1", "cus_m")


def test_the_after_request_flush_sends_what_the_request_reported(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_BILLING_USAGE_FLUSH": "1"})
    host.add_user(1, stripe_customer_id="cus_test")
    accept_meter_events(stripe_api)

    @host.app.post("/api/work")
    def work() -> str:
        host.billing.report_usage(1, "api_calls", 1, identifier="flushed")
        host.db.session.commit()
        return "done"

    @host.app.get("/api/idle")
    def idle() -> str:
        return "idle"

    host.client.get("/api/idle").close()
    assert meter_requests(stripe_api) == []
    response = host.client.post("/api/work")
    assert response.status_code == 200
    response.close()
    assert [form["identifier"] for form in meter_requests(stripe_api)] == ["flushed"]
    assert usage_rows(host)[0]["status"] == "sent"


def test_without_the_flush_a_request_sends_nothing(
    metered: Host, stripe_api: responses.RequestsMock
) -> None:
    accept_meter_events(stripe_api)

    @metered.app.post("/api/work")
    def work() -> str:
        metered.billing.report_usage(1, "api_calls", 1)
        metered.db.session.commit()
        return "done"

    metered.client.post("/api/work").close()
    assert meter_requests(stripe_api) == []
    assert usage_rows(metered)[0]["status"] == "pending"


def test_the_usage_table_is_in_the_printed_schema(metered: Host) -> None:
    result = cli(metered, "schema", "--dialect", "postgresql")
    assert result.exit_code == 0, result.output
    assert f"CREATE TABLE {USAGE_TABLE} (" in result.output
    assert "identifier VARCHAR(100) NOT NULL" in result.output
    with metered.app.app_context():
        assert sa.inspect(metered.db.engine).has_table(USAGE_TABLE)


def test_a_store_keeping_usage_in_part_is_refused_at_set_up() -> None:
    class HalfUsage(InMemoryUserStore):
        claim_usage = save_usage = None  # type: ignore[assignment]

    with pytest.raises(StoreContractError) as raised:
        StripeBilling(Flask(__name__), user_store=HalfUsage())
    assert raised.value.missing == ("UsageLog.claim_usage", "UsageLog.save_usage")
    assert 'Usage-based billing"; upgrade step 5' in str(raised.value)
