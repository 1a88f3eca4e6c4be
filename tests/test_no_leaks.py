"""No secret, payload or SQL parameter in a log line, a stored error, an answer or a repr."""

from __future__ import annotations

import logging
from collections.abc import Iterator

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
