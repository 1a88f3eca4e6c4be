"""One-time purchases from the host's side: the account's purchases, and refunding one.

A refund is ``POST /v1/refunds`` of the purchase's payment intent with a new idempotency
key (so a retry of that request is safe, and a second refund asked later is a refund of
its own); Stripe's answer, the refund, is run through the pipeline at once as a
``refund.updated`` snapshot dated by Stripe's clock (its ``Date`` header), like the
management calls. The webhooks that follow say the same and change nothing again. When
Stripe fails, or answers something that cannot be applied, nothing is applied (502).
"""

from __future__ import annotations

import logging
from typing import Any

from ..core.account import BillingAccount
from ..core.changes import idempotency_key
from ..core.events import snapshot_event
from ..core.purchases import PurchaseRecord
from ..errors import ConflictError, EventParseError, PurchasesNotKeptError, ValidationError
from ..pipeline.fetch import check_answer, stripe_time, unusable_answer
from ..pipeline.run import run
from ..state import BillingState
from ..stores.base import PURCHASES_TABLE, PurchaseLog

logger = logging.getLogger("flask_stripe_billing")

#: The reasons Stripe takes for a refund.
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


#: The type a refund read from Stripe's answer is applied as.
REFUND_SNAPSHOT = "refund.updated"


def purchase_log(state: BillingState) -> PurchaseLog:
    """The store's purchase table, or a 503 saying the store keeps none."""
    if state.purchase_log is None:
        raise PurchasesNotKeptError(state.user_store)
    return state.purchase_log


def purchases_of(state: BillingState, who: BillingAccount | str | int) -> list[PurchaseRecord]:
    """The account's purchases, newest first (none when the store keeps none, or before
    the migration adding their table: the start-up error says so)."""
    user_id = who.user_id if isinstance(who, BillingAccount) else str(who)
    if state.purchase_log is None or state.schema.lacking(PURCHASES_TABLE) is not None:
        return []
    with state.event_log.transaction():
        return state.purchase_log.purchases_of(user_id)


def has_purchased(state: BillingState, who: BillingAccount | str | int, product: str) -> bool:
    """Whether the account has a purchase of ``product`` that grants it: paid, not fully
    refunded, its dispute (if any) not lost."""
    return any(p.product == product and p.grants() for p in purchases_of(state, who))


def refund(
    state: BillingState,
    app: Any,
    purchase: PurchaseRecord | str,
    amount: int | None = None,
    reason: str | None = None,
) -> PurchaseRecord:
    """Refund ``amount`` (default: all that is left) of a purchase, apply Stripe's answer,
    and return the purchase as it is now.

    400 for an amount that is not a positive whole number or more than what is left, or
    an unknown reason; 409 for a purchase with nothing to refund; 502 when Stripe fails.
    """
    log = purchase_log(state)
    purchase_id = purchase.id if isinstance(purchase, PurchaseRecord) else str(purchase)
    with state.event_log.transaction():
        current = log.get_purchase(purchase_id)
    if current is None:
        raise LookupError(f"no purchase {purchase_id!r}")
    if current.payment_intent_id is None or current.refundable == 0:
        raise ConflictError(
            "The purchase has nothing left to refund",
            {"purchase": current.id, "status": current.status},
        )
    amount = check_amount(amount, current)
    if reason is not None and reason not in REFUND_REASONS:
        raise ValidationError(
            f"reason must be one of {', '.join(REFUND_REASONS)}", {"field": "reason"}
        )
    params: dict[str, Any] = {
        "payment_intent": current.payment_intent_id,
        "amount": amount,
        "metadata": {"stripe_billing_purchase": current.id},
    }
    if reason is not None:
        params["reason"] = reason
    answer = state.require_stripe().refund_payment(params, idempotency_key("refund"))
    refunded = check_answer(answer, "refund")
    if refunded.get("payment_intent") != current.payment_intent_id:
        raise unusable_answer(
            "refund",
            f"it refunds {refunded.get('payment_intent')}, not {current.payment_intent_id}",
        )
    try:
        event = snapshot_event(
            f"sync_{refunded['id']}",
            REFUND_SNAPSHOT,
            refunded,
            stripe_time(answer.answered_at),
            api_version=None,
            livemode=bool(refunded.get("livemode")),
        )
    except EventParseError as error:
        raise unusable_answer("refund", str(error)) from None
    outcome = run(state, app, event, None)
    logger.info(
        "Stripe purchase refunded",
        extra={"purchase_id": current.id, "refund_id": refunded["id"], "status": outcome.status},
    )
    with state.event_log.transaction():
        after = log.get_purchase(current.id)
    assert after is not None
    return after


def check_amount(amount: Any, purchase: PurchaseRecord) -> int:
    """The amount to refund: all that is left when None, else a positive whole number no
    more than that (400 otherwise)."""
    left = purchase.refundable
    if amount is None:
        return left
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ValidationError(
            "amount must be a positive whole number (the currency's smallest unit)",
            {"field": "amount"},
        )
    if amount > left:
        raise ValidationError(
            f"amount is more than is left to refund ({left})",
            {"field": "amount", "refundable": left},
        )
    return amount
