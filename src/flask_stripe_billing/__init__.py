"""Stripe subscriptions for Flask: verified webhooks, Checkout, signals."""

from __future__ import annotations

from . import signals
from .actions.invoices import Invoice
from .actions.management import ChangePreview, PreviewLine, SubscriptionChange
from .config import Settings
from .core.account import AccountChanges, BillingAccount, SubscriptionRecord
from .core.entitlements import EntitlementRecord
from .core.events import StripeEvent
from .core.outcomes import EventStatus, Outcome
from .errors import BillingError
from .extension import StripeBilling
from .stores.base import EntitlementLog, EventLog, EventRecord, SubscriptionLog, UserStore
from .stores.columns import BillingMixin
from .stores.dbapi import DBAPIUserStore
from .stores.memory import InMemoryUserStore
from .stores.sqlalchemy import SQLAlchemyUserStore

__version__ = "0.1.0"


__all__ = [
    "AccountChanges",
    "BillingAccount",
    "BillingError",
    "BillingMixin",
    "ChangePreview",
    "DBAPIUserStore",
    "EntitlementLog",
    "EntitlementRecord",
    "EventLog",
    "EventRecord",
    "EventStatus",
    "InMemoryUserStore",
    "Invoice",
    "Outcome",
    "PreviewLine",
    "SQLAlchemyUserStore",
    "Settings",
    "StripeBilling",
    "StripeEvent",
    "SubscriptionChange",
    "SubscriptionLog",
    "SubscriptionRecord",
    "UserStore",
    "signals",
]
