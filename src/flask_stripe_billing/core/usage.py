"""Usage-based billing: a reported quantity of a meter, what Stripe accepts, how a send ends.

Pure: no Flask, no HTTP, no database. A host reports usage as a row in its own
transaction (:class:`UsageRecord`); a sender later posts each pending row to
Stripe as a meter event carrying the row's ``identifier``, which Stripe uses to
drop a repeat. These rules say which reports Stripe would refuse (so they are
refused at once), what a failed send means (retry, or give up with the reason),
when a row is tried again, and how much of a plan's quota a period has left.
"""

from __future__ import annotations

import re
import uuid
from calendar import monthrange
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .._util import as_utc
from ..errors import ValidationError

#: How far back Stripe accepts a meter event's timestamp, and how far ahead.
ACCEPTED_PAST = timedelta(days=35)


ACCEPTED_FUTURE = timedelta(minutes=5)


#: Stripe's bounds of ``event_name`` and ``identifier``.
MAX_EVENT_NAME = 100


MAX_IDENTIFIER = 100


#: The meter's ``value_settings.event_payload_key`` Stripe sets up by default.
VALUE_KEY = "value"


#: Stripe drops a repeated ``identifier`` within a rolling window of at least 24 hours; a
#: row whose first send may have reached Stripe is not sent again after this long.
DUPLICATE_WINDOW = timedelta(hours=23)


#: First wait after a transient failure, doubled each attempt up to the cap.
FIRST_RETRY = timedelta(seconds=5)


MAX_RETRY = timedelta(minutes=30)


#: How long a row of an account with no Stripe customer yet waits before it is looked at again.
UNLINKED_RECHECK = timedelta(minutes=1)


#: What an event name may hold (Stripe's meters take plain names like ``api_calls``).
_EVENT_NAME = re.compile(r"[A-Za-z0-9_.:-]+\Z")


class UsageStatus:
    """Where a usage row is: waiting to be sent, accepted by Stripe, or refused for good."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"

    ALL = (PENDING, SENT, FAILED)


@dataclass(frozen=True)
class UsageRecord:
    """A row of the library's usage table: one reported quantity of one meter."""

    #: Stripe's ``identifier`` of the meter event: unique, the key of the row.
    identifier: str
    user_id: str
    #: The account's Stripe customer when known (filled in once the account is linked).
    customer_id: str | None
    event_name: str
    value: int
    #: When the usage happened (the meter event's ``timestamp``).
    timestamp: datetime
    status: str = UsageStatus.PENDING
    #: How many times a send was tried.
    attempts: int = 0
    #: When the sender may try the row (a pending row always has one; None once it is done).
    next_attempt_at: datetime | None = None
    #: When the first send was tried: a repeat after Stripe's duplicate window could bill twice.
    first_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    #: Why the last send failed (Stripe's words), or why the row waits.
    error: str | None = None
    reported_at: datetime | None = None

    def in_utc(self) -> UsageRecord:
        """The record with every time as an aware UTC datetime."""
        return replace(
            self,
            timestamp=as_utc(self.timestamp),  # type: ignore[arg-type]
            next_attempt_at=as_utc(self.next_attempt_at),
            first_attempt_at=as_utc(self.first_attempt_at),
            sent_at=as_utc(self.sent_at),
            reported_at=as_utc(self.reported_at),
        )


def new_identifier() -> str:
    """A new unique meter-event identifier (what ``identifier=None`` means)."""
    return f"usage_{uuid.uuid4().hex}"


def new_usage(
    *,
    user_id: str,
    customer_id: str | None,
    event_name: str,
    value: object,
    identifier: str | None,
    timestamp: datetime | None,
    now: datetime,
) -> UsageRecord:
    """The row a report writes; :class:`ValidationError` for one Stripe would refuse."""
    when = now if timestamp is None else _aware(timestamp)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(
            f"usage value must be a whole number, not {value!r}", {"value": repr(value)}
        )
    if value < 0:
        raise ValidationError(f"usage value must not be negative, not {value}", {"value": value})
    if not event_name or len(event_name) > MAX_EVENT_NAME or not _EVENT_NAME.match(event_name):
        raise ValidationError(
            f"meter event name must be 1 to {MAX_EVENT_NAME} letters, digits or _.:-, "
            f"not {event_name!r}",
            {"event_name": event_name},
        )
    key = new_identifier() if identifier is None else str(identifier)
    if not key or len(key) > MAX_IDENTIFIER or not key.isprintable():
        raise ValidationError(
            f"usage identifier must be 1 to {MAX_IDENTIFIER} printable characters",
            {"identifier": key[:MAX_IDENTIFIER]},
        )
    if when < now - ACCEPTED_PAST:
        raise ValidationError(
            f"usage at {when.isoformat()} is older than Stripe accepts (35 days)",
            {"timestamp": when.isoformat()},
        )
    if when > now + ACCEPTED_FUTURE:
        raise ValidationError(
            f"usage at {when.isoformat()} is more than 5 minutes ahead, which Stripe refuses",
            {"timestamp": when.isoformat()},
        )
    return UsageRecord(
        identifier=key,
        user_id=str(user_id),
        customer_id=customer_id,
        event_name=event_name,
        value=value,
        timestamp=when.replace(microsecond=0),
        next_attempt_at=now,
        reported_at=now,
    )


def _aware(value: datetime) -> datetime:
    """A timestamp as an aware UTC datetime; a naive one is refused (its zone is unknown)."""
    if value.tzinfo is None:
        raise ValidationError(
            "usage timestamp must be timezone-aware (datetime.now(UTC), not datetime.now())",
            {"timestamp": value.isoformat()},
        )
    utc = as_utc(value)
    assert utc is not None
    return utc


def meter_event_params(record: UsageRecord, customer_key: str) -> dict[str, object]:
    """The body of ``POST /v1/billing/meter_events`` for a row with a customer."""
    return {
        "event_name": record.event_name,
        "identifier": record.identifier,
        "timestamp": int(record.timestamp.timestamp()),
        "payload": {customer_key: record.customer_id, VALUE_KEY: str(record.value)},
    }


#: HTTP statuses of Stripe's answer after which the same request may succeed later.
_TRANSIENT_STATUSES = frozenset({401, 403, 409, 423, 429})


def is_permanent_refusal(status: int | None) -> bool:
    """Whether Stripe refused the meter event for good (bad meter, customer or value: 4xx);
    no answer, rate limits, server errors, and key problems are worth another try."""
    if status is None or status in _TRANSIENT_STATUSES:
        return False
    return 400 <= status < 500


def retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed try: 5 s, doubling, at most 30 min."""
    doubled = FIRST_RETRY * (2 ** max(attempts - 1, 0)) if attempts < 20 else MAX_RETRY
    return min(doubled, MAX_RETRY)


def sent(record: UsageRecord, now: datetime) -> UsageRecord:
    """The row once Stripe accepted it."""
    return replace(
        record,
        status=UsageStatus.SENT,
        attempts=record.attempts + 1,
        first_attempt_at=record.first_attempt_at or now,
        sent_at=now,
        next_attempt_at=None,
        error=None,
    )


def refused(record: UsageRecord, now: datetime, reason: str) -> UsageRecord:
    """The row once Stripe refused it for good."""
    return replace(
        record,
        status=UsageStatus.FAILED,
        attempts=record.attempts + 1,
        first_attempt_at=record.first_attempt_at or now,
        next_attempt_at=None,
        error=reason,
    )


def to_retry(record: UsageRecord, now: datetime, reason: str) -> UsageRecord:
    """The row after a transient failure: pending, tried again after the back-off; failed
    once its first try is older than Stripe's duplicate window (a repeat could bill twice)."""
    first = record.first_attempt_at or now
    if now - first >= DUPLICATE_WINDOW:
        return refused(
            record,
            now,
            f"gave up after {DUPLICATE_WINDOW} of failed sends (Stripe drops a repeated "
            f"identifier only within 24 hours); last error: {reason}",
        )
    attempts = record.attempts + 1
    return replace(
        record,
        attempts=attempts,
        first_attempt_at=first,
        next_attempt_at=now + retry_delay(attempts),
        error=reason,
    )


def waiting_for_customer(record: UsageRecord, now: datetime) -> UsageRecord:
    """The row of an account with no Stripe customer yet: pending, looked at again later."""
    return replace(
        record,
        next_attempt_at=now + UNLINKED_RECHECK,
        error="the account has no Stripe customer yet",
    )


# Quotas


def quota_of(quotas: Mapping[str, Mapping[str, int]], plan: str, event_name: str) -> int | None:
    """How much of ``event_name`` a period of ``plan`` includes (None: no quota)."""
    return quotas.get(plan, {}).get(event_name)


def period_start(period_end: datetime | None, now: datetime) -> datetime:
    """The start of the quota period that holds ``now``: monthly periods ending on the
    subscription's billing day (``current_period_end``); without one, the calendar month."""
    now = as_utc(now)  # type: ignore[assignment]
    if period_end is None:
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    anchor = as_utc(period_end)
    assert anchor is not None
    months = 0
    start = anchor
    while start > now:
        months += 1
        start = _months_before(anchor, months)
    return start


def _months_before(moment: datetime, months: int) -> datetime:
    """``moment`` moved back ``months`` calendar months (the day clamped to the month's end)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def remaining(quota: int | None, used: Iterable[int]) -> int | None:
    """What is left of ``quota`` after ``used`` (never below zero; None: no quota)."""
    if quota is None:
        return None
    return max(quota - sum(used), 0)
