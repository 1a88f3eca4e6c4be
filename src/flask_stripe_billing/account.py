"""One account's billing state, and the changes a store is asked to make to it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypedDict

FREE_PLAN = "free"


@dataclass(frozen=True)
class BillingAccount:
    """What the extension knows of one account's billing, as a store returns it.

    The subscription fields are a projection of the account's subscription
    records: those of its primary subscription (see :mod:`.projection`).
    """

    user_id: str
    email: str | None = None
    stripe_customer_id: str | None = None
    stripe_subscription_id: str | None = None
    plan: str = FREE_PLAN
    subscription_status: str | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    updated_at: datetime | None = None
    #: The primary subscription's trial end (None: no trial).
    trial_end: datetime | None = None
    #: The primary subscription's quantity (seats), when Stripe gives one.
    subscription_quantity: int | None = None

    def with_changes(self, changes: AccountChanges) -> BillingAccount:
        """Return a copy with ``changes`` applied (what a store's ``apply`` does)."""
        return replace(self, **changes)


class AccountChanges(TypedDict, total=False):
    """The fields of a :class:`BillingAccount` to change; absent keys stay as they are."""

    stripe_customer_id: str | None
    stripe_subscription_id: str | None
    plan: str
    subscription_status: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    updated_at: datetime | None
    trial_end: datetime | None
    subscription_quantity: int | None
