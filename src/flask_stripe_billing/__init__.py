"""Stripe subscriptions for Flask: verified webhooks, Checkout, signals."""

from . import signals
from .account import AccountChanges, BillingAccount
from .config import Settings
from .errors import BillingError
from .events import StripeEvent
from .extension import StripeBilling
from .stores import (
    BillingMixin,
    EventLog,
    EventRecord,
    EventStatus,
    InMemoryUserStore,
    SQLAlchemyUserStore,
    UserStore,
)
from .webhook import Outcome

__version__ = "0.1.0"

__all__ = [
    "AccountChanges",
    "BillingAccount",
    "BillingError",
    "BillingMixin",
    "EventLog",
    "EventRecord",
    "EventStatus",
    "InMemoryUserStore",
    "Outcome",
    "SQLAlchemyUserStore",
    "Settings",
    "StripeBilling",
    "StripeEvent",
    "UserStore",
    "signals",
]
