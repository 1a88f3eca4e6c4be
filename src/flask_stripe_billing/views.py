"""The blueprint: HTTP in and out, nothing else. Views raise; one handler answers."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import BillingError, NotConfiguredError, PayloadTooLargeError
from .extension import get_state
from .webhook import announce, process_event, read_event, verify_signature

logger = logging.getLogger("flask_stripe_billing")


def create_blueprint() -> Blueprint:
    """A new blueprint with the billing routes (one per extension object)."""
    blueprint = Blueprint("stripe_billing", __name__)
    blueprint.add_url_rule("/stripe/webhook", view_func=webhook, methods=["POST"])
    blueprint.register_error_handler(BillingError, error_response)
    return blueprint


def webhook() -> Response:
    """Receive a Stripe event: verify → parse → record and apply → signal."""
    state = get_state()
    settings = state.settings
    if not settings.webhook_secrets:
        raise NotConfiguredError(["STRIPE_WEBHOOK_SECRET"])
    body = read_body(settings.max_webhook_bytes)
    verify_signature(
        body,
        request.headers.get("Stripe-Signature"),
        settings.webhook_secrets,
        settings.webhook_tolerance,
    )
    event = read_event(body)
    outcome = process_event(
        event, body.decode("utf-8"), state.user_store, state.event_log, settings
    )
    logger.info(
        "Stripe webhook received",
        extra={
            "event_id": event.id,
            "event_type": event.type,
            "customer_id": event.customer_id,
            "status": outcome.status,
        },
    )
    announce(current_app._get_current_object(), outcome)  # type: ignore[attr-defined]
    return jsonify(received=True)


def read_body(limit: int) -> bytes:
    """The raw request body (signatures are over the exact bytes), at most ``limit``."""
    too_large = PayloadTooLargeError(f"Webhook body is larger than {limit} bytes", {"limit": limit})
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    request.max_content_length = limit
    try:
        return request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise too_large from None


def error_response(error: BillingError) -> tuple[Response, int]:
    """The JSON answer for any :class:`BillingError`."""
    return jsonify(error.to_dict()), error.status_code
