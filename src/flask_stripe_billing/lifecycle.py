"""Lifecycle events that change no plan: the signal each one becomes, once per event id.

Pure, like the rules that call them. Each function reads one event type and gives
the keyword arguments of its signal (``event`` is added when it is sent), or
None when the event's object is not the one its type promises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .account import BillingAccount
from .events import StripeEvent

#: A lifecycle event and the account of its customer → the signal's keyword arguments.
NoticeArguments = Callable[[StripeEvent, BillingAccount], dict[str, Any] | None]


def payment_failed(event: StripeEvent, account: BillingAccount) -> dict[str, Any] | None:
    """``invoice.payment_failed``: what a dunning e-mail needs."""
    invoice = event.invoice
    if invoice is None:
        return None
    return {
        "user_id": account.user_id,
        "account": account,
        "amount_due": invoice.amount_due,
        "currency": invoice.currency,
        "attempt_count": invoice.attempt_count,
        "next_payment_attempt": invoice.next_payment_attempt,
        "hosted_invoice_url": invoice.hosted_invoice_url,
        "invoice_id": invoice.id,
        "subscription_id": invoice.subscription_id,
    }


def payment_succeeded(event: StripeEvent, account: BillingAccount) -> dict[str, Any] | None:
    """``invoice.paid``: what a receipt needs."""
    invoice = event.invoice
    if invoice is None:
        return None
    return {
        "user_id": account.user_id,
        "account": account,
        "amount_paid": invoice.amount_paid,
        "currency": invoice.currency,
        "hosted_invoice_url": invoice.hosted_invoice_url,
        "invoice_pdf": invoice.invoice_pdf,
        "invoice_id": invoice.id,
        "subscription_id": invoice.subscription_id,
    }


def payment_action_required(event: StripeEvent, account: BillingAccount) -> dict[str, Any] | None:
    """``invoice.payment_action_required``: the customer must confirm the payment (3-D Secure)."""
    invoice = event.invoice
    if invoice is None:
        return None
    return {
        "user_id": account.user_id,
        "account": account,
        "hosted_invoice_url": invoice.hosted_invoice_url,
        "invoice_id": invoice.id,
    }


def trial_will_end(event: StripeEvent, account: BillingAccount) -> dict[str, Any] | None:
    """``customer.subscription.trial_will_end``: sent by Stripe three days before the end."""
    subscription = event.subscription
    if subscription is None:
        return None
    return {
        "user_id": account.user_id,
        "account": account,
        "subscription_id": subscription.id,
        "trial_end": subscription.trial_end,
    }


#: Each lifecycle event type: the name of its signal in :mod:`.signals` and its arguments.
LIFECYCLE_SIGNALS: dict[str, tuple[str, NoticeArguments]] = {
    "invoice.payment_failed": ("payment_failed", payment_failed),
    "invoice.paid": ("payment_succeeded", payment_succeeded),
    "invoice.payment_action_required": ("payment_action_required", payment_action_required),
    "customer.subscription.trial_will_end": ("trial_will_end", trial_will_end),
}
