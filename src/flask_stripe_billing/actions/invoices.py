"""A customer's invoices from Stripe's API, for a billing page: receipts and unpaid bills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..core.account import BillingAccount
from ..core.events import read_invoice
from ..state import BillingState

#: Stripe's largest page; more invoices need paging the host can do itself.
MAX_INVOICES = 100


@dataclass(frozen=True)
class Invoice:
    """One invoice as a billing page shows it (amounts in the currency's smallest unit)."""

    id: str
    number: str | None
    created: datetime | None
    amount_due: int | None
    amount_paid: int | None
    currency: str | None
    #: ``draft``, ``open``, ``paid``, ``uncollectible`` or ``void``.
    status: str | None
    #: Where the customer can see and pay it.
    hosted_invoice_url: str | None
    invoice_pdf: str | None


def list_invoices(
    state: BillingState, account_or_user_id: BillingAccount | str | int, limit: int = 10
) -> list[Invoice]:
    """The newest ``limit`` invoices of the account's customer, newest first.

    An account without a Stripe customer has none (no call to Stripe). Raises
    :class:`LookupError` for an unknown user and :class:`~.errors.StripeServiceError`
    when Stripe fails.
    """
    if not 1 <= limit <= MAX_INVOICES:
        raise ValueError(f"limit must be between 1 and {MAX_INVOICES}")
    account = state.account_of(account_or_user_id)
    if account.stripe_customer_id is None:
        return []
    listed = state.require_stripe().list_invoices(account.stripe_customer_id, limit)
    return [_invoice(obj) for obj in listed]


def _invoice(obj: dict[str, object]) -> Invoice:
    facts = read_invoice(obj)
    return Invoice(
        id=facts.id,
        number=facts.number,
        created=facts.created,
        amount_due=facts.amount_due,
        amount_paid=facts.amount_paid,
        currency=facts.currency,
        status=facts.status,
        hosted_invoice_url=facts.hosted_invoice_url,
        invoice_pdf=facts.invoice_pdf,
    )
