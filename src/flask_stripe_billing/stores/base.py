"""The storage contracts: ``UserStore`` for accounts, ``EventLog`` for received events."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..core.account import AccountChanges, BillingAccount, SubscriptionRecord
from ..core.entitlements import EntitlementRecord
from ..core.events import StripeEvent
from ..core.outcomes import RETRYABLE_STATUSES


@runtime_checkable
class UserStore(Protocol):
    """Where the host keeps each user's billing state. Small on purpose.

    ``lock=True`` asks a store backed by a database to row-lock the account for
    the current transaction, so concurrent events for one customer serialise.
    """

    def get(self, user_id: str, *, lock: bool = False) -> BillingAccount | None:
        """The account of this user, or None."""

    def get_by_customer_id(self, customer_id: str, *, lock: bool = False) -> BillingAccount | None:
        """The account linked to this Stripe customer, or None."""

    def set_customer_id(self, user_id: str, customer_id: str) -> BillingAccount:
        """Link the user to a Stripe customer and return the account."""

    def apply(self, user_id: str, changes: AccountChanges) -> BillingAccount:
        """Write ``changes`` to the user's account and return the new state."""


@runtime_checkable
class SubscriptionLog(Protocol):
    """The library's own table of Stripe subscriptions, one record each.

    It shares the event log's transaction; the pipeline reads an account's
    records after locking the account, so writes for one account serialise.
    """

    def subscriptions_of(self, user_id: str) -> list[SubscriptionRecord]:
        """Every recorded subscription of this account."""

    def save_subscription(self, record: SubscriptionRecord) -> None:
        """Insert the record, or replace the one with its id."""


@runtime_checkable
class EntitlementLog(Protocol):
    """The library's own table of Stripe Entitlements: one record per customer.

    Optional: a store without it answers entitlement summaries ``ignored``.
    It shares the event log's transaction.
    """

    def lock_entitlements(self, customer_id: str) -> EntitlementRecord:
        """The customer's record, row-locked for the transaction; a blank one (no
        watermark, no features) is created first when there is none, so that two
        summaries of one customer serialise even before any account is linked to it."""

    def save_entitlements(self, record: EntitlementRecord) -> None:
        """Write the record over its customer's (locked by :meth:`lock_entitlements`)."""

    def entitlements_of(self, customer_id: str) -> EntitlementRecord | None:
        """The customer's record, or None (no lock: for reading features)."""


@dataclass(frozen=True)
class EventRecord:
    """One row of the event log."""

    id: str
    type: str
    created: datetime
    customer_id: str | None
    user_id: str | None
    status: str
    error: str | None
    payload: str
    attempts: int
    received_at: datetime
    processed_at: datetime | None


@runtime_checkable
class EventLog(Protocol):
    """The durable log of received events, sharing the account store's transaction."""

    def transaction(self) -> AbstractContextManager[None]:
        """Commit on success, roll back on error; raise StoreUnavailableError if down."""

    def record_event(self, event: StripeEvent, payload: str) -> EventRecord:
        """Store the event if new, lock its row, and return it as stored."""

    def finish_event(
        self,
        event_id: str,
        status: str,
        *,
        user_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Mark how processing ended."""

    def get_event(self, event_id: str) -> EventRecord | None:
        """The stored event, or None."""

    def list_events(
        self,
        *,
        statuses: Collection[str] | None = None,
        event_type: str | None = None,
        customer_id: str | None = None,
        limit: int | None = None,
        oldest_first: bool = False,
    ) -> list[EventRecord]:
        """Stored events matching every filter given.

        Newest received first; ``oldest_first`` orders by Stripe's creation time
        instead, oldest first (the order to replay them in).
        """

    def delete_events(self, *, before: datetime, statuses: Collection[str]) -> int:
        """Delete events received before ``before`` with one of ``statuses``; return how many."""

    def count_events(self, *, before: datetime, statuses: Collection[str]) -> int:
        """How many events received before ``before`` have one of ``statuses``."""


@runtime_checkable
class PipelineSteps(Protocol):
    """The pipeline's reads and writes for one event, in as few round trips as a store can.

    :class:`SeparateSteps` does them with the small protocols above, one call
    each; a store over one database may do each in a single statement.
    """

    def record_and_lock(
        self, event: StripeEvent, payload: str, *, lock: bool = True
    ) -> tuple[EventRecord, BillingAccount | None]:
        """Record the event (as ``record_event``), then row-lock and return the account
        linked to its customer (None: no customer, no account has it, or not ``lock``)."""

    def write_outcome(
        self,
        *,
        event_id: str | None,
        status: str,
        account: BillingAccount | None,
        changes: AccountChanges,
        records: Sequence[SubscriptionRecord],
        error: str | None,
    ) -> BillingAccount | None:
        """Save the records, apply the changes to the account, and mark the event (when
        ``event_id`` is given, i.e. it was recorded); return the account as it is now."""


class SeparateSteps:
    """:class:`PipelineSteps` over the three small protocols, one call per step."""

    def __init__(
        self, user_store: UserStore, event_log: EventLog, subscription_log: SubscriptionLog
    ) -> None:
        self.user_store = user_store
        self.event_log = event_log
        self.subscription_log = subscription_log

    def record_and_lock(
        self, event: StripeEvent, payload: str, *, lock: bool = True
    ) -> tuple[EventRecord, BillingAccount | None]:
        record = self.event_log.record_event(event, payload)
        if not lock or record.status not in RETRYABLE_STATUSES or not event.customer_id:
            return record, None
        return record, self.user_store.get_by_customer_id(event.customer_id, lock=True)

    def write_outcome(
        self,
        *,
        event_id: str | None,
        status: str,
        account: BillingAccount | None,
        changes: AccountChanges,
        records: Sequence[SubscriptionRecord],
        error: str | None,
    ) -> BillingAccount | None:
        for record in records:
            self.subscription_log.save_subscription(record)
        after = account
        if account is not None and changes:
            after = self.user_store.apply(account.user_id, changes)
        if event_id is not None:
            user_id = account.user_id if account is not None else None
            self.event_log.finish_event(event_id, status, user_id=user_id, error=error)
        return after
