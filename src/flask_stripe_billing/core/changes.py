"""What a subscription change may do and what it asks Stripe. Pure: no Flask, no HTTP.

Each check reads the subscription as Stripe's API has it now (not the record,
which may lag) and raises :class:`~.errors.ConflictError` when its state does
not allow the change; each ``*_params`` builds one request's form fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ..config import Settings
from ..errors import ConflictError, ValidationError
from .account import LIVE_STATUSES, TERMINAL_STATUSES, BillingAccount
from .events import SubscriptionFacts

#: The ``when`` a plan change may take effect.
WHEN_CHOICES = ("now", "period_end")


def subscription_id_of(account: BillingAccount) -> str:
    """The account's subscription, the one it shows; 409 without one."""
    if account.stripe_subscription_id is None or account.stripe_customer_id is None:
        raise ConflictError("No subscription to change; subscribe first", {"subscription": None})
    return account.stripe_subscription_id


def check_owner(account: BillingAccount, facts: SubscriptionFacts) -> None:
    """Refuse a subscription of another customer (a stale or tampered record)."""
    if facts.customer_id != account.stripe_customer_id:
        raise ConflictError(
            "The subscription belongs to another Stripe customer",
            {"subscription": facts.id},
        )


def check_live(facts: SubscriptionFacts) -> None:
    """An ended subscription changes no more (Stripe makes a new one instead)."""
    if facts.status in TERMINAL_STATUSES:
        raise ConflictError(
            "The subscription has ended; subscribe again",
            {"subscription": facts.id, "status": facts.status},
        )


def check_cancel(facts: SubscriptionFacts, *, at_period_end: bool) -> None:
    """Cancel: a live subscription; at period end, only one not already ending."""
    check_live(facts)
    if at_period_end and is_ending(facts):
        raise ConflictError(
            "The subscription is already set to end at the period end",
            {"subscription": facts.id, "cancel_at_period_end": True},
        )


def check_resume(facts: SubscriptionFacts) -> None:
    """Resume: only a live subscription set to end."""
    check_live(facts)
    if not is_ending(facts):
        raise ConflictError(
            "The subscription is not set to end; there is nothing to resume",
            {"subscription": facts.id, "cancel_at_period_end": False},
        )


def check_changeable(facts: SubscriptionFacts) -> None:
    """A plan or quantity change needs a paying (or trialing, or past-due) subscription."""
    check_live(facts)
    if facts.status not in LIVE_STATUSES:  # an unpaid first invoice may not change
        raise ConflictError(
            f"A {facts.status} subscription cannot be changed; complete its payment first",
            {"subscription": facts.id, "status": facts.status},
        )


def configured_price(price_id: Any, settings: Settings) -> str:
    """One of the configured prices (400 otherwise): never a price the caller invents."""
    if not isinstance(price_id, str) or price_id not in settings.configured_prices:
        raise ValidationError("price_id is not one of the configured prices", {"field": "price_id"})
    return price_id


def check_price(price_id: Any, settings: Settings, facts: SubscriptionFacts) -> str:
    """A configured price (400 otherwise) the subscription is not on already (409)."""
    price = configured_price(price_id, settings)
    check_changeable(facts)
    if price in facts.price_ids:
        raise ConflictError(
            "The subscription is on this price already",
            {"subscription": facts.id, "price_id": price},
        )
    return price


def check_quantity(quantity: int, facts: SubscriptionFacts, item: Mapping[str, Any]) -> int:
    """A quantity (already within the seat bounds) other than the item's now (409)."""
    check_changeable(facts)
    if quantity == item.get("quantity"):
        raise ConflictError(
            "The subscription has this quantity already",
            {"subscription": facts.id, "quantity": quantity},
        )
    return quantity


def check_when(when: Any) -> bool:
    """``now`` or ``period_end``; True for the period end."""
    if when not in WHEN_CHOICES:
        raise ValidationError('when must be "now" or "period_end"', {"field": "when"})
    return bool(when == "period_end")


def keeps_current_price(
    subscription: Mapping[str, Any], facts: SubscriptionFacts, price_id: str
) -> bool:
    """Whether a change at the period end to the current price undoes a scheduled change."""
    return schedule_id_of(subscription) is not None and price_id in facts.price_ids


def check_not_scheduled(subscription: Mapping[str, Any]) -> None:
    """A change made now would be undone by a schedule's next phase: refuse it."""
    schedule = schedule_id_of(subscription)
    if schedule is not None:
        raise ConflictError(
            "A plan change is scheduled for the period end; schedule the current price "
            "at the period end to undo it first",
            {"subscription": subscription.get("id"), "schedule": schedule},
        )


def is_ending(facts: SubscriptionFacts) -> bool:
    """Whether the subscription is set to end (at the period end or a set time)."""
    return facts.cancel_at_period_end or facts.cancel_at is not None


def changed_item(subscription: Mapping[str, Any], settings: Settings) -> Mapping[str, Any]:
    """The item a plan or quantity change is about: the one on a configured price, else
    the first."""
    items = _items(subscription)
    if not items:
        raise ConflictError(
            "The subscription has no items", {"subscription": subscription.get("id")}
        )
    configured = settings.configured_prices
    return next((item for item in items if price_of(item) in configured), items[0])


def cancel_params(*, at_period_end: bool) -> dict[str, Any]:
    """Set (or, for resume, clear) the end at the period end."""
    return {"cancel_at_period_end": at_period_end}


def resume_params(facts: SubscriptionFacts) -> dict[str, Any]:
    """Undo a pending end: ``cancel_at_period_end=false``, and clear a set ``cancel_at``."""
    if facts.cancel_at_period_end:
        return {"cancel_at_period_end": False}
    return {"cancel_at": ""}


def item_params(
    item: Mapping[str, Any],
    proration_behavior: str,
    *,
    price_id: str | None = None,
    quantity: int | None = None,
    metered: list[dict[str, Any]] | None = None,
    payment_behavior: str | None = None,
) -> dict[str, Any]:
    """Change one item's price or quantity now, prorated as configured; ``metered`` is
    :func:`metered_changes`' answer for a price change. With
    ``payment_behavior="pending_if_incomplete"`` Stripe holds the change (the
    subscription's ``pending_update``) until its invoice is paid."""
    change: dict[str, Any] = {"id": item.get("id")}
    if price_id is not None:
        change["price"] = price_id
    if quantity is not None:
        change["quantity"] = quantity
    params: dict[str, Any] = {
        "items": [change, *(metered or [])],
        "proration_behavior": proration_behavior,
    }
    if payment_behavior is not None:
        params["payment_behavior"] = payment_behavior
    return params


def metered_changes(
    subscription: Mapping[str, Any], price_id: str, settings: Settings
) -> list[dict[str, Any]]:
    """The metered items a move to the licensed ``price_id`` changes: an item on a
    configured metered price the new plan lacks is deleted, and each metered price of the
    new plan the subscription lacks is added, without a quantity (Stripe refuses one on
    a metered price). Items on prices the settings do not name are left alone."""
    items = _items(subscription)
    dropped, added = metered_moves([price_of(item) for item in items], price_id, settings)
    removed = [
        {"id": item.get("id"), "deleted": True} for item in items if price_of(item) in dropped
    ]
    return [*removed, *({"price": price} for price in added)]


def metered_moves(
    prices: list[str | None], price_id: str, settings: Settings
) -> tuple[frozenset[str], tuple[str, ...]]:
    """Which of ``prices`` (a subscription's) a move to the licensed ``price_id`` drops —
    the configured metered prices its plan lacks — and which metered prices it adds."""
    wanted = settings.metered_prices_for(price_id)
    dropped = frozenset(p for p in prices if p in settings.every_metered_price and p not in wanted)
    return dropped, tuple(price for price in wanted if price not in prices)


def schedule_params(
    schedule: Mapping[str, Any], old_price: str, new_price: str, settings: Settings
) -> dict[str, Any]:
    """The schedule's phases: the current one unchanged until its end, then the new price
    with the new plan's metered prices in place of the old plan's.

    The last phase lasts one billing period; ``end_behavior=release`` then leaves
    the subscription on the new price, free of the schedule.
    """
    current = _current_phase(schedule)
    items = [_phase_item(item) for item in current.get("items") or []]
    later = [{**item, "price": new_price} if item["price"] == old_price else item for item in items]
    later = _with_metered(later, new_price, settings)
    return {
        "end_behavior": "release",
        "phases": [
            {
                "items": items,
                "start_date": current.get("start_date"),
                "end_date": current.get("end_date"),
            },
            {"items": later, "proration_behavior": "none"},
        ],
        "expand": ["subscription"],
    }


def preview_params(
    subscription: Mapping[str, Any],
    item: Mapping[str, Any],
    price_id: str,
    proration_behavior: str,
    settings: Settings,
) -> dict[str, Any]:
    """``create_preview`` of the subscription with the item on ``price_id`` and the metered
    items moved as :func:`metered_changes` says."""
    metered = metered_changes(subscription, price_id, settings)
    return {
        "customer": _id(subscription.get("customer")),
        "subscription": subscription.get("id"),
        "subscription_details": {
            "items": [{"id": item.get("id"), "price": price_id}, *metered],
            "proration_behavior": proration_behavior,
        },
    }


def idempotency_key(action: str) -> str:
    """A new key per change: Stripe's retries of it are safe, and a later change of the
    same kind (cancel, resume, cancel again) is never answered from Stripe's cache."""
    return f"flask-stripe-billing-{action}-{uuid.uuid4().hex}"


def price_of(item: Mapping[str, Any]) -> str | None:
    """An item's price id, whether bare or expanded."""
    return _id(item.get("price"))


def schedule_id_of(subscription: Mapping[str, Any]) -> str | None:
    """The schedule managing the subscription, if any."""
    return _id(subscription.get("schedule"))


def _current_phase(schedule: Mapping[str, Any]) -> Mapping[str, Any]:
    """The phase running now (by ``current_phase``), else the first."""
    phases = [p for p in schedule.get("phases") or [] if isinstance(p, Mapping)]
    if not phases:
        raise ConflictError(
            "The subscription schedule has no phase", {"schedule": schedule.get("id")}
        )
    current = schedule.get("current_phase")
    if isinstance(current, Mapping):
        start = current.get("start_date")
        return next((p for p in phases if p.get("start_date") == start), phases[0])
    return phases[0]


def _phase_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A phase item as a request takes it: the price id and the quantity."""
    phase_item: dict[str, Any] = {"price": price_of(item)}
    if item.get("quantity") is not None:
        phase_item["quantity"] = item["quantity"]
    return phase_item


def _with_metered(
    items: list[dict[str, Any]], price_id: str, settings: Settings
) -> list[dict[str, Any]]:
    """Phase items with the configured metered prices the plan of ``price_id`` lacks left
    out and its own added (no quantity)."""
    dropped, added = metered_moves([item["price"] for item in items], price_id, settings)
    kept = [item for item in items if item["price"] not in dropped]
    return [*kept, *({"price": price} for price in added)]


def _items(subscription: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = subscription.get("items")
    data = items.get("data") if isinstance(items, Mapping) else None
    return [item for item in data or [] if isinstance(item, Mapping)]


def _id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None
