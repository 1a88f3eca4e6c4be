"""The decision rules: event + account → change. Pure: no Flask, no HTTP, no database.

Each handled event type maps to one short function, as in DESIGN.md's event table.
"""

from __future__ import annotations

from collections.abc import Callable

from .account import FREE_PLAN, AccountChanges, BillingAccount
from .config import Settings
from .events import StripeEvent

#: Statuses that grant the paid plan.
PAID_STATUSES = frozenset({"active", "trialing"})
#: Statuses of a subscription that is still the customer's current one.
LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})
#: Statuses that end the paid plan.
ENDED_STATUSES = frozenset({"canceled", "unpaid", "incomplete_expired", "paused"})
#: Statuses a subscription never leaves (Stripe makes a new subscription instead).
TERMINAL_STATUSES = frozenset({"canceled", "incomplete_expired"})
#: Checkout payment states that mean the customer has paid (or owes nothing yet).
SETTLED_PAYMENT_STATUSES = frozenset({"paid", "no_payment_required"})

Rule = Callable[[StripeEvent, BillingAccount, Settings], AccountChanges | None]


def decide(
    event: StripeEvent, account: BillingAccount, settings: Settings
) -> AccountChanges | None:
    """The changes ``event`` makes to ``account``, or None when it changes nothing."""
    rule = RULES.get(event.type)
    if rule is None or is_stale(event, account):
        return None
    changes = rule(event, account, settings)
    return _differences(changes, account) if changes else None


def is_handled(event_type: str) -> bool:
    """Whether events of this type can change an account."""
    return event_type in RULES


def is_stale(event: StripeEvent, account: BillingAccount) -> bool:
    """Whether a newer event was already applied (Stripe does not keep order).

    Stripe's ``created`` has one-second resolution, so two facts of Stripe's
    subscription lifecycle settle ties: a subscription that ended (``canceled``,
    ``incomplete_expired``) never comes back, and nothing about a subscription
    is older than its ``created`` event.
    """
    watermark = account.last_event_at
    if watermark is not None and event.created < watermark:
        return True
    subscription = event.subscription
    if subscription is None or account.stripe_subscription_id != subscription.id:
        return False
    if account.subscription_status in TERMINAL_STATUSES:
        return subscription.status not in TERMINAL_STATUSES
    return event.type == "customer.subscription.created" and event.created == watermark


def is_about_current_subscription(event: StripeEvent, account: BillingAccount) -> bool:
    """Whether the event speaks of the subscription the account holds now.

    Such an event moves the ordering watermark even when it changes nothing, so
    that an older event of the same subscription arriving later is not applied.
    """
    subscription = event.subscription
    return subscription is not None and account.stripe_subscription_id == subscription.id


def moves_watermark(event: StripeEvent) -> bool:
    """Whether applying the event moves the account's ordering watermark.

    Only a subscription's own events carry its whole state. A Checkout session
    says "paid", not where the subscription stands, so the subscription events
    sent around it (often a second earlier) must still apply after it.
    """
    return event.subscription is not None


def user_id_hint(event: StripeEvent) -> str | None:
    """The user an event names itself, for linking a customer not yet known."""
    if event.checkout_session is not None:
        return event.checkout_session.user_id
    if event.subscription is not None:
        return event.subscription.user_id
    return None


def checkout_completed(
    event: StripeEvent, account: BillingAccount, settings: Settings
) -> AccountChanges | None:
    """A paid (or free-trial) subscription Checkout grants the paid plan."""
    session = event.checkout_session
    if session is None or session.mode != "subscription":
        return None
    if session.payment_status not in SETTLED_PAYMENT_STATUSES:
        return None  # async payment pending: async_payment_succeeded applies it
    if (
        session.subscription_id is not None
        and account.stripe_subscription_id == session.subscription_id
        and account.subscription_status in PAID_STATUSES
    ):
        # The subscription's own event (created just before) already granted the
        # plan from its real price and status; the session knows less (a trial is
        # not "active", a Payment Link carries no price metadata).
        return None
    prices = (session.price_id,) if session.price_id else ()
    changes: AccountChanges = {
        "plan": settings.plan_for_prices(prices),
        "subscription_status": "active",
    }
    if session.subscription_id:
        changes["stripe_subscription_id"] = session.subscription_id
    return changes


def subscription_created(
    event: StripeEvent, account: BillingAccount, settings: Settings
) -> AccountChanges | None:
    """Active or trialing → paid plan; any other status is stored, plan unchanged."""
    changes = _subscription_state(event, account)
    if changes is None or event.subscription is None:
        return None
    if event.subscription.status in PAID_STATUSES:
        changes["plan"] = settings.plan_for_prices(event.subscription.price_ids)
    return changes


def subscription_updated(
    event: StripeEvent, account: BillingAccount, settings: Settings
) -> AccountChanges | None:
    """Paid statuses grant the plan, ended ones take it away, past_due is a grace.

    The grace grants the subscription's plan rather than keeping the account's:
    when a ``past_due`` event arrives before the older ``active`` one (which is
    then stale), the result must not depend on the order of delivery.
    """
    changes = _subscription_state(event, account)
    if changes is None or event.subscription is None:
        return None
    status = event.subscription.status
    if status in PAID_STATUSES or (status == "past_due" and settings.past_due_keeps_plan):
        changes["plan"] = settings.plan_for_prices(event.subscription.price_ids)
    elif status in ENDED_STATUSES or (status == "past_due" and not settings.past_due_keeps_plan):
        changes["plan"] = FREE_PLAN
    return changes


def subscription_deleted(
    event: StripeEvent, account: BillingAccount, settings: Settings
) -> AccountChanges | None:
    """The current subscription ended: back to free. Another one's end changes nothing.

    Its last period end is stored too, so that the account ends the same whether
    or not the older events of the subscription were applied before this one.
    """
    subscription = event.subscription
    if subscription is None:
        return None
    current = account.stripe_subscription_id
    if current is not None and current != subscription.id:
        return None
    return {
        "plan": FREE_PLAN,
        "subscription_status": "canceled",
        "stripe_subscription_id": subscription.id,
        "current_period_end": subscription.current_period_end,
        "cancel_at_period_end": False,
    }


def _subscription_state(event: StripeEvent, account: BillingAccount) -> AccountChanges | None:
    """The subscription's own fields, unless it must not replace the current one.

    A second subscription that does not grant the plan (say, an ``incomplete``
    one) never overwrites a current subscription that is still live.
    """
    subscription = event.subscription
    if subscription is None:
        return None
    is_other = account.stripe_subscription_id not in (None, subscription.id)
    if (
        is_other
        and account.subscription_status in LIVE_STATUSES
        and subscription.status not in PAID_STATUSES
    ):
        return None
    return {
        "stripe_subscription_id": subscription.id,
        "subscription_status": subscription.status,
        "current_period_end": subscription.current_period_end,
        "cancel_at_period_end": subscription.cancel_at_period_end,
    }


def _differences(changes: AccountChanges, account: BillingAccount) -> AccountChanges | None:
    """Only the fields whose value really changes; None if there are none."""
    kept = {k: v for k, v in changes.items() if getattr(account, k) != v}
    return AccountChanges(**kept) if kept else None  # type: ignore[typeddict-item]


RULES: dict[str, Rule] = {
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_completed,
    "customer.subscription.created": subscription_created,
    "customer.subscription.updated": subscription_updated,
    "customer.subscription.deleted": subscription_deleted,
}

#: The event types to enable on the Stripe webhook endpoint.
HANDLED_EVENT_TYPES = tuple(RULES)
