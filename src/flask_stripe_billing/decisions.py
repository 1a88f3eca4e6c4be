"""What the rules decide for one event: the account it is about, the changes, and the
signals to send after the commit. Plain values, shared by the rule modules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .account import AccountChanges, BillingAccount
from .entitlements import EntitlementRecord
from .stores.base import EventStatus
from .subscriptions import SubscriptionRecord

PROCESSED = EventStatus.PROCESSED
IGNORED = EventStatus.IGNORED
STALE = EventStatus.STALE
UNMATCHED = EventStatus.UNMATCHED


@dataclass(frozen=True)
class AccountMatch:
    """The account an event was found to be about, and how it was found."""

    account: BillingAccount | None
    #: True when found by the event's customer id; False when named by the event
    #: itself (``client_reference_id`` / ``metadata.user_id``).
    by_customer: bool


@dataclass(frozen=True)
class Notice:
    """A signal to send after the commit: its name in :mod:`.signals` and its arguments."""

    signal: str
    kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class Decision:
    """Everything one event changes; the pipeline writes it and sends the notices."""

    status: str
    account: BillingAccount | None = None
    #: Fields of the account to write (empty: the account stays as it is).
    account_changes: AccountChanges = field(default_factory=lambda: AccountChanges())
    #: Subscription records to write (new or changed).
    records: tuple[SubscriptionRecord, ...] = ()
    notices: tuple[Notice, ...] = ()
    #: Why an event stayed unmatched or stale, in words.
    reason: str | None = None
    #: The customer's entitlement record to write (new or changed).
    entitlements: EntitlementRecord | None = None

    @property
    def after(self) -> BillingAccount | None:
        """The account as it is once the changes are written."""
        if self.account is None:
            return None
        after = self.account.with_changes(self.account_changes)
        if self.entitlements is not None:
            after = replace(after, features=self.entitlements.features)
        return after
