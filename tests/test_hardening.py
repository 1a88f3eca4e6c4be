"""Every request gets a JSON answer, decided before anything is written.

Bodies that cannot be read, cannot be a Stripe event or would not fit the
event log are 4xx JSON, never a 500 page or a 503 that Stripe retries forever.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Host
from flask import Request
from support import post_event, sign, subscription_event

TESTS = Path(__file__).resolve().parent
WEBHOOK = "/stripe/webhook"


def assert_error(response: Any, status: int, code: str, message_prefix: str = "") -> dict[str, Any]:
    """The answer is the design's JSON error, with this status, code and message prefix."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == code
    assert body["message"].startswith(message_prefix), body["message"]
    assert isinstance(body["details"], dict)
    return body


def assert_untouched(host: Host) -> None:
    """No event recorded and user 1 as the ``host`` fixture made it."""
    assert host.events() == []
    user = host.user(1)
    assert (user.plan, user.stripe_customer_id, user.stripe_subscription_id) == (
        "free",
        "cus_test",
        None,
    )


# Flask 3.0: no per-request body limit


def test_webhook_works_on_flask_3_0_where_max_content_length_cannot_be_set(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flask 3.0's Request.max_content_length is a read-only property (settable from 3.1 on).
    read_only = property(lambda request: host.app.config["MAX_CONTENT_LENGTH"])
    monkeypatch.setattr(Request, "max_content_length", read_only)

    response = post_event(host.client, subscription_event(event_id="evt_flask30"))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"received": True}
    assert [row["id"] for row in host.events()] == ["evt_flask30"]
    assert host.user(1).plan == "pro"


def test_webhook_limit_wins_over_the_apps_max_content_length(
    make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = make_host({"MAX_CONTENT_LENGTH": 100})
    host.add_user(1, stripe_customer_id="cus_test")
    read_only = property(lambda request: host.app.config["MAX_CONTENT_LENGTH"])
    monkeypatch.setattr(Request, "max_content_length", read_only)

    response = post_event(host.client, subscription_event(event_id="evt_large"))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert [row["id"] for row in host.events()] == ["evt_large"]


# A real server: malformed chunked bodies, from anyone


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """gunicorn serving hardening_wsgi on a free port of 127.0.0.1; its port and database."""
    folder = tmp_path_factory.mktemp("gunicorn")
    database = folder / "app.db"
    port = free_port()
    env = {**os.environ, "HARDENING_DATABASE_URL": f"sqlite:///{database}"}
    command = [
        *(sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}"),
        *("--chdir", str(TESTS), "--log-level", "warning", "hardening_wsgi:app"),
    ]
    with (folder / "gunicorn.log").open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, (folder / "gunicorn.log").read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "gunicorn did not start within 30 s"
                    time.sleep(0.05)
            yield port, database
        finally:
            server.terminate()
            server.wait(timeout=10)


def raw_post(port: int, head_extra: bytes, body: bytes, *, half_close: bool = False) -> Any:
    """Send a hand-made chunked POST to the webhook; the parsed answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /stripe/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n" + head_extra + b"\r\n" + body
        )
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.getheader("Content-Type"), response.read()


@pytest.mark.parametrize(
    "body, half_close",
    [
        pytest.param(b"zz\r\n{}\r\n0\r\n\r\n", False, id="chunk size not hex"),
        pytest.param(b"2\r\n{}XX0\r\n\r\n", False, id="chunk without its CRLF"),
        pytest.param(b'400\r\n{"id": ', True, id="cut short"),
    ],
)
def test_malformed_chunked_body_under_gunicorn_is_a_400_json(
    gunicorn: tuple[int, Path], body: bytes, half_close: bool
) -> None:
    port, database = gunicorn

    status, content_type, answer = raw_post(port, b"", body, half_close=half_close)

    assert (status, content_type) == (400, "application/json"), answer
    assert answer.startswith(b'{"details":{},"error":"validation_error"'), answer
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        assert (
            connection.execute(sa.text("SELECT count(*) FROM stripe_billing_events")).scalar() == 0
        )
    engine.dispose()


def test_signed_chunked_body_under_gunicorn_is_recorded(gunicorn: tuple[int, Path]) -> None:
    port, database = gunicorn
    payload = post_body(subscription_event(event_id="evt_chunked"))
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:100], payload[100:])
    )
    head = b"Stripe-Signature: " + sign(payload).encode() + b"\r\n"

    status, content_type, answer = raw_post(port, head, chunked + b"0\r\n\r\n")

    assert (status, content_type, answer) == (200, "application/json", b'{"received":true}\n')
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, status FROM stripe_billing_events")).all()
        plan = connection.execute(sa.text("SELECT plan FROM users WHERE id = 1")).scalar()
    engine.dispose()
    assert [tuple(row) for row in rows] == [("evt_chunked", "processed")]
    assert plan == "pro"


def post_body(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


# Signed bodies that cannot be stored: 400, nothing written

YEAR_10000 = 253_402_300_800


def with_created(created: int) -> dict[str, Any]:
    return subscription_event(created=created)


def with_metadata(value: Any) -> dict[str, Any]:
    event = subscription_event()
    event["data"]["object"]["metadata"] = {"note": value}
    return event


def with_top(**fields: Any) -> dict[str, Any]:
    event = subscription_event()
    event.update(fields)
    return event


UNSTORABLE_EVENTS: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "created 10**20": (lambda: with_created(10**20), "created is not a Unix time"),
    "created in the year 10000": (lambda: with_created(YEAR_10000), "created is not a Unix time"),
    "created negative": (lambda: with_created(-1), "created is not a Unix time"),
    "created zero": (lambda: with_created(0), "created is not a Unix time"),
    "period end 10**20": (
        lambda: subscription_event(period_end=10**20),
        "current_period_end is not a Unix time",
    ),
    "period end on the items, year 10000 (basil)": (
        lambda: subscription_event(layout="basil", period_end=YEAR_10000),
        "current_period_end is not a Unix time",
    ),
    "event id of 256 characters": (
        lambda: with_top(id="evt_" + "x" * 252),
        "id is longer than 255 characters",
    ),
    "type of 101 characters": (
        lambda: with_top(type="customer.subscription." + "x" * 79),
        "type is longer than 100 characters",
    ),
    "customer id of 256 characters": (
        lambda: subscription_event(customer="cus_" + "x" * 252),
        "customer is longer than 255 characters",
    ),
    "subscription status of 51 characters": (
        lambda: subscription_event(status="a" * 51),
        "status is longer than 50 characters",
    ),
    "NUL in the event id": (lambda: with_top(id="evt_\x00"), "id holds a NUL character"),
    "NUL in the customer id": (
        lambda: subscription_event(customer="cus_\x00"),
        "customer holds a NUL character",
    ),
    "NUL in metadata": (lambda: with_metadata("a\x00b"), "note holds a NUL character"),
    "lone surrogate in metadata": (lambda: with_metadata("\ud800"), "note holds a lone surrogate"),
    "lone surrogate in the event id": (
        lambda: with_top(id="evt_\udfff"),
        "id holds a lone surrogate",
    ),
    "lone surrogate in a key": (
        lambda: with_metadata({"\ud800": "x"}),
        "a key holds a lone surrogate",
    ),
    "integer over 64 bits": (lambda: with_metadata(2**64), "note does not fit in 64 bits"),
}


@pytest.mark.parametrize("name", UNSTORABLE_EVENTS)
def test_signed_event_that_cannot_be_stored_is_a_400_and_nothing_is_written(
    host: Host, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    build, reason = UNSTORABLE_EVENTS[name]

    response = post_event(host.client, build())

    assert_error(response, 400, "validation_error", f"Webhook error: {reason}")
    assert_untouched(host)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("body", ["nan", "infinity", "1e999"])
def test_non_finite_numbers_are_a_400(host: Host, body: str) -> None:
    text = json.dumps(with_metadata(0)).replace('"note": 0', f'"note": {body}')
    text = text.replace(": nan", ": NaN").replace(": infinity", ": Infinity")

    response = post_event(host.client, text.encode())

    assert_error(response, 400, "validation_error", "Webhook error: ")
    assert_untouched(host)


@pytest.mark.parametrize("depth", [65, 1_000, 50_000])
def test_deeply_nested_signed_body_is_a_400(host: Host, depth: int) -> None:
    event = subscription_event()
    text = json.dumps(event).replace(
        '"metadata": {}', f'"metadata": {{"note": {deep_object(depth)}}}', 1
    )
    assert deep_object(depth) in text

    response = post_event(host.client, text.encode())

    assert_error(response, 400, "validation_error", "Webhook error: body is not valid JSON")
    assert_untouched(host)


def test_nesting_up_to_the_limit_is_accepted(host: Host) -> None:
    event = subscription_event(event_id="evt_nested")
    # The event object, data, object, metadata: four levels around the note.
    event["data"]["object"]["metadata"] = {"note": json.loads(deep_object(60))}

    response = post_event(host.client, event)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert [row["id"] for row in host.events()] == ["evt_nested"]


@pytest.mark.parametrize(
    "depth, status, code, message",
    [
        (1_000, 400, "validation_error", "Request body must be JSON"),
        (10_000, 400, "validation_error", "Request body must be JSON"),
        (50_000, 413, "payload_too_large", "Request body is larger than 65536 bytes"),
    ],
)
def test_deeply_nested_checkout_body_is_a_4xx_json(
    make_host: Callable[..., Host], depth: int, status: int, code: str, message: str
) -> None:
    host = make_host(
        {"STRIPE_API_KEY": "sk_test_51HardeningKey0000000000", "STRIPE_PRICE_PRO_MONTHLY": "p_m"},
        current_user_id=lambda: "1",
    )
    host.add_user(1)

    response = host.client.post(
        "/billing/checkout-session", data="[" * depth + "]" * depth, content_type="application/json"
    )

    assert_error(response, status, code, message)
    assert host.user(1).stripe_customer_id is None


# Signatures dated in the future


@pytest.mark.parametrize(
    "ahead", [301, 3600, 10 * 365 * 86400], ids=["301 s", "one hour", "ten years"]
)
def test_signature_dated_beyond_the_tolerance_in_the_future_is_refused(
    host: Host, ahead: int, caplog: pytest.LogCaptureFixture
) -> None:
    timestamp = int(time.time()) + ahead

    response = post_event(host.client, subscription_event(), timestamp=timestamp)

    body = assert_error(response, 400, "validation_error", "Invalid webhook signature: ")
    assert body["message"] == (
        "Invalid webhook signature: Timestamp outside the tolerance zone "
        f"({timestamp}, in the future)"
    )
    assert_untouched(host)
    assert "Stripe webhook signature rejected" in caplog.text


def test_future_bound_follows_the_configured_tolerance(make_host: Callable[..., Host]) -> None:
    host = make_host({"STRIPE_WEBHOOK_TOLERANCE": 3600})
    host.add_user(1, stripe_customer_id="cus_test")
    event = subscription_event(event_id="evt_ahead")

    later = post_event(host.client, event, timestamp=int(time.time()) + 3000)
    too_late = post_event(host.client, event, timestamp=int(time.time()) + 3700)

    assert later.status_code == 200
    assert_error(too_late, 400, "validation_error", "Invalid webhook signature: Timestamp")
    assert [row["id"] for row in host.events()] == ["evt_ahead"]


def test_future_signature_with_a_wrong_secret_reports_the_signature(host: Host) -> None:
    body = post_body(subscription_event())
    header = sign(body, "whsec_other", int(time.time()) + 3600)

    response = host.client.post(
        WEBHOOK, data=body, headers={"Stripe-Signature": header}, content_type="application/json"
    )

    body_json = assert_error(response, 400, "validation_error", "Invalid webhook signature: ")
    assert "No signatures found matching the expected signature" in body_json["message"]
    assert_untouched(host)


# Wrong methods: 405 JSON

WRONG_METHODS = [
    *(("/stripe/webhook", method, "POST") for method in ("GET", "PUT", "PATCH", "DELETE")),
    *(("/billing/checkout-session", method, "POST") for method in ("GET", "PUT", "DELETE")),
    *(("/billing/portal", method, "GET") for method in ("POST", "PUT", "DELETE")),
]


@pytest.mark.parametrize("path, method, allowed", WRONG_METHODS)
def test_wrong_method_is_a_405_json_naming_the_allowed_one(
    host: Host, path: str, method: str, allowed: str
) -> None:
    response = host.client.open(path, method=method, data=post_body(subscription_event()))

    body = assert_error(response, 405, "method_not_allowed")
    assert body == {
        "error": "method_not_allowed",
        "message": f"{method} is not allowed on {path}; use {allowed}",
        "details": {"allowed": [allowed]},
    }
    assert response.headers["Allow"] == allowed
    assert_untouched(host)


def test_wrong_method_under_a_prefix_and_with_csrf_protect_is_a_405_json(
    make_host: Callable[..., Host],
) -> None:
    from flask_wtf import CSRFProtect

    host = make_host({"SECRET_KEY": "test"}, url_prefix="/api")
    CSRFProtect(host.app)
    host.add_user(1, stripe_customer_id="cus_test")

    deleted = host.client.delete("/api/stripe/webhook")
    put = host.client.put("/api/billing/checkout-session", json={})
    head = host.client.head("/api/stripe/webhook")
    posted = post_event(
        host.client, subscription_event(event_id="evt_api"), path="/api/stripe/webhook"
    )

    assert_error(deleted, 405, "method_not_allowed", "DELETE is not allowed on /api/stripe/webhook")
    assert_error(put, 405, "method_not_allowed", "PUT is not allowed on /api/billing/checkout")
    assert (head.status_code, head.headers["Allow"]) == (405, "POST")
    assert posted.status_code == 200
    assert [row["id"] for row in host.events()] == ["evt_api"]


def test_the_hosts_own_routes_keep_their_405(host: Host) -> None:
    host.app.add_url_rule("/contact", "contact", lambda: "ok", methods=["POST"])

    response = host.client.get("/contact")

    assert response.status_code == 405
    assert response.mimetype == "text/html"


@pytest.mark.parametrize("interval", [[], {}, ["monthly"], {"a": 1}])
def test_checkout_interval_that_is_not_text_is_a_400(
    make_host: Callable[..., Host], interval: Any
) -> None:
    host = make_host(
        {"STRIPE_API_KEY": "sk_test_51HardeningKey0000000000", "STRIPE_PRICE_PRO_MONTHLY": "p_m"},
        current_user_id=lambda: "1",
    )
    host.add_user(1)

    response = host.client.post("/billing/checkout-session", json={"interval": interval})

    assert_error(response, 400, "validation_error", 'interval must be "monthly" or "yearly"')
    assert host.user(1).stripe_customer_id is None
