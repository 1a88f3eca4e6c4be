"""No secret, payload or SQL parameter in a log line, a stored error, an answer or a repr."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ON_POSTGRES, Host
from support import post_event, subscription_event

MARKER = "payload_marker_4711"


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the log records carry: messages, extra fields and formatted tracebacks."""
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    texts = []
    for record in caplog.records:
        texts.append(handler.format(record))
        texts.extend(str(value) for value in vars(record).values())
    return "\n".join(texts)


def refuse(host: Host, table: str, operation: str) -> None:
    """Make the database refuse every ``operation`` (INSERT, UPDATE) on ``table``."""
    with host.app.app_context(), host.db.engine.begin() as connection:
        if ON_POSTGRES:
            connection.execute(
                sa.text(
                    "CREATE OR REPLACE FUNCTION refuse_in_test() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                sa.text(
                    f"CREATE TRIGGER refuse_{operation.lower()} BEFORE {operation} ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_in_test()"
                )
            )
        else:
            connection.execute(
                sa.text(
                    f"CREATE TRIGGER refuse_{operation.lower()} BEFORE {operation} ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def test_event_log_insert_failure_logs_no_payload_and_no_sql(
    host: Host, logs: pytest.LogCaptureFixture
) -> None:
    refuse(host, "stripe_billing_events", "INSERT")
    event = subscription_event(event_id="evt_refused")
    event["data"]["object"]["metadata"] = {"note": MARKER}

    response = post_event(host.client, event)

    assert response.status_code == 503
    assert response.get_json()["error"] == "external_service_error"
    text = logged_text(logs)
    assert "Stripe webhook could not be recorded" in text
    assert "refused by the test" in text  # the driver's short reason is kept
    assert MARKER not in text
    assert "[parameters" not in text
    assert "INSERT INTO" not in text
    assert MARKER not in response.get_data(as_text=True)
    assert host.events() == []


def test_account_update_failure_stores_and_logs_no_sql_parameters(
    host: Host, logs: pytest.LogCaptureFixture
) -> None:
    refuse(host, "users", "UPDATE")
    event = subscription_event(event_id="evt_update_refused", subscription=f"sub_{MARKER}")

    response = post_event(host.client, event)

    assert response.status_code == 200
    [row] = host.events()
    assert row["status"] == "failed"
    assert "refused by the test" in row["error"]
    assert MARKER not in row["error"]
    assert "[parameters" not in row["error"]
    assert "UPDATE" not in row["error"]
    text = logged_text(logs)
    assert "Stripe webhook processing failed" in text
    assert MARKER not in text
    assert "[parameters" not in text
    assert host.user(1).plan == "free"


def test_sqlalchemy_error_description_is_the_drivers_first_line() -> None:
    from flask_stripe_billing.redact import describe_error, describe_traceback

    engine = sa.create_engine("sqlite://")
    with engine.connect() as connection:
        connection.execute(sa.text("CREATE TABLE t (id TEXT PRIMARY KEY)"))
        connection.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": MARKER})
        try:
            connection.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": MARKER})
        except sa.exc.IntegrityError as error:
            caught: Exception = error
    assert MARKER in str(caught)  # what SQLAlchemy itself would have logged

    assert describe_error(caught) == (
        "IntegrityError: IntegrityError: UNIQUE constraint failed: t.id"
    )
    assert MARKER not in describe_traceback(caught)
    assert describe_traceback(caught).endswith(
        "sqlalchemy.exc.IntegrityError: IntegrityError: UNIQUE constraint failed: t.id"
    )


# Secrets: never in a repr, a log line, a stored row, an answer or the CLI's output

API_KEY = "sk_test_51LeakCheckKeyABCDEFGHIJKLMN0123"
SIGNING_SECRETS = ("whsec_leakcheck_primary_0001", "whsec_leakcheck_rotated_0002")
EVERY_SECRET = (API_KEY, *SIGNING_SECRETS)
API = "https://api.stripe.com/v1"
SECRET_CONFIG = {
    "STRIPE_API_KEY": API_KEY,
    "STRIPE_WEBHOOK_SECRET": ",".join(SIGNING_SECRETS),
    "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
    "STRIPE_SUCCESS_URL": "https://app.example.com/billing/success",
    "STRIPE_CANCEL_URL": "https://app.example.com/pricing",
}


#: Stripe's own answer to a refused key masks it (stripe-python logs the answer verbatim).
STRIPE_MASKED_KEY_MESSAGE = "Invalid API Key provided: sk_test_************************0123"


def assert_no_secret(text: str, where: str) -> None:
    for secret in EVERY_SECRET:
        assert secret not in text, f"{where} shows {secret[:8]}...: {text[:300]}"


def test_reprs_of_settings_state_extension_and_gateway_show_no_secret(
    make_host: Callable[..., Host],
) -> None:
    from flask_stripe_billing import Settings

    host = make_host(SECRET_CONFIG)
    state = host.app.extensions["stripe_billing"]

    for name, value in {
        "Settings": state.settings,
        "state": state,
        "app.extensions": host.app.extensions,
        "extension": host.billing,
        "gateway": state.stripe,
        "StripeClient": state.stripe.client,
        "Settings.from_config": Settings.from_config(SECRET_CONFIG, environ={}),
    }.items():
        assert_no_secret(repr(value), f"repr({name})")
        assert_no_secret(str(value), f"str({name})")
        assert_no_secret(f"{value!r:>10}", f"format({name})")

    # What it shows instead: that a key is set, its kind, mode and last four.
    assert "api_key='sk_test_...0123'" in repr(state.settings)
    assert "webhook_secrets=<2 signing secrets>" in repr(state.settings)
    assert "api_key=None" in repr(Settings())


def test_a_full_run_shows_no_secret_in_logs_rows_answers_or_cli_output(
    make_host: Callable[..., Host], logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests
    import responses
    from flask import request
    from support import sign

    from flask_stripe_billing import signals

    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    host = make_host(SECRET_CONFIG, current_user_id=lambda: request.headers.get("X-User"))
    host.add_user(1, stripe_customer_id="cus_test")
    host.add_user(2)
    answers: list[str] = []

    def answer(response: Any) -> Any:
        answers.append(response.get_data(as_text=True))
        return response

    def careless_receiver(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"receiver failed while using {API_KEY}")

    signals.plan_changed.connect(careless_receiver)
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as stripe_api:
            # Webhooks: processed (with the rotated secret), a receiver failing, bad signatures.
            event = subscription_event(event_id="evt_leak_ok")
            assert (
                answer(post_event(host.client, event, secret=SIGNING_SECRETS[1])).status_code == 200
            )
            assert answer(post_event(host.client, event, secret="whsec_wrong")).status_code == 400
            body = b'{"id": "evt_x"}'
            stale = {"Stripe-Signature": sign(body, SIGNING_SECRETS[0], 1_000_000_000)}
            assert (
                answer(host.client.post("/stripe/webhook", data=body, headers=stale)).status_code
                == 400
            )
            assert answer(host.client.get("/stripe/webhook")).status_code == 405

            # Checkout: one that works, one whose key Stripe refuses (quoting it), no user.
            stripe_api.add(
                responses.POST, f"{API}/customers", json={"id": "cus_new", "object": "customer"}
            )
            stripe_api.add(
                responses.POST,
                f"{API}/checkout/sessions",
                json={
                    "id": "cs_1",
                    "object": "checkout.session",
                    "url": "https://checkout.stripe.com/x",
                },
            )
            ok = host.client.post("/billing/checkout-session", json={}, headers={"X-User": "2"})
            assert answer(ok).status_code == 200
            stripe_api.replace(
                responses.POST,
                f"{API}/checkout/sessions",
                status=401,
                json={
                    "error": {
                        "type": "invalid_request_error",
                        "message": STRIPE_MASKED_KEY_MESSAGE,
                    }
                },
            )
            refused = host.client.post(
                "/billing/checkout-session", json={}, headers={"X-User": "2"}
            )
            assert answer(refused).status_code == 502
            assert answer(host.client.post("/billing/checkout-session", json={})).status_code == 401
            stripe_api.add(
                responses.POST,
                f"{API}/billing_portal/sessions",
                body=requests.exceptions.ReadTimeout("timed out"),
            )
            assert (
                answer(host.client.get("/billing/portal", headers={"X-User": "1"})).status_code
                == 502
            )

            # The CLI's check, offline and online (Stripe refusing the key, quoting it).
            stripe_api.add(
                responses.GET,
                f"{API}/balance",
                status=401,
                json={
                    "error": {
                        "type": "invalid_request_error",
                        "message": STRIPE_MASKED_KEY_MESSAGE,
                    }
                },
            )
            runner = host.app.test_cli_runner()
            outputs = [
                runner.invoke(args=["billing", "check"]).output,
                runner.invoke(args=["billing", "check", "--online"]).output,
            ]

            # A failure stored in the event log: the database refuses the account update.
            refuse(host, "users", "UPDATE")
            failing = subscription_event(event_id="evt_leak_failed", status="canceled")
            assert (
                answer(post_event(host.client, failing, secret=SIGNING_SECRETS[0])).status_code
                == 200
            )
    finally:
        signals.plan_changed.disconnect(careless_receiver)

    rows = host.events()  # before another host: on PostgreSQL it shares (and drops) the tables
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    unconfigured = make_host({"STRIPE_WEBHOOK_SECRET": ""})
    assert answer(post_event(unconfigured.client, subscription_event())).status_code == 503

    assert {row["id"]: row["status"] for row in rows} == {
        "evt_leak_ok": "processed",
        "evt_leak_failed": "failed",
    }
    assert any("receiver failed while using [redacted]" in r.getMessage() for r in logs.records)
    for number, text in enumerate(answers):
        assert_no_secret(text, f"answer {number}")
    for row in rows:
        assert_no_secret(repr(row), f"event row {row['id']}")
    assert_no_secret(logged_text(logs), "the log")
    for number, output in enumerate(outputs):
        assert_no_secret(output, f"flask billing check output {number}")
