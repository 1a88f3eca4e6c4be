"""Every request gets a JSON answer, decided before anything is written.

Bodies that cannot be read, cannot be a Stripe event or would not fit the
event log are 4xx JSON, never a 500 page or a 503 that Stripe retries forever.
"""

from __future__ import annotations

import http.client
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
    import json

    return json.dumps(event).encode()
