"""A tiny HTTP server on 127.0.0.1 posing as Stripe's meter-event endpoint, for offline
tests, benchmarks and demos: it answers each ``POST /v1/billing/meter_events`` as Stripe
does and counts the identifiers it saw (Stripe bills a repeated one once)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import stripe
from flask import Flask

from ..state import EXTENSION_KEY, get_state
from ..stripe_api import API_VERSION, PacedRequestsClient, Pacer, StripeGateway


class _QuietServer(ThreadingHTTPServer):
    """A client that went away (a sender killed on purpose) is not an error to print."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class MeterEventStandIn:
    """The server, serving on a thread while in a ``with`` block; ``identifiers`` counts
    each meter event's identifier it received; ``answer`` (an HTTP status) is what it answers
    with (Stripe's meter event for 200, an error otherwise)."""

    def __init__(self) -> None:
        self.identifiers: Counter[str] = Counter()
        self.answer = 200
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Stripe's API
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                identifier = form.get("identifier", [""])[0]
                with standin._lock:
                    status = standin.answer
                    standin.identifiers[identifier] += 1
                if status != 200:
                    self._reply(status, {"error": {"message": "The stand-in refuses"}})
                    return
                self._reply(
                    200,
                    {
                        "object": "billing.meter_event",
                        "created": int(time.time()),
                        "event_name": form.get("event_name", [""])[0],
                        "identifier": identifier,
                        "livemode": False,
                        "payload": {},
                        "timestamp": int(form.get("timestamp", ["0"])[0]),
                    },
                )

            def _reply(self, status: int, answer: dict[str, Any]) -> None:
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Request-Id", "req_standin")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where it listens: ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MeterEventStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def point_stripe_at(app: Flask, url: str, api_key: str = "sk_test_standin") -> None:
    """Make ``app``'s calls to Stripe's API go to ``url`` (a stand-in on 127.0.0.1), paced
    as they would be."""
    state = get_state(app)
    settings = state.settings
    key = settings.api_key or api_key
    gateways = {
        "stripe": StripeGateway(key, settings),
        "usage_stripe": StripeGateway(key, settings, pacer=Pacer(settings.usage_rate)),
    }
    for gateway in gateways.values():
        gateway.client = stripe.StripeClient(
            key,
            stripe_version=API_VERSION,
            base_addresses={"api": url},
            max_network_retries=settings.api_max_retries,
            http_client=PacedRequestsClient(
                gateway.pacer,
                settings.api_deadline,
                timeout=(settings.api_connect_timeout, settings.api_read_timeout),
            ),
        )
    app.extensions[EXTENSION_KEY] = replace(
        state, stripe=gateways["stripe"], usage_stripe=gateways["usage_stripe"]
    )
