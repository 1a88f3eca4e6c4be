"""The pipeline's reads of the entitlement table: a summary's customer record, locked, and
the features kept for a customer an event is about to link."""

from __future__ import annotations

from .decisions import AccountMatch
from .entitlements import SUMMARY_EVENT, EntitlementRecord
from .events import StripeEvent
from .state import BillingState


def lock_entitlements(state: BillingState, event: StripeEvent) -> EntitlementRecord | None:
    """An entitlement summary's customer record, row-locked after the account (as every
    writer of it locks them); None for any other event."""
    summary = event.entitlements
    if event.type != SUMMARY_EVENT or summary is None or state.entitlement_log is None:
        return None
    return state.entitlement_log.lock_entitlements(summary.customer_id)


def waiting_entitlements(
    state: BillingState, event: StripeEvent, match: AccountMatch
) -> EntitlementRecord | None:
    """The entitlements kept for the customer an event is about to link to its account
    (a summary that came first); None when the event links no customer."""
    account = match.account
    if (
        state.entitlement_log is None
        or account is None
        or match.by_customer
        or not event.customer_id
        or account.stripe_customer_id is not None
    ):
        return None
    return state.entitlement_log.entitlements_of(event.customer_id)
