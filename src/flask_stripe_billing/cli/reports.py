"""Readable text for the ``flask billing`` commands: event tables and one-line reports."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.outcomes import DUPLICATE, EventStatus, Outcome
from ..errors import BillingError
from ..redact import describe_error, redact
from ..stores.base import EventRecord

ERROR_WIDTH = 60


TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def event_table(records: Sequence[EventRecord]) -> str:
    """The events as aligned text columns, one line each, under a header."""
    header = ("RECEIVED (UTC)", "ID", "TYPE", "STATUS", "CUSTOMER", "USER", "ATTEMPTS", "ERROR")
    rows = [header] + [
        (
            f"{record.received_at:{TIME_FORMAT}}",
            record.id,
            record.type,
            record.status,
            record.customer_id or "-",
            record.user_id or "-",
            str(record.attempts),
            truncate(record.error or ""),
        )
        for record in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    widths[-1] = 0  # the last column is not padded
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def describe_replay(record: EventRecord, outcome: Outcome) -> str:
    """What replaying one stored event did, in words."""
    status = outcome.status
    if status == DUPLICATE:
        return f"duplicate: already {record.status}, nothing changed"
    moved = f"still {status}" if status == record.status else f"{record.status} → {status}"
    if status == EventStatus.FAILED:
        error = describe_error(outcome.error) if outcome.error else "unknown error"
        return f"{moved}: {truncate(error)}"
    if status == EventStatus.UNMATCHED:
        return f"{moved}: {outcome.reason or 'no account'} (link it, then replay)"
    if status == EventStatus.IGNORED:
        return f"{moved}: an event type this package does not handle"
    if outcome.after is None:
        return moved
    user = f"user {outcome.after.user_id}"
    if status == EventStatus.STALE:
        return f"{moved}: {user} has a newer event applied; nothing changed"
    return f"{moved}: {user}, {describe_change(outcome)}"


def describe_sync(outcome: Outcome) -> str:
    """What applying one account's subscription snapshot did, in words."""
    subscription = outcome.event.subscription
    what = f"subscription {subscription.id} ({subscription.status})" if subscription else "?"
    if outcome.status == EventStatus.UNMATCHED:
        return f"{what}: no account has this customer any more; nothing changed"
    if outcome.status == EventStatus.STALE:
        return f"{what}: an event newer than now was applied; nothing changed"
    return f"{what}: {describe_change(outcome)}"


def describe_features_sync(outcome: Outcome) -> str:
    """What applying a customer's entitlements read from Stripe did, in words."""
    if outcome.status == EventStatus.STALE:
        return "features: a summary newer than now was applied; nothing changed"
    for notice in outcome.notices:
        if notice.signal == "features_changed":
            old = _feature_list(notice.kwargs["old_features"])
            new = _feature_list(notice.kwargs["new_features"])
            return f"features {old} → {new}"
    facts = outcome.event.entitlements
    listed = _feature_list(facts.features if facts is not None else frozenset())
    return f"features {listed} (unchanged)"


def _feature_list(features: frozenset[str]) -> str:
    return ", ".join(sorted(features)) if features else "none"


def describe_change(outcome: Outcome) -> str:
    """``plan free → pro, status none → active``, or that nothing changed."""
    before, after = outcome.before, outcome.after
    if before is None or after is None:
        return "nothing changed"
    changes = []
    if before.plan != after.plan:
        changes.append(f"plan {before.plan} → {after.plan}")
    if before.subscription_status != after.subscription_status:
        old, new = before.subscription_status or "none", after.subscription_status or "none"
        changes.append(f"status {old} → {new}")
    if changes:
        return ", ".join(changes)
    return f"plan {after.plan}, status {after.subscription_status or 'none'} (unchanged)"


def error_text(error: Exception) -> str:
    """An error's message for the terminal, with Stripe's request id; never a key."""
    if isinstance(error, BillingError):
        text = error.message
        request_id = error.details.get("request_id")
        status = error.details.get("status")
        extra = [f"request {request_id}" if request_id else "", f"HTTP {status}" if status else ""]
        extra = [part for part in extra if part]
        return redact(f"{text} ({', '.join(extra)})" if extra else text)
    if isinstance(error, LookupError):
        return redact(str(error.args[0]) if error.args else str(error))
    return describe_error(error)


def truncate(text: str, width: int = ERROR_WIDTH) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def plural(count: int, noun: str) -> str:
    """``1 event``, ``2 events``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
