"""One-time purchases: what a payment-mode Checkout session, its charge's refunds and its
disputes make of a purchase record. Pure: no Flask, no HTTP, no database.

A purchase record is keyed by its payment (the payment intent; a session that charged
nothing: the session) and made of parts that each converge on their own, whatever the
order Stripe delivers them in:

- the session part (account, product, quantity, amount): the payment status only moves
  ``pending`` → ``paid`` or ``failed``, never back;
- the charge's refunded total, by the time of the charge event that said it (the later
  wins; within one second, the larger);
- each refund, by its own time (within one second, the later status in a refund's life);
- the dispute, by its own time; a closed dispute never reopens.

``status`` and ``amount_refunded`` are a function of those parts, so any delivery order
with any duplicates ends where delivery in order ends. A refund or dispute that comes
before its session is kept (no account yet) and joins the session's purchase when it
arrives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .._util import as_utc
from ..config import Settings
from .events import StripeEvent, timestamp
from .payments import CHARGE_REFUNDED, DISPUTE_EVENTS, REFUND_EVENTS, RefundFacts


class PurchaseStatus:
    """Where a purchase stands (its dispute is :attr:`PurchaseRecord.dispute_status`)."""

    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


#: Statuses of a purchase that grant its product (unless its dispute is lost).
GRANTING_STATUSES = frozenset({PurchaseStatus.PAID, PurchaseStatus.PARTIALLY_REFUNDED})


#: The payment-mode session events, and the payment status each says.
SESSION_COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"


#: Every event type a purchase follows (the session ones also serve subscriptions).
PURCHASE_EVENT_TYPES = (
    SESSION_COMPLETED,
    ASYNC_SUCCEEDED,
    ASYNC_FAILED,
    CHARGE_REFUNDED,
    *REFUND_EVENTS,
    *DISPUTE_EVENTS,
)


#: A dispute status Stripe never moves on from.
CLOSED_DISPUTE_STATUSES = frozenset({"won", "lost", "warning_closed", "prevented"})


#: The order of a dispute's life, for two events of one second.
_DISPUTE_ORDER = (
    "warning_needs_response",
    "warning_under_review",
    "needs_response",
    "under_review",
    "warning_closed",
    "prevented",
    "won",
    "lost",
)


#: The order of a refund's life, for two events of one second; ``failed`` / ``canceled``
#: are where a refund ends (they never come back).
_REFUND_ORDER = ("requires_action", "pending", "succeeded", "canceled", "failed")


#: Refund statuses that give no money back.
UNDONE_REFUND_STATUSES = frozenset({"failed", "canceled"})


@dataclass(frozen=True)
class RefundPart:
    """One refund of a purchase as last heard of, and the time of that event."""

    id: str
    amount: int
    status: str
    last_event_at: datetime
    #: When Stripe made the refund (None: not known).
    created: datetime | None = None


@dataclass(frozen=True)
class PurchaseRecord:
    """One one-time payment, as the library's purchase table keeps it."""

    #: The payment intent (``pi_...``), else the Checkout session (``cs_...``).
    id: str
    #: The account; None while only a refund or dispute of the payment is known.
    user_id: str | None = None
    customer_id: str | None = None
    #: The product key (``STRIPE_BILLING_PRODUCTS``); None: a price the app does not name.
    product: str | None = None
    quantity: int | None = None
    #: In the currency's smallest unit.
    amount: int | None = None
    currency: str | None = None
    payment_intent_id: str | None = None
    checkout_session_id: str | None = None
    charge_id: str | None = None
    #: :class:`PurchaseStatus`, derived from the parts below.
    status: str = PurchaseStatus.PENDING
    #: The session's payment: ``pending``, ``paid``, ``failed``; None: no session seen.
    payment_status: str | None = None
    #: Refunded so far (derived).
    amount_refunded: int = 0
    #: Each refund heard of, by id.
    refunds: tuple[RefundPart, ...] = ()
    #: The charge's own refunded total and the time of the event that said it.
    charge_amount_refunded: int | None = None
    charge_event_at: datetime | None = None
    dispute_id: str | None = None
    #: Stripe's dispute status: ``needs_response``, ``under_review``, ``won``, ``lost``, ...
    dispute_status: str | None = None
    dispute_event_at: datetime | None = None
    #: The payment's own creation (the earliest known).
    created: datetime | None = None
    #: The newest event applied to the record.
    last_event_at: datetime | None = None

    @property
    def refundable(self) -> int:
        """What may still be refunded (0 when unpaid or unknown)."""
        if self.status not in GRANTING_STATUSES or self.amount is None:
            return 0
        return max(0, self.amount - self.amount_refunded)

    def grants(self) -> bool:
        """Whether the purchase gives its product: paid, not fully refunded, no lost dispute."""
        return self.status in GRANTING_STATUSES and self.dispute_status != "lost"

    def in_utc(self) -> PurchaseRecord:
        """The record with its times in UTC (as stores return them)."""
        return replace(
            self,
            charge_event_at=as_utc(self.charge_event_at),
            dispute_event_at=as_utc(self.dispute_event_at),
            created=as_utc(self.created),
            last_event_at=as_utc(self.last_event_at),
            refunds=tuple(
                replace(
                    r,
                    last_event_at=as_utc(r.last_event_at) or r.last_event_at,
                    created=as_utc(r.created),
                )
                for r in self.refunds
            ),
        )


def purchase_key(event: StripeEvent) -> str | None:
    """The purchase an event is about: its payment intent (a payment-mode session without
    one: the session); None when the event is about no purchase."""
    session = event.checkout_session
    if session is not None:
        if session.mode != "payment":
            return None
        return session.payment_intent_id or session.id
    if event.charge is not None:
        return event.charge.payment_intent_id
    if event.refund is not None:
        return event.refund.payment_intent_id
    if event.dispute is not None:
        return event.dispute.payment_intent_id
    return None


def is_purchase_event(event: StripeEvent) -> bool:
    """Whether the event is decided as a purchase's: a payment-mode session, or a refund
    or dispute (or refunded charge) event."""
    if event.type in (SESSION_COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED):
        session = event.checkout_session
        return session is not None and session.mode == "payment"
    return event.type in PURCHASE_EVENT_TYPES


def not_a_purchase_reason(event: StripeEvent) -> str | None:
    """Why a refund or dispute event is about no purchase (None: it is about one)."""
    charge = event.charge
    if charge is not None and charge.invoice_id is not None:
        return f"charge {charge.id} paid invoice {charge.invoice_id}: a subscription's payment"
    if purchase_key(event) is None:
        return "the payment has no payment intent: no Checkout session made it"
    return None


def session_payment_status(event: StripeEvent) -> str | None:
    """The payment status a payment-mode session event says."""
    session = event.checkout_session
    if session is None:
        return None
    if event.type == ASYNC_FAILED:
        return PurchaseStatus.FAILED
    if event.type == ASYNC_SUCCEEDED or session.payment_status in ("paid", "no_payment_required"):
        return PurchaseStatus.PAID
    return PurchaseStatus.PENDING


def product_of(event: StripeEvent, settings: Settings) -> tuple[str | None, int | None]:
    """The product and quantity a session sells: our Checkout's metadata, else its line
    items' prices as ``STRIPE_BILLING_PRODUCTS`` names them (None: unknown)."""
    session = event.checkout_session
    if session is None:
        return None, None
    if session.product is not None:
        return session.product, session.quantity or session.line_item_quantity or 1
    product = settings.product_for_prices(session.line_item_price_ids)
    return product, session.quantity or session.line_item_quantity


def with_session(
    record: PurchaseRecord, event: StripeEvent, user_id: str, settings: Settings
) -> PurchaseRecord:
    """The record with the session part an event of it says (its payment status only
    moves forward)."""
    session = event.checkout_session
    assert session is not None
    status = session_payment_status(event)
    kept = record.payment_status
    if kept in (PurchaseStatus.PAID, PurchaseStatus.FAILED):
        status = kept
    product, quantity = product_of(event, settings)
    return replace(
        record,
        user_id=user_id,
        customer_id=session.customer_id or record.customer_id,
        product=product,
        quantity=quantity,
        amount=session.amount_total if session.amount_total is not None else record.amount,
        currency=session.currency or record.currency,
        payment_intent_id=session.payment_intent_id or record.payment_intent_id,
        checkout_session_id=session.id,
        payment_status=status,
        created=_earliest(record.created, session.created or event.created),
    )


def with_charge(record: PurchaseRecord, event: StripeEvent) -> PurchaseRecord:
    """The record with a refunded charge's total (the later event's; in one second the
    larger) and the refunds it lists."""
    charge = event.charge
    assert charge is not None
    total = charge.amount_refunded
    if charge.refunded and charge.amount is not None:
        total = max(total, charge.amount)
    at = event.created
    kept_at, kept = record.charge_event_at, record.charge_amount_refunded
    newer = kept_at is None or at > kept_at or (at == kept_at and total > (kept or 0))
    record = replace(
        record,
        charge_id=charge.id,
        customer_id=record.customer_id or charge.customer_id,
        amount=record.amount if record.amount is not None else charge.amount,
        currency=record.currency or charge.currency,
        payment_intent_id=record.payment_intent_id or charge.payment_intent_id,
        charge_amount_refunded=total if newer else kept,
        charge_event_at=at if newer else kept_at,
        created=_earliest(record.created, charge.created or at),
    )
    for refund in charge.refunds:
        record = with_refund(record, refund, at)
    return record


def with_refund(record: PurchaseRecord, refund: RefundFacts, at: datetime) -> PurchaseRecord:
    """The record with one refund as an event of time ``at`` says it, unless a later (or
    same-second, later-in-life) word on that refund was applied, or it has ended."""
    parts = {part.id: part for part in record.refunds}
    kept = parts.get(refund.id)
    new = RefundPart(refund.id, refund.amount, refund.status, at, refund.created)
    if kept is not None and not _refund_supersedes(new, kept):
        return record
    parts[refund.id] = new
    return replace(
        record,
        refunds=tuple(sorted(parts.values(), key=lambda part: part.id)),
        charge_id=record.charge_id or refund.charge_id,
        payment_intent_id=record.payment_intent_id or refund.payment_intent_id,
        currency=record.currency or refund.currency,
        created=_earliest(record.created, refund.created or at),
    )


def _refund_supersedes(new: RefundPart, kept: RefundPart) -> bool:
    if kept.status in UNDONE_REFUND_STATUSES:
        return False  # a failed or canceled refund stays so
    if new.status in UNDONE_REFUND_STATUSES:
        return True
    if new.last_event_at != kept.last_event_at:
        return new.last_event_at > kept.last_event_at
    return _rank(_REFUND_ORDER, new.status) > _rank(_REFUND_ORDER, kept.status)


def with_dispute(record: PurchaseRecord, event: StripeEvent) -> PurchaseRecord:
    """The record with the dispute as its event says, unless a later word on it was
    applied; a closed dispute never reopens."""
    dispute = event.dispute
    assert dispute is not None
    at = event.created
    kept_status, kept_at = record.dispute_status, record.dispute_event_at
    if kept_status is not None and kept_at is not None:
        closed_kept = kept_status in CLOSED_DISPUTE_STATUSES
        closed_new = dispute.status in CLOSED_DISPUTE_STATUSES
        if closed_kept and not closed_new:
            return replace(record, created=_earliest(record.created, dispute.created or at))
        if closed_kept == closed_new and (
            at < kept_at
            or (
                at == kept_at
                and _rank(_DISPUTE_ORDER, dispute.status) <= _rank(_DISPUTE_ORDER, kept_status)
            )
        ):
            return replace(record, created=_earliest(record.created, dispute.created or at))
    return replace(
        record,
        dispute_id=dispute.id,
        dispute_status=dispute.status,
        dispute_event_at=at,
        charge_id=record.charge_id or dispute.charge_id,
        payment_intent_id=record.payment_intent_id or dispute.payment_intent_id,
        created=_earliest(record.created, dispute.created or at),
    )


def settled(record: PurchaseRecord, event_at: datetime) -> PurchaseRecord:
    """The record with ``status``, ``amount_refunded`` and ``last_event_at`` computed from
    its parts: the same parts give the same answer, whatever order they came in.

    Refunded: the larger of the refunds that give money back, and the charge's total
    plus those refunds made after it (which it cannot count); a refund that failed after
    the charge counted it is taken off the charge's total.
    """
    live = [p for p in record.refunds if p.status not in UNDONE_REFUND_STATUSES]
    charge_total = record.charge_amount_refunded or 0
    charge_at = record.charge_event_at
    if charge_at is not None:
        charge_total -= sum(
            p.amount
            for p in record.refunds
            if p.status in UNDONE_REFUND_STATUSES and p.last_event_at > charge_at
        )
        charge_total += sum(
            p.amount for p in live if p.created is not None and p.created > charge_at
        )
    refunded = max(sum(p.amount for p in live), charge_total, 0)
    payment = record.payment_status
    if payment == PurchaseStatus.FAILED:
        status = PurchaseStatus.FAILED
    elif refunded > 0:
        full = record.amount is not None and refunded >= record.amount
        status = PurchaseStatus.REFUNDED if full else PurchaseStatus.PARTIALLY_REFUNDED
    elif payment == PurchaseStatus.PAID or (payment is None and _charged(record)):
        status = PurchaseStatus.PAID
    else:
        status = PurchaseStatus.PENDING
    last = record.last_event_at
    return replace(
        record,
        amount_refunded=refunded,
        status=status,
        last_event_at=event_at if last is None or event_at > last else last,
    )


def _charged(record: PurchaseRecord) -> bool:
    """Whether a refund, dispute or charge says the payment was made (no session yet)."""
    return bool(record.refunds or record.dispute_id or record.charge_event_at)


def apply_event(
    record: PurchaseRecord, event: StripeEvent, user_id: str | None, settings: Settings
) -> PurchaseRecord:
    """The record once ``event`` is applied (``user_id``: a session's account)."""
    if event.checkout_session is not None:
        assert user_id is not None
        record = with_session(record, event, user_id, settings)
    elif event.charge is not None:
        record = with_charge(record, event)
    elif event.refund is not None:
        record = with_refund(record, event.refund, event.created)
    elif event.dispute is not None:
        record = with_dispute(record, event)
    return settled(record, event.created)


# Signals: what a host learns, once, when the account can be told


@dataclass(frozen=True)
class PurchaseNotice:
    """A purchase signal's name and its keyword arguments, but the account."""

    signal: str
    kwargs: Mapping[str, Any]


def purchase_notices(before: PurchaseRecord, after: PurchaseRecord) -> tuple[PurchaseNotice, ...]:
    """``purchase_completed`` / ``purchase_refunded`` / ``purchase_disputed`` for what the
    event changed, as the account sees it: a refund or dispute that came before the
    session is news when the session (and so the account) arrives."""
    if after.user_id is None:
        return ()
    known = before.user_id is not None
    notices = []
    was_paid = known and before.payment_status == PurchaseStatus.PAID
    if after.payment_status == PurchaseStatus.PAID and not was_paid:
        notices.append(PurchaseNotice("purchase_completed", {}))
    old_refunded = before.amount_refunded if known else 0
    if after.amount_refunded > old_refunded:
        notices.append(
            PurchaseNotice(
                "purchase_refunded",
                {
                    "amount_refunded": after.amount_refunded,
                    "refunded_now": after.amount_refunded - old_refunded,
                    "fully_refunded": after.status == PurchaseStatus.REFUNDED,
                },
            )
        )
    old_dispute = before.dispute_status if known else None
    if after.dispute_status != old_dispute and after.dispute_status is not None:
        notices.append(
            PurchaseNotice(
                "purchase_disputed",
                {"old_dispute_status": old_dispute, "dispute_status": after.dispute_status},
            )
        )
    return tuple(notices)


def purchased_features(records: Iterable[PurchaseRecord], settings: Settings) -> frozenset[str]:
    """The features the granting purchases give for life (``STRIPE_BILLING_PRODUCT_FEATURES``)."""
    features: set[str] = set()
    for record in records:
        if record.product is not None and record.grants():
            features.update(settings.product_features.get(record.product, ()))
    return frozenset(features)


# The refunds column: JSON text


def encode_refunds(refunds: tuple[RefundPart, ...]) -> str:
    """The refunds as the table's JSON text (times as Unix seconds)."""
    return json.dumps(
        [
            {
                "id": r.id,
                "amount": r.amount,
                "status": r.status,
                "at": int(r.last_event_at.timestamp()),
                "created": None if r.created is None else int(r.created.timestamp()),
            }
            for r in refunds
        ],
        separators=(",", ":"),
    )


def decode_refunds(text: str | None) -> tuple[RefundPart, ...]:
    """The refunds from the table's JSON text (none: empty)."""
    if not text:
        return ()
    return tuple(
        RefundPart(
            str(r["id"]),
            int(r["amount"]),
            str(r["status"]),
            timestamp(int(r["at"])),
            None if r.get("created") is None else timestamp(int(r["created"])),
        )
        for r in json.loads(text)
    )


def _earliest(kept: datetime | None, new: datetime | None) -> datetime | None:
    if kept is None:
        return new
    if new is None:
        return kept
    return min(kept, new)


def _rank(order: tuple[str, ...], status: str) -> int:
    return order.index(status) if status in order else -1
