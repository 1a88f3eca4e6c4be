"""Sign and post events the way Stripe does: for ``flask billing trigger`` and tests.

Nothing here calls Stripe; the signature is made by stripe-python itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import stripe
from flask import Flask

if TYPE_CHECKING:
    from flask.testing import FlaskClient
    from werkzeug.test import TestResponse
from ..state import get_state
from .webhooks import thin_webhook, webhook


def sign_payload(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send with ``payload``.

    Signed by stripe-python itself (``WebhookSignature.generate_signature_header``);
    ``timestamp`` defaults to now.
    """
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    header = stripe.WebhookSignature.generate_signature_header(text, secret, timestamp)
    return str(header)


def webhook_path(app: Flask) -> str:
    """The path of the extension's webhook on ``app`` (``/stripe/webhook`` unless prefixed)."""
    return _path_of(app, webhook)


def thin_webhook_path(app: Flask) -> str:
    """The path of the thin-event endpoint on ``app`` (``/stripe/thin-webhook`` unless
    prefixed)."""
    return _path_of(app, thin_webhook)


def _path_of(app: Flask, target: object) -> str:
    for endpoint, view in app.view_functions.items():
        if view is target:
            return next(app.url_map.iter_rules(endpoint)).rule
    raise RuntimeError("StripeBilling's blueprint is not registered on this app")


def post_stripe_event(
    client: FlaskClient,
    event: Mapping[str, Any] | bytes | str,
    *,
    secret: str | None = None,
    path: str | None = None,
    timestamp: int | None = None,
) -> TestResponse:
    """POST ``event`` to the app's webhook, signed as Stripe signs it.

    ``secret`` defaults to the app's first ``STRIPE_WEBHOOK_SECRET``, ``path``
    to the extension's webhook route (also under a ``url_prefix``). A dict is
    sent as JSON; bytes or text are sent as they are.
    """
    app = client.application
    if secret is None:
        configured = get_state(app).settings.webhook_secrets
        if not configured:
            raise RuntimeError(
                "STRIPE_WEBHOOK_SECRET is not set on this app: set it in the test "
                "config, or pass secret=..."
            )
        secret = configured[0]
    if isinstance(event, Mapping):
        body = json.dumps(event).encode()
    else:
        body = event.encode() if isinstance(event, str) else event
    return client.post(
        path or webhook_path(app),
        data=body,
        headers={"Stripe-Signature": sign_payload(body, secret, timestamp)},
        content_type="application/json",
    )
