"""Stripe subscriptions for Flask: verified webhooks, Checkout, signals."""

from . import signals
from .account import AccountChanges, BillingAccount
from .config import Settings
from .errors import BillingError
from .events import StripeEvent
from .extension import StripeBilling
from .invoices import Invoice
from .pipeline import Outcome
from .stores import (
    BillingMixin,
    DBAPIUserStore,
    EventLog,
    EventRecord,
    EventStatus,
    InMemoryUserStore,
    SQLAlchemyUserStore,
    SubscriptionLog,
    UserStore,
)
from .subscriptions import SubscriptionRecord

__version__ = "0.1.0"

__all__ = [
    "AccountChanges",
    "BillingAccount",
    "BillingError",
    "BillingMixin",
    "DBAPIUserStore",
    "EventLog",
    "EventRecord",
    "EventStatus",
    "InMemoryUserStore",
    "Invoice",
    "Outcome",
    "SQLAlchemyUserStore",
    "Settings",
    "StripeBilling",
    "StripeEvent",
    "SubscriptionLog",
    "SubscriptionRecord",
    "UserStore",
    "signals",
]
