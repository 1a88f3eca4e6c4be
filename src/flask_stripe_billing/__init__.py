"""Stripe subscriptions for Flask: verified webhooks, Checkout, signals.

Everything a host app may import is listed in ``__all__`` here; the only other public
modules are :mod:`flask_stripe_billing.signals` and :mod:`flask_stripe_billing.testing`.
The layers below (``core``, ``pipeline``, ``actions``, ``web``, ``stores``, ``cli``) are
internal: their module paths may change in any release.
"""

from __future__ import annotations

from . import signals
from .actions.invoices import Invoice
from .actions.management import ChangePreview, PreviewLine, SubscriptionChange
from .actions.meters import UsageSummary
from .actions.usage import UsageSendReport
from .config import Settings
from .core.account import AccountChanges, BillingAccount, SubscriptionRecord
from .core.catalogue import Plan, Price, Prices
from .core.entitlements import EntitlementRecord, SummaryFacts
from .core.events import (
    CheckoutSessionFacts,
    InvoiceFacts,
    MeterErrorFacts,
    MeterErrorType,
    PendingUpdate,
    StripeEvent,
    SubscriptionFacts,
)
from .core.outcomes import EventStatus, Outcome
from .core.payments import ChargeFacts, DisputeFacts, RefundFacts
from .core.purchases import PurchaseRecord, PurchaseStatus, RefundPart
from .core.rules import HANDLED_EVENT_TYPES
from .core.usage import UsageRecord, UsageStatus
from .errors import (
    AuthenticationError,
    BillingError,
    ConflictError,
    CrossSiteRequestError,
    EventNotRecordedError,
    EventParseError,
    FeatureRequiredError,
    MethodNotAllowedError,
    NotConfiguredError,
    NotFoundError,
    PayloadTooLargeError,
    PlanRequiredError,
    PurchasesNotKeptError,
    SchemaOutdatedError,
    StoreContractError,
    StoreUnavailableError,
    StripeServiceError,
    UsageNotKeptError,
    ValidationError,
)
from .extension import StripeBilling
from .stores.base import (
    AccountListing,
    EntitlementLog,
    EventCursor,
    EventLog,
    EventPaging,
    EventRecord,
    PurchaseLog,
    SubscriptionLog,
    TableInspection,
    UsageLog,
    UserStore,
)
from .stores.columns import BillingMixin
from .stores.dbapi import DBAPIUserStore
from .stores.memory import InMemoryUserStore
from .stores.sqlalchemy import SQLAlchemyUserStore
from .stripe_api import API_VERSION
from .web.admin import AccountSection
from .web.buttons import (
    billing_cancel_button,
    billing_change_plan_button,
    billing_checkout_button,
    billing_portal_button,
    billing_resume_button,
    billing_seats_form,
    billing_settings,
)

__version__ = "0.1.0"


__all__ = [
    "API_VERSION",
    "HANDLED_EVENT_TYPES",
    "AccountChanges",
    "AccountListing",
    "AccountSection",
    "AuthenticationError",
    "BillingAccount",
    "BillingError",
    "BillingMixin",
    "ChangePreview",
    "ChargeFacts",
    "CheckoutSessionFacts",
    "ConflictError",
    "CrossSiteRequestError",
    "DBAPIUserStore",
    "DisputeFacts",
    "EntitlementLog",
    "EntitlementRecord",
    "EventCursor",
    "EventLog",
    "EventNotRecordedError",
    "EventPaging",
    "EventParseError",
    "EventRecord",
    "EventStatus",
    "FeatureRequiredError",
    "InMemoryUserStore",
    "Invoice",
    "InvoiceFacts",
    "MeterErrorFacts",
    "MeterErrorType",
    "MethodNotAllowedError",
    "NotConfiguredError",
    "NotFoundError",
    "Outcome",
    "PayloadTooLargeError",
    "PendingUpdate",
    "Plan",
    "PlanRequiredError",
    "PreviewLine",
    "Price",
    "Prices",
    "PurchaseLog",
    "PurchaseRecord",
    "PurchaseStatus",
    "PurchasesNotKeptError",
    "RefundFacts",
    "RefundPart",
    "SQLAlchemyUserStore",
    "SchemaOutdatedError",
    "Settings",
    "StoreContractError",
    "StoreUnavailableError",
    "StripeBilling",
    "StripeEvent",
    "StripeServiceError",
    "SubscriptionChange",
    "SubscriptionFacts",
    "SubscriptionLog",
    "SubscriptionRecord",
    "SummaryFacts",
    "TableInspection",
    "UsageLog",
    "UsageNotKeptError",
    "UsageRecord",
    "UsageSendReport",
    "UsageStatus",
    "UsageSummary",
    "UserStore",
    "ValidationError",
    "billing_cancel_button",
    "billing_change_plan_button",
    "billing_checkout_button",
    "billing_portal_button",
    "billing_resume_button",
    "billing_seats_form",
    "billing_settings",
    "signals",
]
