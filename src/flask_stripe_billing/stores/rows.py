"""The library tables' rows as Python values, and back: shared by the SQLAlchemy and the
DB-API stores, so that both write and read the same columns the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import RowMapping

from .._util import as_utc, utcnow
from ..core.account import SubscriptionRecord, decode_pending_update, encode_pending_update
from ..core.entitlements import EntitlementRecord, decode_features, encode_features
from ..core.events import StripeEvent
from ..core.outcomes import EventStatus
from ..core.purchases import PurchaseRecord, decode_refunds, encode_refunds
from ..core.usage import UsageRecord
from .base import EventRecord


def new_event_row(event: StripeEvent, payload: str) -> dict[str, Any]:
    """The event log's row for an event recorded for the first time."""
    return {
        "id": event.id,
        "type": event.type,
        "created": event.created,
        "customer_id": event.customer_id,
        "status": EventStatus.RECEIVED,
        "payload": payload,
        "attempts": 1,
        "received_at": utcnow(),
    }


def subscription_record(row: Mapping[str, Any] | RowMapping) -> SubscriptionRecord:
    """A :class:`SubscriptionRecord` from a row of the subscription table."""
    return SubscriptionRecord(
        id=row["id"],
        user_id=row["user_id"],
        customer_id=row["customer_id"],
        status=row["status"],
        price_ids=tuple(str(row["price_ids"] or "").split()),
        plan=row["plan"],
        quantity=row["quantity"],
        trial_end=as_utc(row["trial_end"]),
        current_period_end=as_utc(row["current_period_end"]),
        cancel_at_period_end=bool(row["cancel_at_period_end"]),
        cancel_at=as_utc(row["cancel_at"]),
        ended_at=as_utc(row["ended_at"]),
        created=as_utc(row["created"]),
        last_event_at=as_utc(row["last_event_at"]),
        pending_update=decode_pending_update(row.get("pending_update")),
    )


def subscription_values(record: SubscriptionRecord) -> dict[str, Any]:
    """The subscription table's row for a record (its times already in UTC)."""
    return {
        "id": record.id,
        "user_id": str(record.user_id),
        "customer_id": record.customer_id,
        "status": record.status,
        "price_ids": " ".join(record.price_ids),
        "plan": record.plan,
        "quantity": record.quantity,
        "trial_end": record.trial_end,
        "current_period_end": record.current_period_end,
        "cancel_at_period_end": record.cancel_at_period_end,
        "cancel_at": record.cancel_at,
        "ended_at": record.ended_at,
        "created": record.created,
        "last_event_at": record.last_event_at,
        "updated_at": utcnow(),
        "pending_update": encode_pending_update(record.pending_update),
    }


def entitlement_values(record: EntitlementRecord) -> dict[str, Any]:
    """The entitlement table's row for a record (its times already in UTC)."""
    return {
        "customer_id": record.customer_id,
        "features": encode_features(record.features),
        "last_event_at": record.last_event_at,
        "last_event_id": record.last_event_id,
        "updated_at": record.updated_at or utcnow(),
    }


def entitlement_record(row: Mapping[str, Any] | RowMapping) -> EntitlementRecord:
    """An :class:`EntitlementRecord` from a row of the entitlement table."""
    return EntitlementRecord(
        customer_id=row["customer_id"],
        features=decode_features(row["features"]),
        last_event_at=as_utc(row["last_event_at"]),
        last_event_id=row["last_event_id"],
        updated_at=as_utc(row["updated_at"]),
    )


def event_record(row: Mapping[str, Any] | RowMapping) -> EventRecord:
    """An :class:`EventRecord` from a row of the event log."""
    return EventRecord(
        id=row["id"],
        type=row["type"],
        created=as_utc(row["created"]),  # type: ignore[arg-type]
        customer_id=row["customer_id"],
        user_id=row["user_id"],
        status=row["status"],
        error=row["error"],
        payload=row["payload"],
        attempts=row["attempts"],
        received_at=as_utc(row["received_at"]),  # type: ignore[arg-type]
        processed_at=as_utc(row["processed_at"]),
    )


def usage_values(record: UsageRecord) -> dict[str, Any]:
    """The usage table's row for a record (its times already in UTC)."""
    return {
        "identifier": record.identifier,
        "user_id": str(record.user_id),
        "customer_id": record.customer_id,
        "event_name": record.event_name,
        "value": record.value,
        "timestamp": record.timestamp,
        "status": record.status,
        "attempts": record.attempts,
        "next_attempt_at": record.next_attempt_at,
        "first_attempt_at": record.first_attempt_at,
        "sent_at": record.sent_at,
        "error": record.error,
        "reported_at": record.reported_at or utcnow(),
    }


#: The usage table's columns that change as a row is sent (the rest is the report).
USAGE_PROGRESS = (
    "customer_id",
    "status",
    "attempts",
    "next_attempt_at",
    "first_attempt_at",
    "sent_at",
    "error",
)


def usage_record(row: Mapping[str, Any] | RowMapping) -> UsageRecord:
    """A :class:`UsageRecord` from a row of the usage table (times as datetimes)."""
    return UsageRecord(
        identifier=row["identifier"],
        user_id=row["user_id"],
        customer_id=row["customer_id"],
        event_name=row["event_name"],
        value=int(row["value"]),
        timestamp=as_utc(row["timestamp"]),  # type: ignore[arg-type]
        status=row["status"],
        attempts=int(row["attempts"]),
        next_attempt_at=as_utc(row["next_attempt_at"]),
        first_attempt_at=as_utc(row["first_attempt_at"]),
        sent_at=as_utc(row["sent_at"]),
        error=row["error"],
        reported_at=as_utc(row["reported_at"]),
    )


def purchase_values(record: PurchaseRecord) -> dict[str, Any]:
    """The purchase table's row for a record (its times already in UTC)."""
    return {
        "id": record.id,
        "user_id": None if record.user_id is None else str(record.user_id),
        "customer_id": record.customer_id,
        "product": record.product,
        "quantity": record.quantity,
        "amount": record.amount,
        "currency": record.currency,
        "payment_intent_id": record.payment_intent_id,
        "checkout_session_id": record.checkout_session_id,
        "charge_id": record.charge_id,
        "status": record.status,
        "payment_status": record.payment_status,
        "amount_refunded": record.amount_refunded,
        "refunds": encode_refunds(record.refunds),
        "charge_amount_refunded": record.charge_amount_refunded,
        "charge_event_at": record.charge_event_at,
        "dispute_id": record.dispute_id,
        "dispute_status": record.dispute_status,
        "dispute_event_at": record.dispute_event_at,
        "created": record.created,
        "last_event_at": record.last_event_at,
        "updated_at": utcnow(),
    }


#: The purchase table's columns holding times.
PURCHASE_TIMES = ("charge_event_at", "dispute_event_at", "created", "last_event_at", "updated_at")


def purchase_record(row: Mapping[str, Any] | RowMapping) -> PurchaseRecord:
    """A :class:`PurchaseRecord` from a row of the purchase table (times as datetimes)."""
    return PurchaseRecord(
        id=row["id"],
        user_id=row["user_id"],
        customer_id=row["customer_id"],
        product=row["product"],
        quantity=row["quantity"],
        amount=None if row["amount"] is None else int(row["amount"]),
        currency=row["currency"],
        payment_intent_id=row["payment_intent_id"],
        checkout_session_id=row["checkout_session_id"],
        charge_id=row["charge_id"],
        status=row["status"],
        payment_status=row["payment_status"],
        amount_refunded=int(row["amount_refunded"] or 0),
        refunds=decode_refunds(row["refunds"]),
        charge_amount_refunded=(
            None if row["charge_amount_refunded"] is None else int(row["charge_amount_refunded"])
        ),
        charge_event_at=as_utc(row["charge_event_at"]),
        dispute_id=row["dispute_id"],
        dispute_status=row["dispute_status"],
        dispute_event_at=as_utc(row["dispute_event_at"]),
        created=as_utc(row["created"]),
        last_event_at=as_utc(row["last_event_at"]),
    )
