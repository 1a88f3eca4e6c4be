"""Stripe's charge, refund and dispute objects, parsed once into the facts purchases use.

Layouts differ across API versions: a charge carried its refunds as a plain list
(before 2014), then as a list object ``refunds.data`` (until 2022-11-15), and since
then not at all (``amount_refunded`` and ``refunded`` say the total). Refunds and
disputes name their payment by ``payment_intent`` (null on charges made without one)
and ``charge``; since 2025 a refund may name its ``customer`` too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: The event types about a charge's refunds and disputes that purchases follow.
CHARGE_REFUNDED = "charge.refunded"
REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed")
DISPUTE_EVENTS = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")


@dataclass(frozen=True)
class RefundFacts:
    """One refund: its id, amount and status (``pending``, ``requires_action``,
    ``succeeded``, ``failed``, ``canceled``)."""

    id: str
    amount: int
    status: str
    payment_intent_id: str | None = None
    charge_id: str | None = None
    currency: str | None = None
    created: datetime | None = None


@dataclass(frozen=True)
class ChargeFacts:
    """A charge: the payment it belongs to, its amount and how much of it is refunded."""

    id: str
    payment_intent_id: str | None
    customer_id: str | None
    amount: int | None
    currency: str | None
    amount_refunded: int
    #: Stripe's ``refunded``: the whole charge is refunded.
    refunded: bool
    #: The invoice it paid (old API versions name it): a subscription's payment.
    invoice_id: str | None
    #: The refunds the charge lists (old API versions); empty when it lists none.
    refunds: tuple[RefundFacts, ...]
    created: datetime | None


@dataclass(frozen=True)
class DisputeFacts:
    """A dispute (chargeback or inquiry) of a charge and its status."""

    id: str
    payment_intent_id: str | None
    charge_id: str | None
    amount: int | None
    currency: str | None
    #: ``warning_needs_response``, ``needs_response``, ``under_review``, ``won``, ``lost``, ...
    status: str
    created: datetime | None


def read_charge(obj: Mapping[str, Any]) -> ChargeFacts:
    """A charge object, whatever the API version, as its facts."""
    refunds = obj.get("refunds")
    if isinstance(refunds, Mapping):
        refunds = refunds.get("data")
    listed = [r for r in refunds if isinstance(r, Mapping)] if isinstance(refunds, list) else []
    charge_id = _text(_id(obj.get("id"))) or ""
    intent = _id(obj.get("payment_intent"))
    return ChargeFacts(
        id=charge_id,
        payment_intent_id=intent,
        customer_id=_id(obj.get("customer")),
        amount=_int(obj.get("amount")),
        currency=_text(obj.get("currency")),
        amount_refunded=_int(obj.get("amount_refunded")) or 0,
        refunded=obj.get("refunded") is True,
        invoice_id=_id(obj.get("invoice")),
        refunds=tuple(
            _listed_refund(refund, n, charge_id, intent) for n, refund in enumerate(listed)
        ),
        created=_time(obj.get("created")),
    )


def read_refund(obj: Mapping[str, Any]) -> RefundFacts:
    """A refund object as its facts (a refund without a status counts as ``succeeded``,
    as the oldest API versions sent them)."""
    return RefundFacts(
        id=_id(obj.get("id")) or "",
        amount=_int(obj.get("amount")) or 0,
        status=_text(obj.get("status")) or "succeeded",
        payment_intent_id=_id(obj.get("payment_intent")),
        charge_id=_id(obj.get("charge")),
        currency=_text(obj.get("currency")),
        created=_time(obj.get("created")),
    )


def read_dispute(obj: Mapping[str, Any]) -> DisputeFacts:
    """A dispute object as its facts."""
    return DisputeFacts(
        id=_id(obj.get("id")) or "",
        payment_intent_id=_id(obj.get("payment_intent")),
        charge_id=_id(obj.get("charge")),
        amount=_int(obj.get("amount")),
        currency=_text(obj.get("currency")),
        status=_text(obj.get("status")) or "",
        created=_time(obj.get("created")),
    )


def _listed_refund(
    obj: Mapping[str, Any], position: int, charge_id: str, intent: str | None
) -> RefundFacts:
    """A refund a charge lists; the oldest layouts give it no id, so it is named by the
    charge and its place in the list."""
    refund = read_refund(obj)
    if refund.id:
        return refund
    return RefundFacts(
        id=f"{charge_id}/refund/{position}",
        amount=refund.amount,
        status=refund.status,
        payment_intent_id=intent,
        charge_id=charge_id,
        currency=refund.currency,
        created=refund.created,
    )


def _id(value: Any) -> str | None:
    """An id whether Stripe sent it bare or expanded into an object."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return value["id"] or None
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    seconds = _int(value)
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds is not None else None
