"""A duplicate subscription cancelled at Stripe with a prorated refund, after the commit of
the event that found it (``STRIPE_BILLING_DUPLICATES = "cancel_newest_and_refund"``).

The pipeline finds the duplicate in the event's transaction and sends
``duplicate_subscription`` once after the commit; :func:`on_duplicate`, connected to
that signal for an app that opts in, then asks Stripe, outside any transaction:

1. ``DELETE /v1/subscriptions/{id}`` with ``prorate=false`` and ``invoice_now=false``
   (Stripe's own proration would only credit the customer's balance, which the kept
   subscription's next invoice would then eat: the refund below gives the money back
   to the card instead, and once), expanding ``latest_invoice.payments``;
2. ``POST /v1/refunds`` of the unused part of that invoice's payment (its amount paid
   times the unused share of the period, by the cancellation time Stripe answered),
   reason ``duplicate``, when it was paid at all.

Both carry idempotency keys made from the duplicate's id, so a second attempt (another
worker, a retry) is answered from Stripe's cache and never cancels or refunds twice. The
cancelled subscription is applied through the pipeline at once, and what was done (or
why not) is noted on the event's row of the event log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import DUPLICATES_CANCEL
from ..core.account import BillingAccount
from ..core.events import StripeEvent, SubscriptionFacts, read_subscription, subscription_snapshot
from ..errors import BillingError, EventParseError
from ..pipeline.fetch import check_answer, stripe_time, unusable_answer
from ..pipeline.run import run
from ..redact import describe_error
from ..state import BillingState, get_state
from ..stripe_api import API_VERSION

logger = logging.getLogger("flask_stripe_billing")

#: How a duplicate is cancelled: now, without Stripe's balance credit (the refund gives the
#: money back), with the invoice whose payment is refunded.
CANCEL_PARAMS: dict[str, Any] = {
    "prorate": False,
    "invoice_now": False,
    "expand": ["latest_invoice.payments"],
}


@dataclass(frozen=True)
class DuplicateCancel:
    """What cancelling a duplicate did at Stripe."""

    subscription_id: str
    #: The refund made (None: nothing was paid, so nothing is refunded).
    refund_id: str | None = None
    #: The amount refunded, in the currency's smallest unit.
    amount: int = 0
    currency: str | None = None


def on_duplicate(
    sender: Any,
    *,
    account: BillingAccount,
    duplicate_subscription_id: str,
    kept_subscription_id: str,
    event: StripeEvent,
    **_: Any,
) -> None:
    """``duplicate_subscription``'s receiver for an app that opts in: cancel and refund,
    and note the result (or the failure) on the event."""
    state = get_state(sender)
    if state.settings.duplicates != DUPLICATES_CANCEL:
        return
    try:
        done = cancel_and_refund(state, sender, account, duplicate_subscription_id)
    except BillingError as error:
        note = (
            f"duplicate subscription {duplicate_subscription_id} (of {kept_subscription_id}) "
            f"could not be cancelled at Stripe: {describe_error(error)}; cancel it by hand"
        )
        logger.error(note, extra={"event_id": event.id, "user_id": account.user_id})
    else:
        note = describe(done, kept_subscription_id)
        logger.info(note, extra={"event_id": event.id, "user_id": account.user_id})
    note_on_event(state, event.id, note)


def cancel_and_refund(
    state: BillingState, app: Any, account: BillingAccount, duplicate_id: str
) -> DuplicateCancel:
    """Cancel the duplicate now, apply Stripe's answer, and refund the unused part of its
    latest paid invoice; each request keyed by the duplicate's id."""
    gateway = state.require_stripe()
    answer = gateway.cancel_subscription(duplicate_id, cancel_key(duplicate_id), CANCEL_PARAMS)
    subscription = check_answer(answer, "subscription", duplicate_id, account.stripe_customer_id)
    try:
        snapshot = subscription_snapshot(subscription, stripe_time(answer.answered_at), API_VERSION)
    except EventParseError as error:
        raise unusable_answer("subscription", str(error)) from None
    run(state, app, snapshot, None)
    params = refund_params(subscription, read_subscription(subscription))
    if params is None:
        return DuplicateCancel(duplicate_id)
    refunded = gateway.refund_payment(params, refund_key(duplicate_id)).object
    return DuplicateCancel(
        duplicate_id,
        refund_id=str(refunded.get("id") or "") or None,
        amount=params["amount"],
        currency=_text(refunded.get("currency")),
    )


def cancel_key(duplicate_id: str) -> str:
    """The one idempotency key of a duplicate's cancellation."""
    return f"flask-stripe-billing-duplicate-cancel-{duplicate_id}"


def refund_key(duplicate_id: str) -> str:
    """The one idempotency key of a duplicate's refund."""
    return f"flask-stripe-billing-duplicate-refund-{duplicate_id}"


def refund_params(
    subscription: Mapping[str, Any], facts: SubscriptionFacts
) -> dict[str, Any] | None:
    """The refund of the unused part of the subscription's latest paid invoice: its payment,
    the amount prorated to the time Stripe cancelled it; None when nothing is to refund."""
    invoice = subscription.get("latest_invoice")
    if not isinstance(invoice, Mapping) or invoice.get("status") != "paid":
        return None
    paid = invoice.get("amount_paid")
    payment = paid_payment(invoice)
    if not isinstance(paid, int) or paid <= 0 or payment is None:
        return None
    amount = prorated(paid, facts, subscription.get("canceled_at"))
    if amount <= 0:
        return None
    return {
        **payment,
        "amount": amount,
        "reason": "duplicate",
        "metadata": {"subscription": facts.id, "flask_stripe_billing": "duplicate_subscription"},
    }


def prorated(paid: int, facts: SubscriptionFacts, canceled_at: Any) -> int:
    """``paid`` times the share of the current period left at ``canceled_at`` (rounded down;
    all of it when the period is not known)."""
    start, end = facts.current_period_start, facts.current_period_end
    if start is None or end is None or not isinstance(canceled_at, int) or end <= start:
        return paid
    period = end.timestamp() - start.timestamp()
    unused = min(max(end.timestamp() - canceled_at, 0.0), period)
    return int(paid * unused // period)


def paid_payment(invoice: Mapping[str, Any]) -> dict[str, str] | None:
    """What paid the invoice, as a refund names it: ``payment_intent`` (or ``charge``), from
    its ``payments`` (since 2025-03-31), else its own fields (older versions)."""
    payments = invoice.get("payments")
    data = payments.get("data") if isinstance(payments, Mapping) else None
    for entry in data or []:
        payment = entry.get("payment") if isinstance(entry, Mapping) else None
        if not isinstance(payment, Mapping) or entry.get("status") != "paid":
            continue
        for kind in ("payment_intent", "charge"):
            found = _id(payment.get(kind))
            if found is not None:
                return {kind: found}
    for kind in ("payment_intent", "charge"):
        found = _id(invoice.get(kind))
        if found is not None:
            return {kind: found}
    return None


def describe(done: DuplicateCancel, kept_id: str) -> str:
    """The note a cancelled duplicate leaves on its event."""
    text = f"duplicate subscription {done.subscription_id} (of {kept_id}) cancelled at Stripe"
    if done.refund_id is None:
        return f"{text}; nothing paid to refund"
    amount = f"{done.amount} {done.currency}" if done.currency else str(done.amount)
    return f"{text}; refunded {amount} ({done.refund_id})"


def note_on_event(state: BillingState, event_id: str, note: str) -> None:
    """Add ``note`` to the event's row (its status kept); nothing for an unlogged snapshot."""
    log = state.event_log
    with log.transaction():
        stored = log.get_event(event_id)
        if stored is None:
            return
        text = f"{stored.error}; {note}" if stored.error else note
        log.finish_event(event_id, stored.status, user_id=stored.user_id, error=text)


def _id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
