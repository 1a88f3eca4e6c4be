"""A delivery's way in, snapshot and thin alike: verify its signature, read it, then
run it inline or record it and hand it over (dispatch mode); and a stored event
read back in (replay, dispatch workers)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import stripe

from ..config import Settings
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

#: What a delivery is read into: a snapshot event or a thin notification.
Delivery = TypeVar("Delivery", StripeEvent, ThinNotification)


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


@dataclass(frozen=True)
class Kind(Generic[Delivery]):
    """A kind of delivery: which secrets sign it, what it parses into, how the log keeps it,
    and how it runs."""

    secrets: Callable[[Settings], tuple[str, ...]]
    parse: Callable[[Any], Delivery]
    logged: Callable[[Delivery], StripeEvent]
    run: Callable[[BillingState, Any, Delivery, str], Outcome]


#: Snapshot events: the webhook route's deliveries.
SNAPSHOT: Kind[StripeEvent] = Kind(
    lambda settings: settings.webhook_secrets, parse_event, lambda event: event, run
)


#: Thin event notifications: the thin-event route's deliveries (the object is fetched).
THIN: Kind[ThinNotification] = Kind(
    lambda settings: settings.thin_webhook_secrets,
    parse_notification,
    ThinNotification.as_logged,
    run_notification,
)


def read_delivery(body: str | bytes, kind: Kind[Delivery]) -> Delivery:
    """Decode a verified body into a delivery of ``kind`` (400 when it is none)."""
    try:
        payload: Any = load_json(body)
    except ValueError as error:
        raise ValidationError(f"Webhook error: body is not valid JSON ({error})") from None
    try:
        check_storable(payload, body if isinstance(body, str) else None)
        return kind.parse(payload)
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


def receive(
    state: BillingState, app: Any, body: bytes, signature: str | None, kind: Kind[Delivery]
) -> Outcome:
    """A delivery of ``kind``: verify with its signing secrets → parse → run (dispatch mode:
    record, then hand over; a worker runs it, fetching a thin one's object)."""
    settings = state.settings
    payload = verify_signature(body, signature, kind.secrets(settings), settings.webhook_tolerance)
    delivery = read_delivery(payload, kind)
    if state.dispatch is None:
        return kind.run(state, app, delivery, payload)
    logged = kind.logged(delivery)
    outcome = record_for_dispatch(state, logged, payload)
    if outcome.status == EventStatus.RECEIVED:
        hand_over(state, logged)
    announce(app, outcome)
    return outcome


def run_stored(state: BillingState, app: Any, event_id: str) -> Outcome:
    """Run a stored event again, snapshot or thin (replay, dispatch workers); a thin one
    has its object fetched again. A finished event is a duplicate."""
    with state.event_log.transaction():
        record = state.event_log.get_event(event_id)
    if record is None:
        raise LookupError(f"no stored event {event_id!r}")
    if is_thin(load_json(record.payload)):
        return _run_stored(state, app, record.payload, THIN)
    return _run_stored(state, app, record.payload, SNAPSHOT)


def _run_stored(state: BillingState, app: Any, payload: str, kind: Kind[Delivery]) -> Outcome:
    return kind.run(state, app, read_delivery(payload, kind), payload)
