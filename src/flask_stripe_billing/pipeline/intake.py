"""A delivery's way in, snapshot and thin alike: verify its signature, read it, then
run it inline or record it and hand it over (dispatch mode); and a stored event
read back in (replay, dispatch workers)."""

from __future__ import annotations

import logging
import time
from typing import Any

import stripe

from ..core.events import StripeEvent, parse_event
from ..core.limits import check_storable, load_json
from ..core.notifications import ThinNotification, is_thin, parse_notification
from ..core.outcomes import DUPLICATE, RETRYABLE_STATUSES, EventStatus, Outcome
from ..errors import EventParseError, ValidationError
from ..redact import describe_traceback
from ..state import BillingState
from .run import announce, not_recorded, run
from .thin import run_notification

logger = logging.getLogger("flask_stripe_billing")


def check_not_future(header: str, tolerance: int, now: float | None = None) -> None:
    """Refuse a verified ``Stripe-Signature`` whose ``t=`` is over ``tolerance`` s ahead.

    stripe-python only refuses old signatures; a signature dated in the future
    (a wrong clock, or a header made to be replayed later) is refused the same way.
    Call it after ``stripe.WebhookSignature.verify_header`` accepted the header.
    """
    timestamp = _timestamp(header)
    current = time.time() if now is None else now
    if timestamp is not None and timestamp > current + tolerance:
        reason = f"Timestamp outside the tolerance zone ({timestamp}, in the future)"
        logger.warning("Stripe webhook signature rejected: %s", reason)
        raise ValidationError(f"Invalid webhook signature: {reason}")


def _timestamp(header: str) -> int | None:
    """The header's ``t=`` value, read as stripe-python reads it (the first one)."""
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


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


def record_for_dispatch(state: BillingState, event: StripeEvent, payload: str) -> Outcome:
    """Dispatch mode: only store the event for a worker; status ``received`` or duplicate."""
    log = state.event_log
    try:
        with log.transaction():
            record = log.record_event(event, payload)
    except Exception as error:
        raise not_recorded(event, describe_traceback(error)) from None
    if record.status in RETRYABLE_STATUSES:
        return Outcome(event, EventStatus.RECEIVED)
    return Outcome(event, DUPLICATE)


def hand_over(state: BillingState, event: StripeEvent) -> None:
    """Give the event id to the host's queue; if that fails it stays ``received``.

    The event is recorded already, so the answer stays 200; ``flask billing
    replay`` processes it, and Stripe's next delivery of it hands it over again.
    """
    assert state.dispatch is not None
    try:
        state.dispatch(event.id)
    except Exception as error:
        logger.error(
            "Stripe webhook could not be dispatched; it stays received for replay\n%s",
            describe_traceback(error),
            extra={"event_id": event.id, "event_type": event.type},
        )


def receive(state: BillingState, app: Any, body: bytes, signature: str | None) -> Outcome:
    """A webhook delivery: verify → parse → run (dispatch mode: record, then hand over)."""
    settings = state.settings
    payload = verify_signature(
        body, signature, settings.webhook_secrets, settings.webhook_tolerance
    )
    event = read_event(payload)
    if state.dispatch is None:
        return run(state, app, event, payload)
    outcome = record_for_dispatch(state, event, payload)
    if outcome.status == EventStatus.RECEIVED:
        hand_over(state, event)
    announce(app, outcome)
    return outcome


def receive_thin(state: BillingState, app: Any, body: bytes, signature: str | None) -> Outcome:
    """A thin delivery: verify with the thin signing secrets → parse → run (dispatch mode:
    record, then hand over; the worker fetches)."""
    settings = state.settings
    payload = verify_signature(
        body, signature, settings.thin_webhook_secrets, settings.webhook_tolerance
    )
    notification = read_notification(payload)
    if state.dispatch is None:
        return run_notification(state, app, notification, payload)
    logged = notification.as_logged()
    outcome = record_for_dispatch(state, logged, payload)
    if outcome.status == EventStatus.RECEIVED:
        hand_over(state, logged)
    announce(app, outcome)
    return outcome


def read_notification(body: str | bytes) -> ThinNotification:
    """Decode a verified body into a :class:`ThinNotification` (400 when it is none)."""
    try:
        payload: Any = load_json(body)
    except ValueError as error:
        raise ValidationError(f"Webhook error: body is not valid JSON ({error})") from None
    try:
        check_storable(payload)
        return parse_notification(payload)
    except EventParseError as error:
        raise ValidationError(f"Webhook error: {error}") from None


def run_stored(state: BillingState, app: Any, event_id: str) -> Outcome:
    """Run a stored event again, snapshot or thin (replay, dispatch workers); a thin one
    has its object fetched again. A finished event is a duplicate."""
    with state.event_log.transaction():
        record = state.event_log.get_event(event_id)
    if record is None:
        raise LookupError(f"no stored event {event_id!r}")
    decoded = load_json(record.payload)
    if not is_thin(decoded):
        return run(state, app, read_event(record.payload), record.payload)
    return run_notification(state, app, parse_notification(decoded), record.payload)
