"""What processing one event did, as the pipeline reports it, and the error raised when
a delivered event could not even be recorded."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .account import BillingAccount
from .decisions import Notice
from .errors import EventNotRecordedError
from .events import StripeEvent

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
    #: Why the event stayed unmatched or stale.
    reason: str | None = None
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True)
class ThinOrigin:
    """Where a thin notification's fetched event comes from: the notification as the event
    log records it, and the snapshot event of the same change (None: Stripe named none)."""

    logged: StripeEvent
    twin: StripeEvent | None = None


def not_recorded(event: StripeEvent, reason: str) -> EventNotRecordedError:
    """Log why the event could not be stored; the error to raise (5xx, Stripe retries)."""
    logger.error(
        "Stripe webhook could not be recorded: %s",
        reason,
        extra={"event_id": event.id, "event_type": event.type},
    )
    return EventNotRecordedError()
