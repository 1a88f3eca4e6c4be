"""The decision rules: event + account + its subscription records → what changes.

Pure: no Flask, no HTTP, no database. :func:`decide` returns everything an
event changes (the subscription record, the customer link, the account's new
projection) and the signals to send; the pipeline only reads and writes. What
each event type does to its subscription's record is in :mod:`.handlers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import cast

from .account import AccountChanges, BillingAccount
from .config import Settings
from .decisions import IGNORED, PROCESSED, STALE, UNMATCHED, AccountMatch, Decision, Notice
from .entitlement_rules import decide_entitlements, features_notice
from .entitlements import SUMMARY_EVENT, EntitlementRecord
from .events import StripeEvent
from .handlers import HANDLED_EVENT_TYPES, RULES, carried_over
from .lifecycle import LIFECYCLE_SIGNALS
from .projection import project
from .subscriptions import TERMINAL_STATUSES, SubscriptionRecord


def decide(
    event: StripeEvent,
    match: AccountMatch,
    records: Sequence[SubscriptionRecord],
    settings: Settings,
    now: datetime,
    entitlements: EntitlementRecord | None = None,
) -> Decision:
    """What ``event`` changes, given the account it names and that account's records.

    ``entitlements``: for an entitlement summary, its customer's record; for an
    event that links a customer, the features kept for that customer (a summary
    that came first), which the account then gains (``features_changed``).
    """
    if event.type == SUMMARY_EVENT:
        return decide_entitlements(event, match, entitlements, now)
    if event.type in LIFECYCLE_SIGNALS:
        return decide_lifecycle(event, match)
    rule = RULES.get(event.type)
    if rule is None:
        return Decision(IGNORED)
    account = match.account
    unmatched = unmatched_reason(event, match)
    if account is None or unmatched is not None:
        return _unmatched(event, unmatched or "no account")
    by_id = {record.id: record for record in records}
    seeded = () if by_id else carried_over(account, settings)
    by_id.update((record.id, record) for record in seeded)
    subscription_id = subscribed_id(event)
    existing = by_id.get(subscription_id) if subscription_id else None
    if is_stale(event, existing):
        return Decision(STALE, account, reason="a newer event of this subscription was applied")
    record = rule(event, existing, account.user_id, settings)
    changed: tuple[SubscriptionRecord, ...] = ()
    if record is not None and record != existing:
        changed = (*(r for r in seeded if r.id != record.id), record)
        by_id[record.id] = record
    changes: AccountChanges = {}
    if not match.by_customer and event.customer_id:
        changes["stripe_customer_id"] = event.customer_id
    if changed:
        changes.update(project(by_id.values(), settings))
    changes = _differences(changes, account)
    if changes:
        changes["updated_at"] = now
    after = account.with_changes(changes)
    notices = _change_notices(account, after)
    if "stripe_customer_id" in changes and entitlements is not None and entitlements.features:
        notices += (features_notice(replace(after, features=entitlements.features), account),)
    return Decision(PROCESSED, account, changes, changed, notices)


def decide_lifecycle(event: StripeEvent, match: AccountMatch) -> Decision:
    """A lifecycle event changes nothing: it becomes its signal for its customer's account.

    It never links a customer, so for a customer no account has yet it stays
    ``unmatched`` (replayable once linked). Its subscription's watermark is left alone.
    """
    if match.account is None or not match.by_customer:
        return _unmatched(event, unmatched_reason(event, AccountMatch(None, by_customer=False)))
    signal, arguments = LIFECYCLE_SIGNALS[event.type]
    kwargs = arguments(event, match.account)
    if kwargs is None:
        return Decision(IGNORED, reason=f"{event.type} does not carry the object it names")
    return Decision(PROCESSED, match.account, notices=(Notice(signal, kwargs),))


def is_handled(event_type: str) -> bool:
    """Whether events of this type are about an account (a change, a lifecycle signal or
    an entitlement summary)."""
    return event_type in HANDLED_EVENT_TYPES


def unmatched_reason(event: StripeEvent, match: AccountMatch) -> str | None:
    """Why the event cannot be applied to the account it names, or None if it can.

    An event links an unknown customer only to an account that has no customer
    yet: a Payment Link lets the payer choose ``client_reference_id``, so an
    event must never move an account to another customer.
    """
    account = match.account
    if account is None:
        if event.customer_id:
            return f"no account is linked to customer {event.customer_id}"
        return "the event names no customer and no account"
    if match.by_customer or event.customer_id is None:
        return None
    if account.stripe_customer_id in (None, event.customer_id):
        return None
    return (
        f"account {account.user_id} is linked to customer {account.stripe_customer_id}, "
        f"not {event.customer_id}; link it by hand (flask billing link) to apply this event"
    )


def user_id_hint(event: StripeEvent) -> str | None:
    """The account an event names itself, for linking a customer not yet known."""
    if event.checkout_session is not None:
        return event.checkout_session.user_id
    if event.subscription is not None:
        return event.subscription.user_id
    return None


def subscribed_id(event: StripeEvent) -> str | None:
    """The id of the subscription the event is about."""
    if event.subscription is not None:
        return event.subscription.id
    if event.checkout_session is not None:
        return event.checkout_session.subscription_id
    return None


def is_stale(event: StripeEvent, record: SubscriptionRecord | None) -> bool:
    """Whether a newer event of the same subscription was applied (Stripe keeps no order).

    Only a subscription's own events are judged, and only against that
    subscription's watermark. Stripe's ``created`` has one-second resolution,
    so Stripe's lifecycle settles ties: an ended subscription never comes
    back, and a ``created`` event never overrides a same-second event of its
    own subscription.
    """
    subscription = event.subscription
    if subscription is None or record is None or record.last_event_at is None:
        return False
    if event.created < record.last_event_at:
        return True
    if record.status in TERMINAL_STATUSES and subscription.status not in TERMINAL_STATUSES:
        return True
    return event.type == "customer.subscription.created" and event.created == record.last_event_at


def _change_notices(before: BillingAccount, after: BillingAccount) -> tuple[Notice, ...]:
    """``plan_changed`` / ``subscription_status_changed`` / ``seats_changed`` for what
    really changes."""
    notices = []
    if before.plan != after.plan:
        notices.append(
            Notice(
                "plan_changed",
                {
                    "user_id": after.user_id,
                    "old_plan": before.plan,
                    "new_plan": after.plan,
                    "account": after,
                },
            )
        )
    if before.subscription_status != after.subscription_status:
        notices.append(
            Notice(
                "subscription_status_changed",
                {
                    "user_id": after.user_id,
                    "old_status": before.subscription_status,
                    "new_status": after.subscription_status,
                    "account": after,
                },
            )
        )
    if before.seats != after.seats:
        notices.append(
            Notice(
                "seats_changed",
                {
                    "user_id": after.user_id,
                    "old_seats": before.seats,
                    "new_seats": after.seats,
                    "account": after,
                },
            )
        )
    return tuple(notices)


def _unmatched(event: StripeEvent, reason: str | None) -> Decision:
    """The event stays ``unmatched`` for replay; ``customer_not_found`` says why."""
    reason = reason or "no account"
    notice = Notice("customer_not_found", {"customer_id": event.customer_id, "reason": reason})
    return Decision(UNMATCHED, notices=(notice,), reason=reason)


def _differences(changes: AccountChanges, account: BillingAccount) -> AccountChanges:
    """Only the fields whose value really changes."""
    kept = {k: v for k, v in changes.items() if getattr(account, k) != v}
    return cast(AccountChanges, kept)


__all__ = [
    "HANDLED_EVENT_TYPES",
    "RULES",
    "AccountMatch",
    "Decision",
    "Notice",
    "decide",
    "decide_entitlements",
    "decide_lifecycle",
    "is_handled",
    "is_stale",
    "subscribed_id",
    "unmatched_reason",
    "user_id_hint",
]
