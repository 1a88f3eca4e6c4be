"""Stores for billing state and the library's logs, and the store contract they keep."""

from __future__ import annotations

from ..core.outcomes import EventStatus
from ..errors import StoreContractError, StoreUnavailableError
from .base import (
    AccountListing,
    EntitlementLog,
    EventLog,
    EventRecord,
    SubscriptionLog,
    TableInspection,
    UserStore,
)
from .columns import BillingMixin
from .dbapi import DBAPIUserStore
from .memory import InMemoryUserStore
from .sqlalchemy import SQLAlchemyUserStore

__all__ = [
    "AccountListing",
    "BillingMixin",
    "DBAPIUserStore",
    "EntitlementLog",
    "EventLog",
    "EventRecord",
    "EventStatus",
    "InMemoryUserStore",
    "SQLAlchemyUserStore",
    "StoreContractError",
    "StoreUnavailableError",
    "SubscriptionLog",
    "TableInspection",
    "UserStore",
]
