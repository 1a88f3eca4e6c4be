"""The decision rules: event + account + its subscription records → what changes.

Pure: no Flask, no HTTP, no database. :func:`decide` returns everything an
event changes (the subscription record, the customer link, the account's new
projection) and the signals to send; the pipeline only reads and writes. Like
Pay's handlers, each handled event type maps to one short function; an unknown
type is recorded and acknowledged."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from ..config import ALL_CONNECT_ACCOUNTS, Settings
from .account import (
    FREE_PLAN,
    PAID_STATUSES,
    TERMINAL_STATUSES,
    AccountChanges,
    BillingAccount,
    SubscriptionRecord,
    project,
)
from .entitlements import SUMMARY_EVENT, EntitlementRecord, supersedes
from .events import METER_ERROR_EVENT, StripeEvent, SubscriptionFacts
from .outcomes import EventStatus, Notice
from .purchases import (
    ASYNC_FAILED,
    PURCHASE_EVENT_TYPES,
    PurchaseRecord,
    apply_event,
    is_purchase_event,
    not_a_purchase_reason,
    purchase_notices,
)

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
    #: Why the reference the event carries names no account (an unsigned one, say).
    refused: str | None = None


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
    #: The customer's entitlement record to write (new or changed).
    entitlements: EntitlementRecord | None = None
    #: The purchase record to write (new or changed).
    purchase: PurchaseRecord | None = None

    @property
    def after(self) -> BillingAccount | None:
        """The account as it is once the changes are written."""
        if self.account is None:
            return None
        after = self.account.with_changes(self.account_changes)
        if self.entitlements is not None:
            after = replace(after, features=self.entitlements.features)
        return after


#: A lifecycle event and the account of its customer → the signal's keyword arguments.
NoticeArguments = Callable[[StripeEvent, BillingAccount], dict[str, Any] | None]


def payment_failed(event: StripeEvent, account: BillingAccount) -> dict[str, Any] | None:
    """``invoice.payment_failed``: what a dunning e-mail needs."""
    invoice = event.invoice
    if invoice is None:
        return None
    return {
        "user_id": account.user_id,
        "account": account,
        "amount_due": invoice.amount_due,
        "currency": invoice.currency,
        "attempt_count": invoice.attempt_count,
        "next_payment_attempt": invoice.next_payment_attempt,
        "hosted_invoice_url": invoice.hosted_invoice_url,
        "invoice_id": invoice.id,
        "subscription_id": invoice.subscription_id,
    }


def payment_succeeded(event: StripeEvent, account: BillingAccount) -> dict[str, Any] | None:
    """``invoice.paid``: what a receipt needs."""
    invoice = event.invoice
    if invoice is None:
        return None
    return {
        "user_id": account.user_id,
        "account": account,
        "amount_paid": invoice.amount_paid,
        "currency": invoice.currency,
        "hosted_invoice_url": invoice.hosted_invoice_url,
        "invoice_pdf": invoice.invoice_pdf,
        "invoice_id": invoice.id,
        "subscription_id": invoice.subscription_id,
    }


def payment_action_required(event: StripeEvent, account: BillingAccount) -> dict[str, Any] | None:
    """``invoice.payment_action_required``: the customer must confirm the payment (3-D Secure)."""
    invoice = event.invoice
    if invoice is None:
        return None
    return {
        "user_id": account.user_id,
        "account": account,
        "hosted_invoice_url": invoice.hosted_invoice_url,
        "invoice_id": invoice.id,
    }


def trial_will_end(event: StripeEvent, account: BillingAccount) -> dict[str, Any] | None:
    """``customer.subscription.trial_will_end``: sent by Stripe three days before the end."""
    subscription = event.subscription
    if subscription is None:
        return None
    return {
        "user_id": account.user_id,
        "account": account,
        "subscription_id": subscription.id,
        "trial_end": subscription.trial_end,
    }


#: Each lifecycle event type: the name of its signal in :mod:`.signals` and its arguments.
LIFECYCLE_SIGNALS: dict[str, tuple[str, NoticeArguments]] = {
    "invoice.payment_failed": ("payment_failed", payment_failed),
    "invoice.paid": ("payment_succeeded", payment_succeeded),
    "invoice.payment_action_required": ("payment_action_required", payment_action_required),
    "customer.subscription.trial_will_end": ("trial_will_end", trial_will_end),
}


#: Checkout payment states that mean the customer has paid (or owes nothing yet).
SETTLED_PAYMENT_STATUSES = frozenset({"paid", "no_payment_required"})


#: A handler: the event, the record of its subscription (None: not recorded yet),
#: the account's user id and the settings → the record to write, or None.
Handler = Callable[
    [StripeEvent, SubscriptionRecord | None, str, Settings], SubscriptionRecord | None
]


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
    prices: tuple[str, ...] = ()
    if session.price_id:  # our own Checkout's: the licensed price and its plan's metered ones
        prices = (session.price_id, *settings.metered_prices_for(session.price_id))
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
        pending_update=subscription.pending_update,
    )


def carried_over(account: BillingAccount, settings: Settings) -> tuple[SubscriptionRecord, ...]:
    """The subscription an account shows but has no record of (set up before records
    existed), as a record without watermark; none when it shows no subscription.

    So the first event after an upgrade about another subscription (a late end of
    an old one, say) is projected beside the subscription the account pays for.
    """
    if account.stripe_subscription_id is None or account.subscription_status is None:
        return ()
    return (
        SubscriptionRecord(
            id=account.stripe_subscription_id,
            user_id=account.user_id,
            customer_id=account.stripe_customer_id,
            status=account.subscription_status,
            price_ids=(),
            plan=account.plan if account.plan != FREE_PLAN else settings.pro_plan_name,
            quantity=account.subscription_quantity,
            trial_end=account.trial_end,
            current_period_end=account.current_period_end,
            cancel_at_period_end=account.cancel_at_period_end,
            cancel_at=None,
            ended_at=None,
            created=None,
            last_event_at=None,
        ),
    )


PENDING_APPLIED = "customer.subscription.pending_update_applied"


PENDING_EXPIRED = "customer.subscription.pending_update_expired"


RULES: dict[str, Handler] = {
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_completed,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_deleted,
    # The subscription as it is once its held change was applied, or dropped unpaid.
    PENDING_APPLIED: subscription_changed,
    PENDING_EXPIRED: subscription_changed,
}


#: The event types to enable on the Stripe webhook endpoint: those that change
#: records, the lifecycle events that only become signals, entitlement summaries, then
#: the purchases' own (a payment's failure, refunds, disputes).
HANDLED_EVENT_TYPES = (
    *RULES,
    *LIFECYCLE_SIGNALS,
    SUMMARY_EVENT,
    *(t for t in PURCHASE_EVENT_TYPES if t not in RULES),
)


#: Event types about a meter, not an account: each becomes a signal, recorded
#: ``processed`` with no account. Stripe sends them only as thin events (the thin route
#: table lists them), so they are not enabled on a webhook endpoint.
METER_EVENT_TYPES = (METER_ERROR_EVENT,)


def decide_meter_errors(event: StripeEvent) -> Decision:
    """A meter error report becomes ``meter_errors``, once per event id, with no account:
    it names a meter and a window, and the usage rows its samples identify."""
    report = event.meter_errors
    if report is None:
        return Decision(IGNORED, reason=f"{event.type} does not carry a meter error report")
    kwargs = {
        "meter_id": report.meter_id,
        "summary": report.summary,
        "error_count": report.error_count,
        "errors": report.error_types,
        "codes": tuple(kind.code for kind in report.error_types),
        "validation_start": report.validation_start,
        "validation_end": report.validation_end,
    }
    return Decision(PROCESSED, notices=(Notice("meter_errors", kwargs),))


def decide_purchase(
    event: StripeEvent,
    match: AccountMatch,
    record: PurchaseRecord | None,
    settings: Settings,
    now: datetime,
) -> Decision:
    """A payment-mode session, refund or dispute event applied to its purchase record.

    A session names the account (and may link its customer, as a subscription's does);
    a refund or dispute is about the account of the purchase, if its session came
    already, else it is kept on the record, which the session joins when it arrives.
    An event that changes no part of the record is ``stale`` when a newer event of the
    purchase was applied.
    """
    ignored = not_a_purchase_reason(event)
    if ignored is not None:
        return Decision(IGNORED, reason=ignored)
    session = event.checkout_session
    account = match.account
    changes: AccountChanges = {}
    if session is not None:
        unmatched = unmatched_reason(event, match)
        if account is None or unmatched is not None or record is None:
            return _unmatched(event, unmatched or "no account")
        if not match.by_customer and event.customer_id:
            changes["stripe_customer_id"] = event.customer_id
        changes = _differences(changes, account)
        if changes:
            changes["updated_at"] = now
    assert record is not None
    owner = account.user_id if session is not None and account is not None else None
    after = apply_event(record, event, owner, settings)
    if replace(after, last_event_at=record.last_event_at) == record and not changes:
        older = record.last_event_at is not None and event.created < record.last_event_at
        if older:
            return Decision(STALE, account, reason="a newer event of this purchase was applied")
        return Decision(PROCESSED, account)
    reason: str | None = None
    if after.user_id is None:
        reason = (
            f"no Checkout session of payment {after.id} has arrived yet; "
            "the purchase joins it when it does"
        )
    notices: tuple[Notice, ...] = ()
    if account is not None and after.user_id is not None:
        shown = account.with_changes(changes)
        notices = tuple(
            Notice(
                notice.signal,
                {"user_id": shown.user_id, "account": shown, "purchase": after, **notice.kwargs},
            )
            for notice in purchase_notices(record, after)
        )
    return Decision(PROCESSED, account, changes, notices=notices, reason=reason, purchase=after)


def decide_entitlements(
    event: StripeEvent,
    match: AccountMatch,
    record: EntitlementRecord | None,
    now: datetime,
) -> Decision:
    """A summary sets its customer's active features, unless a newer one was applied.

    The record is kept per customer whether or not an account is linked to
    it yet (the summary often comes before Checkout's event links the
    customer); an account reads its features once linked. Like a lifecycle
    event, a summary never links a customer. ``features_changed`` goes out
    when a linked account's features really change.
    """
    summary = event.entitlements
    if summary is None:
        return Decision(IGNORED, reason="the entitlement summary names no customer")
    account = match.account if match.by_customer else None
    if not supersedes(event.created, summary.features, record):
        if record is not None and record.features == summary.features:
            return Decision(PROCESSED, account)  # the features it lists are the ones kept
        return Decision(
            STALE, account, reason="a newer entitlement summary of this customer was applied"
        )
    written = EntitlementRecord(
        customer_id=summary.customer_id,
        features=summary.features,
        last_event_at=event.created,
        last_event_id=event.id,
        updated_at=now,
    )
    old = record.features if record is not None else frozenset()
    if account is None:
        reason = (
            f"no account is linked to customer {summary.customer_id} yet; "
            "its features apply once one is"
        )
        return Decision(PROCESSED, entitlements=written, reason=reason)
    notices: tuple[Notice, ...] = ()
    if old != written.features:
        before = replace(account, features=old)
        notices = (features_notice(replace(account, features=written.features), before),)
    return Decision(PROCESSED, account, entitlements=written, notices=notices)


def features_notice(after: BillingAccount, before: BillingAccount) -> Notice:
    """``features_changed`` from ``before``'s features to ``after``'s."""
    kwargs = {
        "user_id": after.user_id,
        "old_features": before.features,
        "new_features": after.features,
        "account": after,
    }
    return Notice("features_changed", kwargs)


def decide(
    event: StripeEvent,
    match: AccountMatch,
    records: Sequence[SubscriptionRecord],
    settings: Settings,
    now: datetime,
    entitlements: EntitlementRecord | None = None,
    purchase: PurchaseRecord | None = None,
) -> Decision:
    """What ``event`` changes, given the account it names and that account's records.

    ``purchase``: for a payment-mode session, refund or dispute event, its purchase
    record (blank when new), row-locked.

    ``entitlements``: for an entitlement summary, its customer's record; for an
    event that links a customer, the features kept for that customer (a summary
    that came first), which the account then gains (``features_changed``).
    """
    if event.type == SUMMARY_EVENT:
        return decide_entitlements(event, match, entitlements, now)
    if event.type in METER_EVENT_TYPES:
        return decide_meter_errors(event)
    if event.type in LIFECYCLE_SIGNALS:
        return decide_lifecycle(event, match)
    if is_purchase_event(event) and (event.checkout_session is None or purchase is not None):
        return decide_purchase(event, match, purchase, settings, now)
    if event.type == ASYNC_FAILED:
        return Decision(IGNORED)  # a subscription's failed payment: its own events say it
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
    pending = pending_notices(event, account, existing)
    if is_stale(event, existing):
        reason = "a newer event of this subscription was applied"
        return Decision(STALE, account, notices=pending, reason=reason)
    record = rule(event, existing, account.user_id, settings)
    changed: tuple[SubscriptionRecord, ...] = ()
    duplicate: tuple[str, str] | None = None
    if record is not None and record != existing:
        changed = (*(r for r in seeded if r.id != record.id), record)
        by_id[record.id] = record
        duplicate = found_duplicate(existing, record, by_id.values(), settings)
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
    if duplicate is not None:
        notices += (duplicate_notice(after, *duplicate),)
    return Decision(PROCESSED, account, changes, changed, notices + pending)


def in_plan_family(record: SubscriptionRecord, settings: Settings) -> bool:
    """Whether the subscription is to one of the app's plans: a configured price (an add-on
    subscription to a price the app does not configure is not)."""
    return any(price in settings.configured_prices for price in record.price_ids)


def is_live_paid(record: SubscriptionRecord) -> bool:
    """Whether the subscription charges on: active or trialing, and not set to end."""
    return (
        record.status in PAID_STATUSES
        and not record.cancel_at_period_end
        and record.cancel_at is None
        and record.ended_at is None
    )


def is_live_plan(record: SubscriptionRecord | None, settings: Settings) -> bool:
    """Whether the record is a live paid subscription to one of the app's plans."""
    return record is not None and is_live_paid(record) and in_plan_family(record, settings)


def found_duplicate(
    before: SubscriptionRecord | None,
    after: SubscriptionRecord,
    records: Iterable[SubscriptionRecord],
    settings: Settings,
) -> tuple[str, str] | None:
    """When ``after`` has just become a live paid subscription to the app's plans beside
    another: the ids of the one kept and of the duplicate; else None.

    Judged only when a subscription becomes live (so once per such event, and each event
    once), never from a stored mark: the records stay a function of the events, whatever
    their order. The duplicate is the newer by Stripe's ``created``: the one becoming
    live when it is the newest, else the newest of the others (an old ``incomplete``
    try paid late keeps its place, the retry goes).
    """
    if not is_live_plan(after, settings) or is_live_plan(before, settings):
        return None
    others = [r for r in records if r.id != after.id and is_live_plan(r, settings)]
    if not others:
        return None

    def age(record: SubscriptionRecord) -> tuple[float, str]:
        return _seconds(record.created), record.id

    kept = min([*others, after], key=age)
    duplicate = after if kept is not after else max(others, key=age)
    return kept.id, duplicate.id


def _seconds(moment: datetime | None) -> float:
    """A time as Unix seconds (none known: the earliest)."""
    return moment.timestamp() if moment is not None else 0.0


def duplicate_notice(account: BillingAccount, kept_id: str, duplicate_id: str) -> Notice:
    """``duplicate_subscription``: ``duplicate_id`` is a second live subscription beside
    ``kept_id``."""
    kwargs = {
        "user_id": account.user_id,
        "account": account,
        "kept_subscription_id": kept_id,
        "duplicate_subscription_id": duplicate_id,
    }
    return Notice("duplicate_subscription", kwargs)


def pending_notices(
    event: StripeEvent, account: BillingAccount, existing: SubscriptionRecord | None
) -> tuple[Notice, ...]:
    """``pending_update_applied`` / ``_expired`` for such an event, once per event id,
    stale or not: the held change was applied or dropped at Stripe whatever came after."""
    subscription = event.subscription
    if subscription is None or event.type not in (PENDING_APPLIED, PENDING_EXPIRED):
        return ()
    kwargs: dict[str, Any] = {
        "user_id": account.user_id,
        "account": account,
        "subscription_id": subscription.id,
    }
    if event.type == PENDING_APPLIED:
        kwargs.update(price_ids=subscription.price_ids, quantity=subscription.quantity)
        return (Notice("pending_update_applied", kwargs),)
    kwargs["pending_update"] = existing.pending_update if existing is not None else None
    return (Notice("pending_update_expired", kwargs),)


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
    """Whether events of this type are decided: about an account (a change, a lifecycle
    signal or an entitlement summary) or a meter (its error report)."""
    return event_type in HANDLED_EVENT_TYPES or event_type in METER_EVENT_TYPES


def unmatched_reason(event: StripeEvent, match: AccountMatch) -> str | None:
    """Why the event cannot be applied to the account it names, or None if it can.

    An event links an unknown customer only to an account that has no customer
    yet: a Payment Link lets the payer choose ``client_reference_id``, so an
    event must never move an account to another customer.
    """
    account = match.account
    if event.customer_id is None and event.customer_account is not None:
        return (
            f"the event names Accounts v2 customer_account {event.customer_account} and no "
            "customer; set STRIPE_MATCH_CUSTOMER_ACCOUNT to match accounts by it"
        )
    if account is None:
        return _no_account_reason(event, match)
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


#: Reads a signed ``client_reference_id``: the user id it carries, or None when it is not
#: one the app signed.
ReferenceReader = Callable[[str], str | None]


def named_user_id(
    event: StripeEvent, read_reference: ReferenceReader, *, signed_only: bool
) -> tuple[str | None, str | None]:
    """The account an event names itself, and why it names none when its reference is
    refused.

    A signed ``client_reference_id`` names the user it was signed for. With
    ``signed_only`` an unsigned or forged one names no account (a Payment Link
    or pricing table lets the payer write any), and ``metadata.user_id``, which
    only an API call with the secret key sets, still does.
    """
    session = event.checkout_session
    if session is None or session.client_reference_id is None:
        return user_id_hint(event), None
    signed = read_reference(session.client_reference_id)
    if signed is not None:
        return signed, None
    if not signed_only:
        return session.client_reference_id, None
    if session.metadata_user_id is not None:
        return session.metadata_user_id, None
    return None, (
        f"client_reference_id {session.client_reference_id!r} is not a reference this app "
        "signed (STRIPE_SIGNED_REFERENCES is on), so it names no account"
    )


def foreign_account_reason(
    account: str | None, settings: Settings, *, kind: str = "event"
) -> str | None:
    """Why an event (or thin notification) from connected account ``account`` is not
    applied, or None when it is the platform's own or the app applies that account's."""
    if account is None or ALL_CONNECT_ACCOUNTS in settings.connect_accounts:
        return None
    if account in settings.connect_accounts:
        return None
    return (
        f"the {kind} comes from connected account {account}, not this platform; "
        "list it in STRIPE_CONNECT_ACCOUNTS to apply its events"
    )


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
    subscription's watermark. Stripe's lifecycle comes first, whatever the
    times say: an ended subscription (``canceled``, ``incomplete_expired``)
    never comes back, and its end is never stale against a record that has not
    ended (a watermark a second ahead, or a server's clock, cannot keep a
    paying plan on an ended subscription). Stripe's ``created`` has
    one-second resolution, so a ``created`` event never overrides a
    same-second event of its own subscription.
    """
    subscription = event.subscription
    if subscription is None or record is None:
        return False
    ends = event.type == "customer.subscription.deleted" or subscription.status in (
        TERMINAL_STATUSES
    )
    if record.status in TERMINAL_STATUSES:
        if not ends:
            return True
    elif ends:
        return False
    if record.last_event_at is None:
        return False
    if event.created < record.last_event_at:
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


def _no_account_reason(event: StripeEvent, match: AccountMatch) -> str:
    """Why no account was found: the reference it carries was refused, no account has its
    customer (or ``customer_account``), or it names neither."""
    if match.refused is not None:
        if event.customer_id is None:
            return match.refused
        return f"no account is linked to customer {event.customer_id}; {match.refused}"
    if event.customer_id is not None and event.customer_id == event.customer_account:
        return f"no account is linked to customer_account {event.customer_id}"
    if event.customer_id is not None:
        also = ""
        if event.customer_account is not None:
            also = (
                f" (its customer_account is {event.customer_account}; set "
                "STRIPE_MATCH_CUSTOMER_ACCOUNT to match accounts by it)"
            )
        return f"no account is linked to customer {event.customer_id}{also}"
    return "the event names no customer and no account"


def _unmatched(event: StripeEvent, reason: str | None) -> Decision:
    """The event stays ``unmatched`` for replay; ``customer_not_found`` says why."""
    reason = reason or "no account"
    notice = Notice("customer_not_found", {"customer_id": event.customer_id, "reason": reason})
    return Decision(UNMATCHED, notices=(notice,), reason=reason)


def _differences(changes: AccountChanges, account: BillingAccount) -> AccountChanges:
    """Only the fields whose value really changes."""
    kept = {k: v for k, v in changes.items() if getattr(account, k) != v}
    return cast(AccountChanges, kept)
