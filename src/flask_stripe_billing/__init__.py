"""Stripe subscriptions for Flask: verified webhooks, Checkout, signals."""

from . import signals
from .account import AccountChanges, BillingAccount
from .change_preview import ChangePreview, PreviewLine
from .config import Settings
from .entitlements import EntitlementRecord
from .errors import BillingError
from .events import StripeEvent
from .extension import StripeBilling
from .invoices import Invoice
from .management import SubscriptionChange
from .outcomes import Outcome
from .stores import (
    BillingMixin,
    DBAPIUserStore,
    EntitlementLog,
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
