"""The decision rules: event + account + its subscription records → what changes.

Pure: no Flask, no HTTP, no database. :func:`decide` returns everything an
event changes (the subscription record, the customer link, the account's new
projection) and the signals to send; the pipeline only reads and writes.
Each handled event type maps to one short function, as in Pay's handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from .account import AccountChanges, BillingAccount
from .config import Settings
from .events import StripeEvent, SubscriptionFacts
from .projection import project
from .stores.base import EventStatus
from .subscriptions import TERMINAL_STATUSES, SubscriptionRecord

#: Checkout payment states that mean the customer has paid (or owes nothing yet).
SETTLED_PAYMENT_STATUSES = frozenset({"paid", "no_payment_required"})

PROCESSED = EventStatus.PROCESSED
IGNORED = EventStatus.IGNORED
STALE = EventStatus.STALE
UNMATCHED = EventStatus.UNMATCHED


@dataclass(frozen=True)
class AccountMatch:
    """The account an event was found to be about, and how it was found."""

    account: BillingAccount | None
    #: True when found by the event's customer id; False when named by the event
    #: itself (``client_reference_id`` / ``metadata.user_id``).
    by_customer: bool


@dataclass(frozen=True)
class Notice:
    """A signal to send after the commit: its name in :mod:`.signals` and its arguments."""

    signal: str
    kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class Decision:
    """Everything one event changes; the pipeline writes it and sends the notices."""

    status: str
    account: BillingAccount | None = None
    #: Fields of the account to write (empty: the account stays as it is).
    account_changes: AccountChanges = field(default_factory=lambda: AccountChanges())
    #: Subscription records to write (new or changed).
    records: tuple[SubscriptionRecord, ...] = ()
    notices: tuple[Notice, ...] = ()
    #: Why an event stayed unmatched or stale, in words.
    reason: str | None = None

    @property
    def after(self) -> BillingAccount | None:
        """The account as it is once the changes are written."""
        if self.account is None:
            return None
        return self.account.with_changes(self.account_changes)


#: A rule: the event, the record of its subscription (None: not recorded yet),
#: the account's user id and the settings → the record to write, or None.
Rule = Callable[[StripeEvent, SubscriptionRecord | None, str, Settings], SubscriptionRecord | None]


def decide(
    event: StripeEvent,
    match: AccountMatch,
    records: Sequence[SubscriptionRecord],
    settings: Settings,
    now: datetime,
) -> Decision:
    """What ``event`` changes, given the account it names and that account's records."""
    rule = RULES.get(event.type)
    if rule is None:
        return Decision(IGNORED)
    account = match.account
    unmatched = unmatched_reason(event, match)
    if account is None or unmatched is not None:
        reason = unmatched or "no account"
        notice = Notice("customer_not_found", {"customer_id": event.customer_id, "reason": reason})
        return Decision(UNMATCHED, notices=(notice,), reason=reason)
    by_id = {record.id: record for record in records}
    subscription_id = subscribed_id(event)
    existing = by_id.get(subscription_id) if subscription_id else None
    if is_stale(event, existing):
        return Decision(STALE, account, reason="a newer event of this subscription was applied")
    record = rule(event, existing, account.user_id, settings)
    changed: tuple[SubscriptionRecord, ...] = ()
    if record is not None and record != existing:
        changed = (record,)
        by_id[record.id] = record
    changes: AccountChanges = {}
    if not match.by_customer and event.customer_id:
        changes["stripe_customer_id"] = event.customer_id
    if changed:
        changes.update(project(by_id.values(), settings))
    changes = _differences(changes, account)
    if changes:
        changes["updated_at"] = now
    notices = _change_notices(account, account.with_changes(changes))
    return Decision(PROCESSED, account, changes, changed, notices)


def is_handled(event_type: str) -> bool:
    """Whether events of this type can change an account."""
    return event_type in RULES


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


def checkout_completed(
    event: StripeEvent, existing: SubscriptionRecord | None, user_id: str, settings: Settings
) -> SubscriptionRecord | None:
    """A paid (or free-trial) subscription Checkout records its subscription, if new.

    An existing record is never changed by a session: the subscription's own
    events know its real status and prices. The new record has no watermark,
    so every event of the subscription still applies after it.
    """
    session = event.checkout_session
    if session is None or session.mode != "subscription" or existing is not None:
        return None
    if session.payment_status not in SETTLED_PAYMENT_STATUSES or not session.subscription_id:
        return None  # async payment pending: async_payment_succeeded records it
    prices = (session.price_id,) if session.price_id else ()
    return SubscriptionRecord(
        id=session.subscription_id,
        user_id=user_id,
        customer_id=session.customer_id,
        status="active",
        price_ids=prices,
        plan=settings.plan_for_prices(prices),
        quantity=None,
        trial_end=None,
        current_period_end=None,
        cancel_at_period_end=False,
        cancel_at=None,
        ended_at=None,
        created=event.created,
        last_event_at=None,
    )


def subscription_changed(
    event: StripeEvent, existing: SubscriptionRecord | None, user_id: str, settings: Settings
) -> SubscriptionRecord | None:
    """``created`` / ``updated``: the record becomes what the subscription says."""
    if event.subscription is None:
        return None
    return _record(event.subscription, event, user_id, settings, event.subscription.status)


def subscription_deleted(
    event: StripeEvent, existing: SubscriptionRecord | None, user_id: str, settings: Settings
) -> SubscriptionRecord | None:
    """The subscription ended; the account follows from its other records."""
    subscription = event.subscription
    if subscription is None:
        return None
    status = subscription.status if subscription.status in TERMINAL_STATUSES else "canceled"
    return _record(subscription, event, user_id, settings, status)


def _record(
    subscription: SubscriptionFacts,
    event: StripeEvent,
    user_id: str,
    settings: Settings,
    status: str,
) -> SubscriptionRecord:
    """The record of a subscription as its event shows it, watermarked with the event."""
    return SubscriptionRecord(
        id=subscription.id,
        user_id=user_id,
        customer_id=subscription.customer_id or event.customer_id,
        status=status,
        price_ids=subscription.price_ids,
        plan=settings.plan_for_prices(subscription.price_ids),
        quantity=subscription.quantity,
        trial_end=subscription.trial_end,
        current_period_end=subscription.current_period_end,
        cancel_at_period_end=subscription.cancel_at_period_end,
        cancel_at=subscription.cancel_at,
        ended_at=subscription.ended_at,
        created=subscription.created,
        last_event_at=event.created,
    )


def _change_notices(before: BillingAccount, after: BillingAccount) -> tuple[Notice, ...]:
    """``plan_changed`` / ``subscription_status_changed`` for what really changes."""
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
    return tuple(notices)


def _differences(changes: AccountChanges, account: BillingAccount) -> AccountChanges:
    """Only the fields whose value really changes."""
    kept = {k: v for k, v in changes.items() if getattr(account, k) != v}
    return cast(AccountChanges, kept)


RULES: dict[str, Rule] = {
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_completed,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_deleted,
}

#: The event types to enable on the Stripe webhook endpoint.
HANDLED_EVENT_TYPES = tuple(RULES)
