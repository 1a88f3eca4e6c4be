"""Stores for billing state and the event log."""

from .base import (
    EntitlementLog,
    EventLog,
    EventRecord,
    EventStatus,
    StoreUnavailableError,
    SubscriptionLog,
    UserStore,
)
from .columns import BillingMixin
from .dbapi import DBAPIUserStore
from .memory import InMemoryUserStore
from .sqlalchemy import SQLAlchemyUserStore

__all__ = [
    "BillingMixin",
    "DBAPIUserStore",
    "EntitlementLog",
    "EventLog",
    "EventRecord",
    "EventStatus",
    "InMemoryUserStore",
    "SQLAlchemyUserStore",
    "StoreUnavailableError",
    "SubscriptionLog",
    "UserStore",
]
