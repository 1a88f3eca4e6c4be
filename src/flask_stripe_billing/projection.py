"""The account as a projection of its subscription records. Pure: no Flask, no database.

Because each record converges on its own whatever the delivery order, and the
account's billing fields are a function of the records alone, any delivery
order ends where in-order delivery ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from .account import FREE_PLAN, AccountChanges
from .config import Settings
from .subscriptions import PAID_STATUSES, SubscriptionRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def grants_plan(record: SubscriptionRecord, settings: Settings) -> bool:
    """Whether the subscription's status grants its plan (``past_due``: while the grace applies)."""
    return record.status in PAID_STATUSES or (
        record.status == "past_due" and settings.past_due_keeps_plan
    )


def primary_subscription(
    records: Iterable[SubscriptionRecord], settings: Settings
) -> SubscriptionRecord | None:
    """The record the account shows: best status, then highest plan, then the newest.

    Status order: active or trialing, then past_due while the grace applies,
    then the rest; so an ``incomplete`` retry or a late-ending old subscription
    never displaces a live one.
    """

    def rank(record: SubscriptionRecord) -> tuple[int, int, datetime, str]:
        if record.status in PAID_STATUSES:
            by_status = 2
        elif record.status == "past_due" and settings.past_due_keeps_plan:
            by_status = 1
        else:
            by_status = 0
        granted = settings.plan_rank(record.plan) if by_status else -1
        return (by_status, granted, record.created or _EPOCH, record.id)

    return max(records, key=rank, default=None)


def project(records: Iterable[SubscriptionRecord], settings: Settings) -> AccountChanges:
    """The account's subscription fields, from its primary subscription (none: free)."""
    primary = primary_subscription(records, settings)
    if primary is None:
        return {
            "stripe_subscription_id": None,
            "plan": FREE_PLAN,
            "subscription_status": None,
            "current_period_end": None,
            "cancel_at_period_end": False,
            "trial_end": None,
            "subscription_quantity": None,
        }
    return {
        "stripe_subscription_id": primary.id,
        "plan": primary.plan if grants_plan(primary, settings) else FREE_PLAN,
        "subscription_status": primary.status,
        "current_period_end": primary.current_period_end,
        "cancel_at_period_end": primary.cancel_at_period_end,
        "trial_end": primary.trial_end,
        "subscription_quantity": primary.quantity,
    }
