"""Stripe events built from the templates shipped in ``event_templates/`` (real payloads).

Both payload layouts: ``current`` (API versions since 2025-03-31, periods on the
subscription items) and ``legacy`` (``current_period_*`` on the subscription).
Public through :mod:`flask_stripe_billing.testing`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

from .account import TERMINAL_STATUSES
from .checkout import PRODUCT_METADATA, QUANTITY_METADATA
from .entitlements import SUMMARY_EVENT, SUMMARY_PAGE_SIZE
from .payments import CHARGE_REFUNDED, DISPUTE_EVENTS, REFUND_EVENTS
from .rules import HANDLED_EVENT_TYPES

#: The handled types :func:`build_event` has a template of: every one.
TEMPLATE_EVENT_TYPES = HANDLED_EVENT_TYPES

#: A Checkout session's mode: ``subscription`` (a plan) or ``payment`` (a one-time purchase).
CheckoutMode = Literal["subscription", "payment"]

CHECKOUT_MODES: tuple[str, ...] = ("subscription", "payment")

#: ``current``: API versions since 2025-03-31 (periods on the subscription items);
#: ``legacy``: older ones (``current_period_*`` on the subscription).
ApiLayout = Literal["current", "legacy"]


API_LAYOUTS: tuple[str, ...] = ("current", "legacy")


DEFAULT_CUSTOMER = "cus_test"


DEFAULT_SUBSCRIPTION = "sub_test"


DEFAULT_PRICE = "price_test"


#: The payment a purchase's events name by default, and its charge, refund and dispute.
DEFAULT_PAYMENT_INTENT = "pi_test"
DEFAULT_CHARGE = "ch_test"
DEFAULT_REFUND = "re_test"
DEFAULT_DISPUTE = "dp_test"


#: Fields of a Stripe object holding a Unix time; moved together to the event's time.
_TIMESTAMP_KEYS = frozenset(
    {
        "billing_cycle_anchor",
        "cancel_at",
        "canceled_at",
        "created",
        "current_period_end",
        "current_period_start",
        "due_by",
        "effective_at",
        "end",
        "ended_at",
        "expires_at",
        "finalized_at",
        "next_payment_attempt",
        "paid_at",
        "period_end",
        "period_start",
        "start",
        "start_date",
        "trial_end",
        "trial_start",
        "updated_at",
        "webhooks_delivered_at",
    }
)


_DEFAULT_PAYMENT = {"checkout.session.async_payment_failed": "unpaid"}


_DEFAULT_STATUSES = {
    "customer.subscription.deleted": "canceled",
    "customer.subscription.trial_will_end": "trialing",
    "refund.created": "succeeded",
    "refund.updated": "succeeded",
    "refund.failed": "failed",
    "charge.dispute.created": "needs_response",
    "charge.dispute.updated": "under_review",
    "charge.dispute.closed": "lost",
}


def build_event(
    event_type: str,
    *,
    customer: str | None = DEFAULT_CUSTOMER,
    subscription: str | None = DEFAULT_SUBSCRIPTION,
    status: str | None = None,
    price: str = DEFAULT_PRICE,
    user_id: str | int | None = None,
    client_reference_id: str | int | None = None,
    payment_status: str | None = None,
    cancel_at_period_end: bool = False,
    created: int | datetime | None = None,
    event_id: str | None = None,
    api_layout: ApiLayout = "current",
    features: Iterable[str] | None = None,
    mode: CheckoutMode = "subscription",
    product: str | None = None,
    quantity: int = 1,
    amount: int | None = None,
    refund_amount: int | None = None,
    payment_intent: str = DEFAULT_PAYMENT_INTENT,
) -> dict[str, Any]:
    """A Stripe event of a handled type, as Stripe would deliver it, as a plain dict.

    Subscription events (``customer.subscription.*``): ``status`` defaults to
    ``active`` (``canceled`` for ``.deleted``); ``user_id`` goes to
    ``metadata.user_id``, as on subscriptions made by this package's Checkout.
    Checkout events (``checkout.session.*``, mode ``subscription``):
    ``payment_status`` defaults to ``paid``; ``user_id`` goes to
    ``metadata.user_id`` and, unless ``client_reference_id`` is given, to
    ``client_reference_id``; ``price`` to ``metadata.price_id``.
    Invoice events (``invoice.*``) are the invoice of ``subscription`` for
    ``customer`` (matched by the customer alone, so ``user_id`` is not used);
    ``customer.subscription.trial_will_end`` is a ``trialing`` subscription.
    ``entitlements.active_entitlement_summary.updated`` lists one active
    entitlement per lookup key in ``features`` (none by default); past 10 it
    lists the first 10 and sets ``has_more``, as Stripe does (matched by the
    customer alone: ``user_id`` is not used).

    One-time purchases: ``mode="payment"`` makes a Checkout event a paid session of
    ``quantity`` of ``product`` for ``amount`` (as this package's Checkout names them in
    the metadata), its payment ``payment_intent``. ``charge.refunded`` is that payment's
    charge with ``refund_amount`` refunded (default: all of ``amount``); ``refund.*`` a
    refund of ``refund_amount`` (default: all), ``status`` ``succeeded`` (``.failed``:
    ``failed``); ``charge.dispute.*`` a dispute of the payment, ``status``
    ``needs_response`` (``.updated``: ``under_review``, ``.closed``: ``lost``). They are
    matched by the payment intent alone (``user_id`` is not used).

    ``created`` (default now) is the event's time; the object's own times move
    with it. ``event_id`` defaults to a new unique id. ``api_layout="legacy"``
    gives the payload of API versions before 2025-03-31 (``current_period_*``
    on the subscription instead of its items). Change anything else in the
    returned dict before posting it.
    """
    if event_type not in TEMPLATE_EVENT_TYPES:
        raise ValueError(
            f"no template for {event_type!r}; the types with one are "
            + ", ".join(TEMPLATE_EVENT_TYPES)
        )
    if api_layout not in API_LAYOUTS:
        raise ValueError(f"api_layout must be one of {', '.join(API_LAYOUTS)}")
    if mode not in CHECKOUT_MODES:
        raise ValueError(f"mode must be one of {', '.join(CHECKOUT_MODES)}")
    checkout = event_type.startswith("checkout.session.")
    payment_mode = checkout and mode == "payment"
    purchase = event_type in (CHARGE_REFUNDED, *REFUND_EVENTS, *DISPUTE_EVENTS)
    if mode == "payment" and not checkout:
        raise ValueError(f"mode is a Checkout session's; not for {event_type}")
    if not (payment_mode or purchase):
        for name, value in (
            ("product", product),
            ("amount", amount),
            ("refund_amount", refund_amount),
        ):
            if value is not None:
                raise ValueError(f"{name} is a one-time purchase's; not for {event_type}")
    if quantity < 1:
        raise ValueError("quantity must be at least 1")
    name = f"{event_type}.payment_mode" if payment_mode else event_type
    event: dict[str, Any] = json.loads(_template(api_layout, name))
    when = _unix_time(created)
    obj: dict[str, Any] = event["data"]["object"]
    _shift_times(obj, when - int(event["created"]))
    event.update(id=event_id or f"evt_test_{secrets.token_hex(12)}", created=when)
    if features is not None and event_type != SUMMARY_EVENT:
        raise ValueError(f"features are an entitlement summary's; not for {event_type}")
    if event_type == SUMMARY_EVENT:
        for name, value in (
            ("status", status),
            ("payment_status", payment_status),
            ("client_reference_id", client_reference_id),
        ):
            if value is not None:
                raise ValueError(f"{name} is not an entitlement summary's; not for {event_type}")
        _fill_summary(obj, customer=customer, features=features or ())
    elif purchase:
        for name, value in (
            ("payment_status", payment_status),
            ("client_reference_id", client_reference_id),
        ):
            if value is not None:
                raise ValueError(f"{name} is a Checkout session's; not for {event_type}")
        if status is not None and event_type == CHARGE_REFUNDED:
            raise ValueError(f"status is a refund's or a dispute's; not for {event_type}")
        _fill_payment_object(
            obj,
            event_type,
            customer=customer,
            payment_intent=payment_intent,
            status=status or _DEFAULT_STATUSES.get(event_type),
            amount=amount,
            refund_amount=refund_amount,
        )
    elif payment_mode:
        if status is not None:
            raise ValueError(
                f"status is a subscription's; for {event_type} give payment_status instead"
            )
        reference = client_reference_id if client_reference_id is not None else user_id
        metadata = {"user_id": str(user_id)} if user_id is not None else {}
        if product is not None:
            metadata |= {PRODUCT_METADATA: product, QUANTITY_METADATA: str(quantity)}
        obj.update(
            customer=customer,
            payment_intent=payment_intent,
            payment_status=payment_status or _DEFAULT_PAYMENT.get(event_type, "paid"),
            client_reference_id=None if reference is None else str(reference),
            metadata=metadata,
        )
        if amount is not None:
            obj.update(amount_total=amount, amount_subtotal=amount)
    elif event_type.startswith("invoice."):
        for name, value in (
            ("status", status),
            ("payment_status", payment_status),
            ("client_reference_id", client_reference_id),
        ):
            if value is not None:
                raise ValueError(f"{name} is not an invoice's; not for {event_type}")
        _fill_invoice(obj, customer=customer, subscription=subscription, price=price)
    elif event_type.startswith("customer.subscription."):
        for name, value in (
            ("payment_status", payment_status),
            ("client_reference_id", client_reference_id),
        ):
            if value is not None:
                raise ValueError(f"{name} is a Checkout session's; not for {event_type}")
        if not subscription:
            raise ValueError(f"{event_type} needs a subscription id")
        default_status = _DEFAULT_STATUSES.get(event_type, "active")
        _fill_subscription(
            obj,
            subscription_id=subscription,
            customer=customer,
            status=status or default_status,
            price=price,
            user_id=user_id,
            cancel_at_period_end=cancel_at_period_end,
            now=when,
        )
    else:
        if status is not None:
            raise ValueError(
                f"status is a subscription's; for {event_type} give payment_status instead"
            )
        reference = client_reference_id if client_reference_id is not None else user_id
        metadata = {"user_id": str(user_id)} if user_id is not None else {}
        obj.update(
            customer=customer,
            subscription=subscription,
            payment_status=payment_status or _DEFAULT_PAYMENT.get(event_type, "paid"),
            client_reference_id=None if reference is None else str(reference),
            metadata=metadata | {"price_id": price},
        )
    return event


@cache
def _template(layout: str, event_type: str) -> str:
    """The template's text (parsed afresh for each event, so no call shares objects)."""
    folder = resources.files("flask_stripe_billing.core") / "event_templates" / layout
    return (folder / f"{event_type}.json").read_text(encoding="utf-8")


def _unix_time(created: int | datetime | None) -> int:
    if created is None:
        return int(time.time())
    if isinstance(created, datetime):
        return int(created.timestamp())
    return int(created)


def _shift_times(value: Any, delta: int) -> None:
    """Move every Unix time in a Stripe object by ``delta`` seconds, in place."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _TIMESTAMP_KEYS and isinstance(item, int) and not isinstance(item, bool):
                value[key] = item + delta
            else:
                _shift_times(item, delta)
    elif isinstance(value, list):
        for item in value:
            _shift_times(item, delta)


def _fill_invoice(
    obj: dict[str, Any], *, customer: str | None, subscription: str | None, price: str
) -> None:
    """Make the invoice the customer's, for ``subscription``: ``subscription`` (legacy
    layout) or ``parent.subscription_details`` (current), and on each line."""
    obj["customer"] = customer
    if "subscription" in obj:
        obj["subscription"] = subscription
    parent = obj.get("parent")
    if isinstance(parent, dict) and isinstance(parent.get("subscription_details"), dict):
        parent["subscription_details"]["subscription"] = subscription
    for line in obj["lines"]["data"]:
        if "subscription" in line:
            line["subscription"] = subscription
        details = (line.get("parent") or {}).get("subscription_item_details")
        if isinstance(details, dict):
            details["subscription"] = subscription
        if isinstance(line.get("price"), dict):
            line["price"]["id"] = price
        pricing = (line.get("pricing") or {}).get("price_details")
        if isinstance(pricing, dict):
            pricing["price"] = price


def _fill_payment_object(
    obj: dict[str, Any],
    event_type: str,
    *,
    customer: str | None,
    payment_intent: str,
    status: str | None,
    amount: int | None,
    refund_amount: int | None,
) -> None:
    """Make a charge, refund or dispute object the payment's: its ids, amounts and status
    (the legacy charge's listed refund too)."""
    if amount is not None and amount < 1:
        raise ValueError("amount must be at least 1")
    paid = amount if amount is not None else int(obj["amount"])
    refunded = refund_amount if refund_amount is not None else paid
    if not 0 < refunded <= paid:
        raise ValueError(f"refund_amount must be between 1 and the amount, {paid}")
    obj["payment_intent"] = payment_intent
    if event_type == CHARGE_REFUNDED:
        obj.update(
            id=DEFAULT_CHARGE,
            customer=customer,
            amount=paid,
            amount_captured=paid,
            amount_refunded=refunded,
            refunded=refunded >= paid,
        )
        refunds = obj.get("refunds")
        if isinstance(refunds, dict):
            refunds["url"] = f"/v1/charges/{DEFAULT_CHARGE}/refunds"
            for listed in refunds["data"]:
                listed.update(
                    id=DEFAULT_REFUND,
                    amount=refunded,
                    charge=DEFAULT_CHARGE,
                    payment_intent=payment_intent,
                )
    elif event_type in REFUND_EVENTS:
        obj.update(id=DEFAULT_REFUND, amount=refunded, charge=DEFAULT_CHARGE, status=status)
        if "customer" in obj:
            obj["customer"] = customer
    else:
        obj.update(id=DEFAULT_DISPUTE, amount=paid, charge=DEFAULT_CHARGE, status=status)


def _fill_summary(obj: dict[str, Any], *, customer: str | None, features: Iterable[str]) -> None:
    """The customer's summary, one active entitlement per lookup key (10 inline at most)."""
    template = obj["entitlements"]["data"][0]
    keys = list(dict.fromkeys(features))
    entitlements = []
    for key in keys[:SUMMARY_PAGE_SIZE]:
        suffix = secrets.token_hex(8)
        entitlement = dict(template, id=f"ent_test_{suffix}", feature=f"feat_test_{suffix}")
        entitlements.append(dict(entitlement, lookup_key=key))
    obj["customer"] = customer
    obj["entitlements"].update(
        data=entitlements,
        has_more=len(keys) > SUMMARY_PAGE_SIZE,
        url=f"/v1/customer/{customer}/entitlements",
    )


def _fill_subscription(
    obj: dict[str, Any],
    *,
    subscription_id: str,
    customer: str | None,
    status: str,
    price: str,
    user_id: str | int | None,
    cancel_at_period_end: bool,
    now: int,
) -> None:
    """Put the test's facts into a subscription object, keeping its dates consistent."""
    obj.update(id=subscription_id, customer=customer, status=status)
    items = obj["items"]["data"]
    obj["items"]["url"] = f"/v1/subscription_items?subscription={subscription_id}"
    for item in items:
        item["subscription"] = subscription_id
        for key in ("price", "plan"):
            if isinstance(item.get(key), dict):
                item[key]["id"] = price
    if isinstance(obj.get("plan"), dict):
        obj["plan"]["id"] = price
    if user_id is not None:
        obj["metadata"] = {"user_id": str(user_id)}
    # The period: on the subscription (legacy layout), else on its items.
    period = obj if "current_period_end" in obj else items[0]
    if status == "trialing":
        obj.update(
            trial_start=period["current_period_start"], trial_end=period["current_period_end"]
        )
    if status in TERMINAL_STATUSES:
        obj["canceled_at"] = obj.get("canceled_at") or now
        obj["ended_at"] = obj.get("ended_at") or now
    else:
        obj.update(canceled_at=None, ended_at=None)
    obj["cancel_at_period_end"] = cancel_at_period_end
    if cancel_at_period_end:
        obj.update(cancel_at=period["current_period_end"], canceled_at=now)
