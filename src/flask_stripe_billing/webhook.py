"""The webhook pipeline: verify → parse → record → decide → apply → signal.

Nothing here knows Flask's request object; the view hands it the raw body.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import stripe

from . import rules, signals
from .account import AccountChanges, BillingAccount
from .clock import utcnow
from .config import Settings
from .errors import EventNotRecordedError, ValidationError
from .events import EventParseError, StripeEvent, parse_event, with_subscription
from .payload_limits import check_storable, load_json
from .redact import describe_error, describe_traceback
from .stores.base import (
    RETRYABLE_STATUSES,
    EventLog,
    EventStatus,
    StoreUnavailableError,
    UserStore,
)
from .stripe_api import StripeGateway

logger = logging.getLogger("flask_stripe_billing")

#: Status reported for an event seen before (its stored status is left as it was).
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Outcome:
    """What processing one event did."""

    event: StripeEvent
    status: str
    before: BillingAccount | None = None
    after: BillingAccount | None = None
    error: Exception | None = None


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
        check_storable(payload)
        return parse_event(payload)
    except EventParseError as error:
        raise ValidationError(f"Webhook error: {error}") from None


def process_event(
    event: StripeEvent,
    payload: str,
    store: UserStore,
    log: EventLog,
    settings: Settings,
) -> Outcome:
    """Record and apply ``event`` in one transaction; a failure is recorded instead.

    Raises :class:`EventNotRecordedError` only when the event could not be stored,
    so that Stripe delivers it again.
    """
    try:
        with log.transaction():
            return _apply(event, payload, store, log, settings)
    except StoreUnavailableError:
        raise _not_recorded(event, "database unavailable") from None
    except Exception as error:
        # Not logger.exception: the raw traceback may quote a key or signing secret.
        logger.error(
            "Stripe webhook processing failed\n%s",
            describe_traceback(error),
            extra={"event_id": event.id, "event_type": event.type},
        )
        return _record_failure(event, payload, log, error)


def record_for_dispatch(event: StripeEvent, payload: str, log: EventLog) -> Outcome:
    """Dispatch mode: only store the event for a worker; status ``received`` or duplicate."""
    try:
        with log.transaction():
            record = log.record_event(event, payload)
    except Exception as error:
        raise _not_recorded(event, describe_traceback(error)) from None
    if record.status in RETRYABLE_STATUSES:
        return Outcome(event, EventStatus.RECEIVED)
    return Outcome(event, DUPLICATE)


def refresh_subscription(event: StripeEvent, gateway: StripeGateway) -> StripeEvent:
    """Re-fetch mode: the event with its subscription as Stripe's API has it now."""
    if event.subscription is None:
        return event
    return with_subscription(event, gateway.retrieve_subscription(event.subscription.id))


def announce(app: Any, outcome: Outcome) -> None:
    """Send the signals for what happened; call only after the commit."""
    event = outcome.event
    signals.send_safely(signals.webhook_received, app, event=event, status=outcome.status)
    if outcome.status == EventStatus.UNMATCHED:
        signals.send_safely(
            signals.customer_not_found, app, customer_id=event.customer_id, event=event
        )
    elif outcome.status == EventStatus.FAILED:
        signals.send_safely(signals.webhook_failed, app, event=event, error=outcome.error)
    announce_changes(app, outcome)


def announce_changes(app: Any, outcome: Outcome) -> None:
    """Send ``plan_changed`` / ``subscription_status_changed`` for a real change."""
    event = outcome.event
    before, after = outcome.before, outcome.after
    if before is None or after is None:
        return
    if before.plan != after.plan:
        signals.send_safely(
            signals.plan_changed,
            app,
            user_id=after.user_id,
            old_plan=before.plan,
            new_plan=after.plan,
            account=after,
            event=event,
        )
    if before.subscription_status != after.subscription_status:
        signals.send_safely(
            signals.subscription_status_changed,
            app,
            user_id=after.user_id,
            old_status=before.subscription_status,
            new_status=after.subscription_status,
            account=after,
            event=event,
        )


def _apply(
    event: StripeEvent,
    payload: str,
    store: UserStore,
    log: EventLog,
    settings: Settings,
) -> Outcome:
    record = log.record_event(event, payload)
    if record.status not in RETRYABLE_STATUSES:
        return Outcome(event, DUPLICATE)
    if not rules.is_handled(event.type):
        log.finish_event(event.id, EventStatus.IGNORED)
        return Outcome(event, EventStatus.IGNORED)
    outcome = _apply_to_account(event, store, settings)
    user_id = outcome.before.user_id if outcome.before is not None else None
    log.finish_event(event.id, outcome.status, user_id=user_id)
    return outcome


def apply_snapshot(
    event: StripeEvent, store: UserStore, log: EventLog, settings: Settings
) -> Outcome:
    """Apply an object read from Stripe's API (not a delivered event) in one transaction.

    Nothing is written to the event log; the webhook that follows is a no-op.
    """
    with log.transaction():
        return _apply_to_account(event, store, settings)


def _apply_to_account(event: StripeEvent, store: UserStore, settings: Settings) -> Outcome:
    """Find the account (row-locked), guard the order, decide and write the change."""
    account, found_by_customer = _find_account(event, store)
    if account is None:
        return Outcome(event, EventStatus.UNMATCHED)
    if rules.is_stale(event, account):
        return Outcome(event, EventStatus.STALE, before=account, after=account)
    changes = rules.decide(event, account, settings)
    after = account
    if changes is not None or rules.is_about_current_subscription(event, account):
        writes: AccountChanges = {}
        if rules.moves_watermark(event):
            writes["last_event_at"] = event.created
        if changes is not None:
            writes.update(changes)
            writes["updated_at"] = utcnow()
            if not found_by_customer and event.customer_id:
                writes["stripe_customer_id"] = event.customer_id
        if writes:
            after = store.apply(account.user_id, writes)
    return Outcome(event, EventStatus.PROCESSED, before=account, after=after)


def _find_account(event: StripeEvent, store: UserStore) -> tuple[BillingAccount | None, bool]:
    """The account by customer id, else by the user the event names; row-locked.

    The flag says whether the customer id matched (else the customer is to be linked).
    """
    if event.customer_id:
        account = store.get_by_customer_id(event.customer_id, lock=True)
        if account is not None:
            return account, True
    user_id = rules.user_id_hint(event)
    if user_id:
        return store.get(user_id, lock=True), False
    return None, False


def _record_failure(event: StripeEvent, payload: str, log: EventLog, error: Exception) -> Outcome:
    """Store the event as failed, untouched account, so it can be replayed."""
    try:
        with log.transaction():
            log.record_event(event, payload)
            log.finish_event(event.id, EventStatus.FAILED, error=describe_error(error))
    except Exception as failure:
        raise _not_recorded(event, describe_traceback(failure)) from None
    return Outcome(event, EventStatus.FAILED, error=error)


def _not_recorded(event: StripeEvent, reason: str) -> EventNotRecordedError:
    """Log why the event could not be stored; the error to raise (5xx, Stripe retries)."""
    logger.error(
        "Stripe webhook could not be recorded: %s",
        reason,
        extra={"event_id": event.id, "event_type": event.type},
    )
    return EventNotRecordedError()
