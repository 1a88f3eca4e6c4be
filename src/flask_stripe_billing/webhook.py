"""A webhook delivery's first steps: verify its signature, parse its event.

Nothing here knows Flask's request object; the pipeline hands it the raw body.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe

from .errors import ValidationError
from .events import EventParseError, StripeEvent, parse_event
from .payload_limits import check_storable, load_json
from .signature_window import check_not_future

logger = logging.getLogger("flask_stripe_billing")


def verify_signature(
    body: bytes, header: str | None, secrets: tuple[str, ...], tolerance: int
) -> str:
    """Check the ``Stripe-Signature`` header against each secret with stripe-python.

    Returns the verified body as text (what the event log stores).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("Invalid webhook signature: body is not UTF-8") from None
    if not header:
        raise ValidationError("Invalid webhook signature: no Stripe-Signature header")
    failure: stripe.SignatureVerificationError | None = None
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
            check_not_future(header, tolerance)
            return text
        except stripe.SignatureVerificationError as error:
            failure = error
            # stripe-python checks the signature before the timestamp: this secret
            # matched, the event is stale; report that, not the other secrets' miss.
            if str(error.user_message).startswith("Timestamp outside"):
                break
    reason = failure.user_message if failure is not None else "no secret"
    logger.warning("Stripe webhook signature rejected: %s", reason)
    raise ValidationError(f"Invalid webhook signature: {reason}")


def read_event(body: str | bytes) -> StripeEvent:
    """Decode a verified body into a :class:`StripeEvent`."""
    try:
        payload: Any = load_json(body)
    except ValueError as error:
        raise ValidationError(f"Webhook error: body is not valid JSON ({error})") from None
    try:
        check_storable(payload, body if isinstance(body, str) else None)
        return parse_event(payload)
    except EventParseError as error:
        raise ValidationError(f"Webhook error: {error}") from None
