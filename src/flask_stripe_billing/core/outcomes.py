"""What processing one event did: its status in the event log, the signals to send
after the commit, and the outcome the pipeline reports. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .account import BillingAccount
from .events import StripeEvent

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


@dataclass(frozen=True)
class Notice:
    """A signal to send after the commit: its name in :mod:`.signals` and its arguments."""

    signal: str
    kwargs: Mapping[str, Any]


class EventStatus:
    """Where a recorded event stands."""

    RECEIVED = "received"  # stored, not processed yet
    PROCESSED = "processed"  # the rules ran (whether or not they changed anything)
    IGNORED = "ignored"  # a type this package does not handle
    STALE = "stale"  # older than the last event applied to its subscription
    UNMATCHED = "unmatched"  # no account it may apply to; kept for replay
    FAILED = "failed"  # processing raised; the account was left untouched


#: Statuses whose event is processed again when it is delivered or replayed again.
RETRYABLE_STATUSES = frozenset({EventStatus.RECEIVED, EventStatus.UNMATCHED, EventStatus.FAILED})


#: Statuses of events that are done with: ``flask billing prune`` may delete them.
FINAL_STATUSES = frozenset({EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.STALE})
