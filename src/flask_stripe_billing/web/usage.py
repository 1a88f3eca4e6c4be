"""The opt-in after-request flush: a request that reported usage sends it once the response
is out (``STRIPE_BILLING_USAGE_FLUSH``), for small apps without a worker."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, current_app, g, has_request_context

from ..actions.usage import send_usage
from ..redact import describe_error
from ..state import app_object, get_state

logger = logging.getLogger("flask_stripe_billing")

#: The flag on ``flask.g`` saying this request reported usage.
_REPORTED = "_stripe_billing_usage_reported"


def mark_reported() -> None:
    """Note that the current request (if any) reported usage, for the flush."""
    if has_request_context():
        setattr(g, _REPORTED, True)


def add_usage_flush(blueprint: Blueprint) -> None:
    """Register the flush on every request of the app the blueprint is registered on."""
    blueprint.after_app_request(_after_request)


def _after_request(response: Response) -> Response:
    """Once the response is closed, send pending usage if this request reported some and
    the flush is on (in an app context of its own: the host's session is left alone)."""
    if getattr(g, _REPORTED, False) and get_state().settings.usage_flush_after_request:
        app = app_object()
        response.call_on_close(lambda: flush(app))
    return response


def flush(app: Flask) -> None:
    """One pass of the sender; a failure is logged, never raised (the rows stay pending)."""
    with app.app_context():
        try:
            send_usage(get_state(), current_app._get_current_object())  # type: ignore[attr-defined]
        except Exception as error:
            logger.warning(
                "Sending usage after the request failed: %s",
                describe_error(error),
                extra={"action": "send usage"},
            )
