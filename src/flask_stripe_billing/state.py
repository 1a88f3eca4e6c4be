"""What the extension keeps per app, and the one accessor that reads it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from flask import Flask, current_app

from ._util import EXTENSION_KEY
from .config import Settings
from .core.account import BillingAccount
from .core.purchases import purchased_features
from .errors import NotConfiguredError
from .stores.base import (
    ENTITLEMENTS_TABLE,
    PURCHASES_TABLE,
    EntitlementLog,
    EventLog,
    PipelineSteps,
    PurchaseLog,
    SubscriptionLog,
    UsageLog,
    UserStore,
)
from .stores.upgrade import SchemaWatch
from .stripe_api import StripeGateway

__all__ = ["EXTENSION_KEY", "BillingState", "CurrentUserId", "Dispatch", "app_object", "get_state"]


#: Who is calling: the current account's id, or None when anonymous.
CurrentUserId = Callable[[], "str | None"]


#: Hands a recorded event's id to the host's queue (dispatch mode).
Dispatch = Callable[[str], object]


@dataclass(frozen=True)
class BillingState:
    """The extension's state for one app, in ``app.extensions["stripe_billing"]``."""

    settings: Settings
    user_store: UserStore
    event_log: EventLog
    subscription_log: SubscriptionLog
    #: The pipeline's reads and writes of one event (fewer round trips where it can).
    steps: PipelineSteps
    current_user_id: CurrentUserId
    #: Stripe's API, when STRIPE_API_KEY is set (checkout, portal, sync, re-fetch).
    stripe: StripeGateway | None
    #: Dispatch mode's hand-off to a queue; None processes events inline.
    dispatch: Dispatch | None = None
    #: The customers' Stripe Entitlements, when a store keeps them (None: summaries ignored).
    entitlement_log: EntitlementLog | None = None
    #: Whether the database has the tables and columns this release needs.
    schema: SchemaWatch = field(default_factory=SchemaWatch)
    #: The store's usage table (None: the store keeps none, so usage is refused).
    usage_log: UsageLog | None = None
    #: Stripe's API for meter events, paced at STRIPE_BILLING_USAGE_RATE (None: no key).
    usage_stripe: StripeGateway | None = None
    #: The store's purchase table (None: the store keeps none, so refunds and disputes
    #: are recorded ``ignored`` and payment-mode sessions make no purchase).
    purchase_log: PurchaseLog | None = None

    def account_of(self, account_or_user_id: BillingAccount | str | int) -> BillingAccount:
        """The account itself, or the one of this user id with its features; LookupError for
        an unknown user."""
        if isinstance(account_or_user_id, BillingAccount):
            return account_or_user_id
        account = self.user_store.get(str(account_or_user_id))
        if account is None:
            raise LookupError(f"no user {account_or_user_id!r}")
        return self.with_features(account)

    def with_features(self, account: BillingAccount) -> BillingAccount:
        """The account with its customer's active Stripe Entitlements: one read, like the
        store's ``get`` (in the caller's transaction, if any); and the app's past_due grace."""
        grace = self.settings.past_due_keeps_plan
        if account.past_due_keeps_plan != grace:
            account = replace(account, past_due_keeps_plan=grace)
        purchases = self.purchase_log if self.settings.product_features else None
        # No table before the migration: no purchased features yet, rather than an error.
        if purchases is not None and self.schema.lacking(PURCHASES_TABLE) is None:
            mine = purchases.purchases_of(account.user_id)
            bought = purchased_features(mine, self.settings)
            if bought != account.purchased_features:
                account = replace(account, purchased_features=bought)
        if self.entitlement_log is None or account.stripe_customer_id is None:
            return account
        if self.schema.lacking(ENTITLEMENTS_TABLE) is not None:
            return account  # no table before the migration: the plan's features only
        record = self.entitlement_log.entitlements_of(account.stripe_customer_id)
        if record is None or record.features == account.features:
            return account
        return replace(account, features=record.features)

    def require_stripe(self) -> StripeGateway:
        """The Stripe gateway, or a 503 naming the missing key."""
        if self.stripe is None:
            raise NotConfiguredError(["STRIPE_API_KEY"])
        return self.stripe


def get_state(app: Flask | None = None) -> BillingState:
    """The extension's state for ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    try:
        state: BillingState = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("StripeBilling is not set up on this app; call init_app(app)") from None
    return state


def app_object() -> Any:
    """The real app behind ``current_app``: the sender of every signal."""
    return current_app._get_current_object()  # type: ignore[attr-defined]
