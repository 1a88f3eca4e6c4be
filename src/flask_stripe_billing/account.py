"""One user's billing state, and the changes the rules ask a store to make."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypedDict

FREE_PLAN = "free"


@dataclass(frozen=True)
class BillingAccount:
    """What the extension knows of one user's billing, as a store returns it."""

    user_id: str
    email: str | None = None
    stripe_customer_id: str | None = None
    stripe_subscription_id: str | None = None
    plan: str = FREE_PLAN
    subscription_status: str | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    updated_at: datetime | None = None
    #: Creation time of the last Stripe event applied to this account: the
    #: ordering watermark that keeps a late, older event from undoing a newer one.
    last_event_at: datetime | None = None

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
    last_event_at: datetime | None
