"""The webhook routes: snapshot events and thin notifications, handed to the pipeline."""

from __future__ import annotations

import logging

from flask import Response, jsonify, request

from ..errors import (
    NotConfiguredError,
)
from ..pipeline.intake import SNAPSHOT, THIN, receive
from ..state import app_object, get_state
from .http import read_body

logger = logging.getLogger("flask_stripe_billing")


def webhook() -> Response:
    """Receive a Stripe event: verify → parse → record and apply → signal."""
    state = get_state()
    settings = state.settings
    if not settings.webhook_secrets:
        raise NotConfiguredError(["STRIPE_WEBHOOK_SECRET"])
    state.schema.require()
    body = read_body(settings.max_webhook_bytes)
    outcome = receive(state, app_object(), body, request.headers.get("Stripe-Signature"), SNAPSHOT)
    if logger.isEnabledFor(logging.INFO):  # the extra fields are not built for nothing
        event = outcome.event
        logger.info(
            "Stripe webhook received",
            extra={
                "event_id": event.id,
                "event_type": event.type,
                "customer_id": event.customer_id,
                "status": outcome.status,
            },
        )
    return jsonify(received=True)


def thin_webhook() -> Response:
    """Receive a thin event notification: verify → record → fetch its object → apply → signal.

    200 once the notification is recorded, also when its object could not be
    fetched (it stays ``received`` for replay); 5xx only when nothing was recorded.
    """
    state = get_state()
    settings = state.settings
    missing = [
        name
        for name, value in (
            ("STRIPE_THIN_WEBHOOK_SECRET", settings.thin_webhook_secrets),
            ("STRIPE_API_KEY", state.stripe),
        )
        if not value
    ]
    if missing:
        raise NotConfiguredError(missing)
    state.schema.require()
    body = read_body(settings.max_webhook_bytes)
    signature = request.headers.get("Stripe-Signature")
    outcome = receive(state, app_object(), body, signature, THIN)
    logger.info(
        "Stripe thin event received",
        extra={
            "event_id": outcome.event.id,
            "event_type": outcome.event.type,
            "customer_id": outcome.event.customer_id,
            "status": outcome.status,
        },
    )
    return jsonify(received=True)
