"""The rule for Stripe Entitlements: a summary sets its customer's active features.

Pure: no Flask, no HTTP, no database (see :mod:`.entitlements` for the record and its
watermark).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from .account import BillingAccount
from .decisions import IGNORED, PROCESSED, STALE, AccountMatch, Decision, Notice
from .entitlements import EntitlementRecord, supersedes
from .events import StripeEvent


def decide_entitlements(
    event: StripeEvent,
    match: AccountMatch,
    record: EntitlementRecord | None,
    now: datetime,
) -> Decision:
    """A summary sets its customer's active features, unless a newer one was applied.

    The record is kept per customer whether or not an account is linked to
    it yet (the summary often comes before Checkout's event links the
    customer); an account reads its features once linked. Like a lifecycle
    event, a summary never links a customer. ``features_changed`` goes out
    when a linked account's features really change.
    """
    summary = event.entitlements
    if summary is None:
        return Decision(IGNORED, reason="the entitlement summary names no customer")
    account = match.account if match.by_customer else None
    if not supersedes(event.created, summary.features, record):
        if record is not None and record.features == summary.features:
            return Decision(PROCESSED, account)  # the features it lists are the ones kept
        return Decision(
            STALE, account, reason="a newer entitlement summary of this customer was applied"
        )
    written = EntitlementRecord(
        customer_id=summary.customer_id,
        features=summary.features,
        last_event_at=event.created,
        last_event_id=event.id,
        updated_at=now,
    )
    old = record.features if record is not None else frozenset()
    if account is None:
        reason = (
            f"no account is linked to customer {summary.customer_id} yet; "
            "its features apply once one is"
        )
        return Decision(PROCESSED, entitlements=written, reason=reason)
    notices: tuple[Notice, ...] = ()
    if old != written.features:
        before = replace(account, features=old)
        notices = (features_notice(replace(account, features=written.features), before),)
    return Decision(PROCESSED, account, entitlements=written, notices=notices)


def features_notice(after: BillingAccount, before: BillingAccount) -> Notice:
    """``features_changed`` from ``before``'s features to ``after``'s."""
    kwargs = {
        "user_id": after.user_id,
        "old_features": before.features,
        "new_features": after.features,
        "account": after,
    }
    return Notice("features_changed", kwargs)
