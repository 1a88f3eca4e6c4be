"""What each handled event type does to its subscription's record: one short function each.

Pure, like the rules that call them. An unknown event type has no handler: it is
recorded and acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable

from .account import FREE_PLAN, BillingAccount
from .config import Settings
from .entitlements import SUMMARY_EVENT
from .events import StripeEvent, SubscriptionFacts
from .lifecycle import LIFECYCLE_SIGNALS
from .subscriptions import TERMINAL_STATUSES, SubscriptionRecord

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


RULES: dict[str, Handler] = {
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_completed,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_deleted,
}

#: The event types to enable on the Stripe webhook endpoint: those that change
#: records, the lifecycle events that only become signals, then entitlement summaries.
HANDLED_EVENT_TYPES = (*RULES, *LIFECYCLE_SIGNALS, SUMMARY_EVENT)
