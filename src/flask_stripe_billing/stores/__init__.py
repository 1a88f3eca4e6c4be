"""Stores for billing state and the event log."""

from .base import (
    EventLog,
    EventRecord,
    EventStatus,
    StoreUnavailableError,
    UserStore,
)
from .memory import InMemoryUserStore
from .sqlalchemy import BillingMixin, SQLAlchemyUserStore

__all__ = [
    "BillingMixin",
    "EventLog",
    "EventRecord",
    "EventStatus",
    "InMemoryUserStore",
    "SQLAlchemyUserStore",
    "StoreUnavailableError",
    "UserStore",
]
