"""Dispatch mode: the webhook only records the event and hands its id to the host's queue;
a worker runs it through the pipeline later."""

from __future__ import annotations

import logging

from .events import StripeEvent
from .outcomes import DUPLICATE, Outcome, not_recorded
from .redact import describe_traceback
from .state import BillingState
from .stores.base import RETRYABLE_STATUSES, EventStatus

logger = logging.getLogger("flask_stripe_billing")


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
