"""What a subscription means: its record, the status vocabulary, whether it grants
its plan, and the account as the projection of its records. Pure: no Flask, no database."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypedDict

from .._util import as_utc, utcnow
from ..config import Settings
from .events import PendingUpdate

# The status vocabulary: every set of Stripe subscription statuses the package names.

#: Statuses that grant the subscription's plan.
PAID_STATUSES = frozenset({"active", "trialing"})


#: The status of a subscription whose renewal failed while Stripe retries: it grants
#: the plan while the app's grace (``STRIPE_PAST_DUE_KEEPS_PLAN``) applies.
PAST_DUE = "past_due"


#: Statuses of a subscription still running: paid, or past_due while Stripe retries.
LIVE_STATUSES = PAID_STATUSES | {PAST_DUE}


#: Statuses a subscription never leaves (Stripe makes a new subscription instead).
TERMINAL_STATUSES = frozenset({"canceled", "incomplete_expired"})


#: Statuses of a subscription that gives nothing any more (see docs/gating.md).
ENDED_STATUSES = TERMINAL_STATUSES | {"unpaid", "paused"}


def grants_plan(status: str | None, past_due_keeps_plan: bool) -> bool:
    """Whether a subscription in ``status`` grants its plan: paid, or ``past_due`` while the
    grace (the app's ``STRIPE_PAST_DUE_KEEPS_PLAN``) applies."""
    return status in PAID_STATUSES or (status == PAST_DUE and past_due_keeps_plan)


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
    #: The change Stripe holds until its payment goes through (3-D Secure); None: none.
    pending_update: PendingUpdate | None = None

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


def encode_pending_update(pending: PendingUpdate | None) -> str | None:
    """A pending update as the subscription table keeps it: JSON text (None: none)."""
    if pending is None:
        return None
    expires_at = int(pending.expires_at.timestamp()) if pending.expires_at else None
    value = {"price_ids": list(pending.price_ids), "quantity": pending.quantity}
    return json.dumps({**value, "expires_at": expires_at}, sort_keys=True)


def decode_pending_update(text: str | None) -> PendingUpdate | None:
    """The pending update of a subscription table's JSON text (None or empty: none)."""
    if not text:
        return None
    value = json.loads(text)
    expires_at = value.get("expires_at")
    return PendingUpdate(
        price_ids=tuple(str(price) for price in value.get("price_ids") or ()),
        quantity=value.get("quantity"),
        expires_at=datetime.fromtimestamp(expires_at, tz=UTC) if expires_at else None,
    )


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
    #: The customer's active Stripe Entitlements (feature lookup keys). Kept in the
    #: library's own table, not on the host's model: filled in where the extension
    #: hands an account out (gates, templates, ``billing.account()``), empty elsewhere.
    features: frozenset[str] = frozenset()
    #: The app's ``STRIPE_PAST_DUE_KEEPS_PLAN``, which :meth:`is_paying` follows: filled in
    #: where the extension hands an account out, as ``features`` is (True elsewhere).
    past_due_keeps_plan: bool = True
    #: The features the account's purchases give for life (``STRIPE_BILLING_PRODUCT_FEATURES``
    #: of each paid purchase not fully refunded nor lost in a dispute): filled in where the
    #: extension hands an account out, as ``features`` is (empty elsewhere).
    purchased_features: frozenset[str] = frozenset()

    @property
    def seats(self) -> int | None:
        """The seats the account pays for: its primary subscription's quantity.

        None before the first subscription (or until Stripe's subscription event
        says). Whether the seats still give access is the plan's business:
        check :meth:`is_paying` or :meth:`has_plan` too.
        """
        return self.subscription_quantity

    def with_changes(self, changes: AccountChanges) -> BillingAccount:
        """Return a copy with ``changes`` applied (what a store's ``apply`` does)."""
        return replace(self, **changes)

    # Queries: pure, on the stored fields; ``now`` defaults to the current UTC time.

    def is_paying(self, *, past_due_keeps_plan: bool | None = None) -> bool:
        """Whether the subscription pays for access: active, trialing, or past_due in grace.

        The grace is the app's ``STRIPE_PAST_DUE_KEEPS_PLAN`` (on by default) for an
        account the extension handed out; ``past_due_keeps_plan`` overrides it.
        """
        if past_due_keeps_plan is None:
            past_due_keeps_plan = self.past_due_keeps_plan
        return grants_plan(self.subscription_status, past_due_keeps_plan)

    def on_trial(self, now: datetime | None = None) -> bool:
        """Whether the subscription is trialing and its trial has not ended yet."""
        trial_end = as_utc(self.trial_end)
        return (
            self.subscription_status == "trialing"
            and trial_end is not None
            and trial_end > _utc_now_or(now)
        )

    def on_grace_period(self, now: datetime | None = None) -> bool:
        """Whether the subscription ends at a period end still ahead: access until then."""
        period_end = as_utc(self.current_period_end)
        return (
            self.cancel_at_period_end
            and self.subscription_status in LIVE_STATUSES
            and period_end is not None
            and period_end > _utc_now_or(now)
        )

    def is_past_due(self) -> bool:
        """Whether Stripe is retrying a failed payment of the subscription."""
        return self.subscription_status == PAST_DUE

    def has_ended(self) -> bool:
        """Whether the account had a subscription that now gives nothing.

        An account that never subscribed (no status) has not ended; a subscription
        that ended keeps its record, so its status says so.
        """
        return self.subscription_status in ENDED_STATUSES

    def has_plan(self, *plans: str) -> bool:
        """Whether the account's plan is one of ``plans`` (none given: any paid plan).

        ``plan`` is already ``free`` when the status grants nothing.
        """
        if not plans:
            return self.plan != FREE_PLAN
        return self.plan in plans

    def has_feature(self, feature: str, settings: Settings) -> bool:
        """Whether the account has ``feature``: an active Stripe entitlement with that lookup
        key, its plan's features in ``STRIPE_BILLING_FEATURES``, or a purchase's in
        ``STRIPE_BILLING_PRODUCT_FEATURES``."""
        return (
            feature in self.features
            or feature in self.purchased_features
            or feature in settings.features.get(self.plan, ())
        )


def _utc_now_or(now: datetime | None) -> datetime:
    """``now`` in UTC (naive is taken as UTC), or the current time."""
    return as_utc(now) or utcnow()


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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def primary_subscription(
    records: Iterable[SubscriptionRecord], settings: Settings
) -> SubscriptionRecord | None:
    """The record the account shows: best status, then highest plan, then the newest.

    Status order: active or trialing, then past_due while the grace applies,
    then the rest; so an ``incomplete`` retry or a late-ending old subscription
    never displaces a live one.
    """

    def rank(record: SubscriptionRecord) -> tuple[bool, bool, int, datetime, str]:
        granting = grants_plan(record.status, settings.past_due_keeps_plan)
        paid = record.status in PAID_STATUSES
        granted = settings.plan_rank(record.plan) if granting else -1
        return (granting, paid, granted, record.created or _EPOCH, record.id)

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
    granted = grants_plan(primary.status, settings.past_due_keeps_plan)
    return {
        "stripe_subscription_id": primary.id,
        "plan": primary.plan if granted else FREE_PLAN,
        "subscription_status": primary.status,
        "current_period_end": primary.current_period_end,
        "cancel_at_period_end": primary.cancel_at_period_end,
        "trial_end": primary.trial_end,
        "subscription_quantity": primary.quantity,
    }
