"""One Stripe subscription as the library records it: its facts and its own watermark."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from .clock import as_utc

#: Statuses that grant the subscription's plan.
PAID_STATUSES = frozenset({"active", "trialing"})
#: Statuses a subscription never leaves (Stripe makes a new subscription instead).
TERMINAL_STATUSES = frozenset({"canceled", "incomplete_expired"})


@dataclass(frozen=True)
class SubscriptionRecord:
    """A row of the library's subscription table, for one Stripe subscription."""

    id: str
    user_id: str
    customer_id: str | None
    status: str
    price_ids: tuple[str, ...]
    #: The plan its prices grant (while its status grants anything).
    plan: str
    quantity: int | None
    trial_end: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    cancel_at: datetime | None
    ended_at: datetime | None
    #: The subscription's own creation time at Stripe.
    created: datetime | None
    #: Creation time of the last event applied to this subscription: its ordering
    #: watermark. None when only a Checkout session made the record.
    last_event_at: datetime | None

    def in_utc(self) -> SubscriptionRecord:
        """The same record with every time in UTC (what stores keep and give back)."""
        return replace(
            self,
            trial_end=as_utc(self.trial_end),
            current_period_end=as_utc(self.current_period_end),
            cancel_at=as_utc(self.cancel_at),
            ended_at=as_utc(self.ended_at),
            created=as_utc(self.created),
            last_event_at=as_utc(self.last_event_at),
        )
