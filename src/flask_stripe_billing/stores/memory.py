"""An in-process store for tests and demos: accounts, event log, subscriptions,
entitlements, usage and purchases in dicts."""

from __future__ import annotations

import copy
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

from .._util import as_utc, utcnow
from ..core.account import AccountChanges, BillingAccount, SubscriptionRecord
from ..core.entitlements import EntitlementRecord
from ..core.events import StripeEvent
from ..core.outcomes import EventStatus
from ..core.purchases import PurchaseRecord
from ..core.usage import UsageRecord, UsageStatus
from .base import EventCursor, EventRecord


class InMemoryUserStore:
    """A ``UserStore``, ``EventLog``, ``SubscriptionLog``, ``EntitlementLog``, ``UsageLog``
    and ``PurchaseLog`` in memory; one lock serialises transactions."""

    def __init__(self, accounts: Iterable[BillingAccount] = ()) -> None:
        self._accounts: dict[str, BillingAccount] = {}
        self._events: dict[str, EventRecord] = {}
        self._subscriptions: dict[str, SubscriptionRecord] = {}
        self._entitlements: dict[str, EntitlementRecord] = {}
        self._usage: dict[str, UsageRecord] = {}
        self._purchases: dict[str, PurchaseRecord] = {}
        self._lock = threading.RLock()
        for account in accounts:
            self.add(account)

    def add(self, account: BillingAccount) -> None:
        """Add (or replace) an account."""
        with self._lock:
            self._accounts[account.user_id] = account

    @property
    def events(self) -> list[EventRecord]:
        """The event log, oldest first."""
        with self._lock:
            return list(self._events.values())

    @property
    def subscriptions(self) -> list[SubscriptionRecord]:
        """Every subscription record, in the order first recorded."""
        with self._lock:
            return list(self._subscriptions.values())

    # UserStore

    def get(self, user_id: str, *, lock: bool = False) -> BillingAccount | None:
        return self._accounts.get(user_id)

    def get_by_customer_id(self, customer_id: str, *, lock: bool = False) -> BillingAccount | None:
        with self._lock:
            for account in self._accounts.values():
                if account.stripe_customer_id == customer_id:
                    return account
        return None

    def set_customer_id(self, user_id: str, customer_id: str) -> BillingAccount:
        return self.apply(user_id, {"stripe_customer_id": customer_id})

    def apply(self, user_id: str, changes: AccountChanges) -> BillingAccount:
        in_utc = {k: as_utc(v) if isinstance(v, datetime) else v for k, v in changes.items()}
        with self._lock:
            account = self._accounts[user_id].with_changes(cast(AccountChanges, in_utc))
            self._accounts[user_id] = account
            return account

    def accounts_with_customer(self) -> list[BillingAccount]:
        """Every account linked to a Stripe customer, by user id (for ``flask billing sync``)."""
        with self._lock:
            linked = [a for a in self._accounts.values() if a.stripe_customer_id]
        return sorted(linked, key=lambda account: account.user_id)

    # SubscriptionLog

    def subscriptions_of(self, user_id: str) -> list[SubscriptionRecord]:
        with self._lock:
            return [r for r in self._subscriptions.values() if r.user_id == user_id]

    def save_subscription(self, record: SubscriptionRecord) -> None:
        with self._lock:
            self._subscriptions[record.id] = record.in_utc()

    # EntitlementLog

    def lock_entitlements(self, customer_id: str) -> EntitlementRecord:
        with self._lock:
            blank = EntitlementRecord.blank(customer_id)
            return self._entitlements.setdefault(customer_id, blank)

    def save_entitlements(self, record: EntitlementRecord) -> None:
        with self._lock:
            self._entitlements[record.customer_id] = record.in_utc()

    def entitlements_of(self, customer_id: str) -> EntitlementRecord | None:
        with self._lock:
            return self._entitlements.get(customer_id)

    # UsageLog

    @property
    def usage(self) -> list[UsageRecord]:
        """Every usage row, in the order reported."""
        with self._lock:
            return list(self._usage.values())

    def add_usage(self, record: UsageRecord) -> bool:
        with self._lock:
            if record.identifier in self._usage:
                return False
            self._usage[record.identifier] = record.in_utc()
            return True

    def claim_usage(self, *, limit: int, now: datetime) -> list[UsageRecord]:
        with self._lock:  # held by the transaction: one sender at a time
            due = [
                r
                for r in self._usage.values()
                if r.status == UsageStatus.PENDING
                and r.next_attempt_at is not None
                and r.next_attempt_at <= now
            ]
        due.sort(key=lambda r: (r.next_attempt_at, r.identifier))
        return due[:limit]

    def save_usage(self, records: Sequence[UsageRecord]) -> None:
        with self._lock:
            for record in records:
                self._usage[record.identifier] = record.in_utc()

    def list_usage(
        self,
        *,
        statuses: Collection[str] | None = None,
        user_id: str | None = None,
        limit: int | None = None,
    ) -> list[UsageRecord]:
        with self._lock:
            rows = [
                r
                for r in self._usage.values()
                if (statuses is None or r.status in statuses)
                and (user_id is None or r.user_id == str(user_id))
            ]
        rows.sort(key=lambda r: (r.reported_at or r.timestamp, r.identifier), reverse=True)
        return rows if limit is None else rows[:limit]

    def count_usage(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for record in self._usage.values():
                counts[record.status] = counts.get(record.status, 0) + 1
        return counts

    def usage_total(self, user_id: str, event_name: str, *, since: datetime) -> int:
        with self._lock:
            return sum(
                r.value
                for r in self._usage.values()
                if r.user_id == str(user_id)
                and r.event_name == event_name
                and r.timestamp >= since
                and r.status != UsageStatus.FAILED
            )

    # PurchaseLog

    @property
    def purchases(self) -> list[PurchaseRecord]:
        """Every purchase record, in the order first recorded."""
        with self._lock:
            return list(self._purchases.values())

    def lock_purchase(self, purchase_id: str) -> PurchaseRecord:
        with self._lock:
            return self._purchases.setdefault(purchase_id, PurchaseRecord(purchase_id))

    def save_purchase(self, record: PurchaseRecord) -> None:
        with self._lock:
            self._purchases[record.id] = record.in_utc()

    def get_purchase(self, purchase_id: str) -> PurchaseRecord | None:
        with self._lock:
            return self._purchases.get(purchase_id)

    def purchases_of(self, user_id: str) -> list[PurchaseRecord]:
        with self._lock:
            mine = [r for r in self._purchases.values() if r.user_id == str(user_id)]
        return sorted(mine, key=lambda r: (r.created or _EPOCH, r.id), reverse=True)

    # EventLog

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            saved = (
                copy.copy(self._accounts),
                copy.copy(self._events),
                copy.copy(self._subscriptions),
                copy.copy(self._entitlements),
                copy.copy(self._usage),
                copy.copy(self._purchases),
            )
            try:
                yield
            except BaseException:
                (
                    self._accounts,
                    self._events,
                    self._subscriptions,
                    self._entitlements,
                    self._usage,
                    self._purchases,
                ) = saved
                raise

    def record_event(self, event: StripeEvent, payload: str) -> EventRecord:
        with self._lock:
            stored = self._events.get(event.id)
            if stored is None:
                stored = EventRecord(
                    id=event.id,
                    type=event.type,
                    created=event.created,
                    customer_id=event.customer_id,
                    user_id=None,
                    status=EventStatus.RECEIVED,
                    error=None,
                    payload=payload,
                    attempts=1,
                    received_at=utcnow(),
                    processed_at=None,
                )
            else:
                customer_id = stored.customer_id or event.customer_id
                stored = replace(stored, attempts=stored.attempts + 1, customer_id=customer_id)
            self._events[event.id] = stored
            return stored

    def finish_event(
        self,
        event_id: str,
        status: str,
        *,
        user_id: str | None = None,
        error: str | None = None,
    ) -> None:
        with self._lock:
            self._events[event_id] = replace(
                self._events[event_id],
                status=status,
                user_id=user_id,
                error=error,
                processed_at=utcnow(),
            )

    def get_event(self, event_id: str) -> EventRecord | None:
        return self._events.get(event_id)

    def list_events(
        self,
        *,
        statuses: Collection[str] | None = None,
        event_type: str | None = None,
        customer_id: str | None = None,
        limit: int | None = None,
        oldest_first: bool = False,
    ) -> list[EventRecord]:
        with self._lock:
            events = [
                e
                for e in self._events.values()
                if (statuses is None or e.status in statuses)
                and (event_type is None or e.type == event_type)
                and (customer_id is None or e.customer_id == customer_id)
            ]
        if oldest_first:
            events.sort(key=lambda e: (e.created, e.received_at, e.id))
        else:
            events.sort(key=lambda e: (e.received_at, e.id), reverse=True)
        return events if limit is None else events[:limit]

    def page_events(
        self,
        *,
        statuses: Collection[str] | None = None,
        event_type: str | None = None,
        customer_id: str | None = None,
        received_since: datetime | None = None,
        received_before: datetime | None = None,
        after: EventCursor | None = None,
        limit: int,
    ) -> list[EventRecord]:
        events = self.list_events(statuses=statuses, event_type=event_type, customer_id=customer_id)
        since, before = as_utc(received_since), as_utc(received_before)
        start = None if after is None else (as_utc(after.received_at), after.id)
        return [
            e
            for e in events
            if (since is None or e.received_at >= since)
            and (before is None or e.received_at < before)
            and (start is None or (e.received_at, e.id) < start)
        ][:limit]

    def count_events(self, *, before: datetime, statuses: Collection[str]) -> int:
        with self._lock:
            return sum(
                1 for e in self._events.values() if e.received_at < before and e.status in statuses
            )

    def delete_events(self, *, before: datetime, statuses: Collection[str]) -> int:
        with self._lock:
            doomed = [
                e.id
                for e in self._events.values()
                if e.received_at < before and e.status in statuses
            ]
            for event_id in doomed:
                del self._events[event_id]
        return len(doomed)


#: Where a purchase without a known creation time sorts (last).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
