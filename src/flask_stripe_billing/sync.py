"""Reconciliation with Stripe's API: a customer's current subscription, applied by the rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .clock import utcnow
from .events import StripeEvent, parse_event
from .extension import BillingState
from .rules import LIVE_STATUSES
from .stripe_api import API_VERSION
from .webhook import Outcome, announce_changes, apply_snapshot

#: The type of the event a snapshot is applied as.
SNAPSHOT_EVENT_TYPE = "customer.subscription.updated"


def sync_customer(
    state: BillingState, app: Any, customer_id: str, current_subscription_id: str | None
) -> Outcome | None:
    """Read the customer's subscriptions and apply the current one; None if there is none.

    Applied like a delivered ``customer.subscription.updated`` (the rules decide,
    signals go out for real changes), created now: the state was read now, so
    webhooks created earlier that arrive later are stale. Nothing is written to
    the event log. Raises :class:`~.errors.StripeServiceError` if Stripe fails.
    """
    listed = state.require_stripe().list_subscriptions(customer_id)
    subscriptions = [s for s in listed if _customer_of(s) == customer_id]
    current = choose_subscription(subscriptions, current_subscription_id)
    if current is None:
        return None
    outcome = apply_snapshot(
        snapshot_event(current), state.user_store, state.event_log, state.settings
    )
    announce_changes(app, outcome)
    return outcome


def choose_subscription(
    subscriptions: Sequence[Mapping[str, Any]], current_id: str | None
) -> Mapping[str, Any] | None:
    """The customer's current subscription: the newest live one (active, trialing, past_due).

    With none live: the account's own subscription when Stripe lists it (so its
    end is applied), else the newest of any status.
    """

    def created(subscription: Mapping[str, Any]) -> int:
        value = subscription.get("created")
        return value if isinstance(value, int) else 0

    live = [s for s in subscriptions if s.get("status") in LIVE_STATUSES]
    if live:
        return max(live, key=created)
    own = [s for s in subscriptions if current_id is not None and s.get("id") == current_id]
    return max(own or subscriptions, key=created, default=None)


def snapshot_event(subscription: Mapping[str, Any]) -> StripeEvent:
    """A ``customer.subscription.updated`` event (id ``sync_<subscription id>``), created now."""
    return parse_event(
        {
            "id": f"sync_{subscription.get('id')}",
            "object": "event",
            "type": SNAPSHOT_EVENT_TYPE,
            "created": int(utcnow().timestamp()),
            "api_version": API_VERSION,
            "livemode": bool(subscription.get("livemode")),
            "data": {"object": dict(subscription)},
        }
    )


def _customer_of(subscription: Mapping[str, Any]) -> str | None:
    """The subscription's customer id, whether bare or expanded."""
    customer = subscription.get("customer")
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    return customer if isinstance(customer, str) else None
