"""Stores for billing state and the event log."""

from __future__ import annotations

from ..core.outcomes import EventStatus
from ..errors import StoreUnavailableError
from .base import EntitlementLog, EventLog, EventRecord, SubscriptionLog, UserStore
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
