"""The store contract: what the host provides (``UserStore``), what the library's logs
provide (``EventLog``, ``SubscriptionLog``), the optional capabilities, and the one check
that names what a store lacks.

A custom store implements the protocols below; ``check_store`` runs once, when the
extension is set up on an app, and raises :class:`~flask_stripe_billing.StoreContractError`
naming each missing method or protocol with the release that added it and the
upgrade step (CHANGELOG.md, "Upgrading a custom store").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from ..core.account import AccountChanges, BillingAccount, SubscriptionRecord
from ..core.entitlements import EntitlementRecord
from ..core.events import StripeEvent
from ..core.outcomes import RETRYABLE_STATUSES
from ..core.purchases import PurchaseRecord
from ..core.usage import UsageRecord
from ..errors import StoreContractError

if TYPE_CHECKING:
    from .tables import SchemaGap


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
        """Store the event if new (else count one more attempt, and take the event's
        customer if the row has none: a thin notification's is known after its fetch),
        lock its row, and return it as stored."""

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


# Optional capabilities: a store without one works; the feature that needs it says so.


@runtime_checkable
class AccountListing(Protocol):
    """Optional, on the account store: every account linked to a Stripe customer.

    ``flask billing sync --all --features`` needs it; without it that command
    says the store cannot list its accounts.
    """

    def accounts_with_customer(self) -> list[BillingAccount]:
        """Every account with a Stripe customer, by user id."""


@dataclass(frozen=True)
class EventCursor:
    """Where a page of the event log ended: the last event's receipt time and id (the
    log's order, newest received first), so the next page starts after it (keyset
    paging: no OFFSET, and events received meanwhile never shift a page)."""

    received_at: datetime
    id: str


@runtime_checkable
class EventPaging(Protocol):
    """Optional, on the event log: pages of the log for the operations page.

    Without it the page shows the newest events only and says paging is unavailable.
    """

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
        """At most ``limit`` events matching every filter given, newest received first
        (ties by id, descending), each strictly after ``after`` in that order;
        ``received_since`` inclusive, ``received_before`` exclusive."""


@runtime_checkable
class UsageLog(Protocol):
    """Optional: the library's own table of reported usage, one row per meter event.

    ``billing.report_usage`` and the usage sender need it; without it they say the store
    keeps no usage. It shares the event log's transaction (and, for the SQLAlchemy store,
    the host's ``db.session``), so a report commits or rolls back with the host's work.
    """

    def add_usage(self, record: UsageRecord) -> bool:
        """Insert the row in the transaction in progress; False (and nothing written) when
        a row with its identifier exists: never an error that would end the transaction."""

    def claim_usage(self, *, limit: int, now: datetime) -> list[UsageRecord]:
        """Up to ``limit`` pending rows due by ``now``, oldest due first, row-locked for the
        transaction and skipping rows another transaction holds (``FOR UPDATE SKIP
        LOCKED``; a database without it serialises the transactions instead)."""

    def save_usage(self, records: Sequence[UsageRecord]) -> None:
        """Write each row's progress (customer, status, attempts, times, error)."""

    def list_usage(
        self,
        *,
        statuses: Collection[str] | None = None,
        user_id: str | None = None,
        limit: int | None = None,
    ) -> list[UsageRecord]:
        """Rows with one of ``statuses`` (None: any) and of the account ``user_id`` (None:
        every account's), newest reported first, at most ``limit`` (None: all): the
        operations page lists an account's newest rows this way."""

    def count_usage(self) -> dict[str, int]:
        """How many rows each status has (statuses without rows left out)."""

    def usage_total(self, user_id: str, event_name: str, *, since: datetime) -> int:
        """The sum of the values of an account's rows of ``event_name`` that happened at or
        after ``since``, failed rows left out (Stripe bills none of them)."""


@runtime_checkable
class PurchaseLog(Protocol):
    """Optional: the library's own table of one-time purchases, one row per payment.

    Without it refunds and disputes are recorded ``ignored`` and payment-mode Checkout
    sessions make no purchase (``has_purchased`` is False). It shares the event log's
    transaction; the pipeline locks a purchase after the account, as every writer does.
    """

    def lock_purchase(self, purchase_id: str) -> PurchaseRecord:
        """The purchase, row-locked for the transaction; a blank one (no account, no
        parts) is created first when there is none, so that two first events of one
        payment serialise."""

    def save_purchase(self, record: PurchaseRecord) -> None:
        """Write the record over its row (locked by :meth:`lock_purchase`)."""

    def get_purchase(self, purchase_id: str) -> PurchaseRecord | None:
        """The purchase, or None (no lock)."""

    def purchases_of(self, user_id: str) -> list[PurchaseRecord]:
        """Every purchase of this account, newest first (by ``created``, then id)."""


#: What each of the library's tables holds, as :meth:`TableInspection.library_tables` names it.
EVENTS_TABLE = "events"
SUBSCRIPTIONS_TABLE = "subscriptions"
ENTITLEMENTS_TABLE = "entitlements"
USAGE_TABLE = "usage"
PURCHASES_TABLE = "purchases"


@runtime_checkable
class TableInspection(Protocol):
    """Optional, on a log over a database: which of the library's tables exist.

    ``flask billing check`` uses it to name a table an upgrade has not created
    yet; a log without it is checked by reading from it.
    """

    def library_tables(self) -> dict[str, str]:
        """Each library table the log keeps: ``"events"``, ``"subscriptions"``,
        ``"entitlements"``, ``"usage"``, ``"purchases"`` → its name in the database."""

    def missing_tables(self) -> frozenset[str]:
        """The names, among :meth:`library_tables`, that the database lacks; raises when
        the database cannot be asked."""

    def create_tables_hint(self) -> str:
        """How the host creates a missing table, in a few words for ``flask billing check``."""


@runtime_checkable
class SchemaInspection(TableInspection, Protocol):
    """Optional, beyond :class:`TableInspection`: each table and column of this release the
    database lacks (the library's tables and the host's billing columns), and the command
    that adds them.

    The extension asks it once at start-up and, while something is missing, logs it once
    and answers the webhooks 503 (Stripe retries: nothing is lost); a store without it is
    not inspected.
    """

    def schema_gaps(self) -> tuple[SchemaGap, ...]:
        """What the database lacks, table by table; raises when the database cannot be
        asked."""

    def upgrade_command(self) -> str:
        """The command that adds what is missing: ``flask db migrate`` or ``flask billing
        schema --upgrade``."""


# The contract, checked once per app


#: Where a store's upgrade steps are (the anchor of CHANGELOG.md's section).
UPGRADE_NOTES = "CHANGELOG.md#upgrading-a-custom-store"


@dataclass(frozen=True)
class ContractPart:
    """One protocol of the store contract, with the release that added it."""

    protocol: type[Any]
    #: What it keeps, as an error names it: ``"event log"``.
    keeps: str
    #: The ``StripeBilling`` option that passes it (None: it cannot be passed on its own).
    option: str | None
    #: The release (CHANGELOG.md's words) that added the protocol.
    added: str
    #: The step of CHANGELOG.md's "Upgrading a custom store" that adds it.
    step: int
    #: Methods added after the protocol: name → (release, upgrade step).
    later: Mapping[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def methods(self) -> tuple[str, ...]:
        """The protocol's methods, in the order it declares them."""
        return tuple(
            name
            for name, value in vars(self.protocol).items()
            if callable(value) and not name.startswith("_")
        )

    def lacking(self, candidate: object) -> tuple[str, ...]:
        """The methods ``candidate`` does not have."""
        return tuple(name for name in self.methods if not callable(getattr(candidate, name, None)))

    def since(self, method: str) -> tuple[str, int]:
        """The release that added ``method``, and the upgrade step that adds it."""
        return self.later.get(method, (self.added, self.step))


#: The first release, as CHANGELOG.md names it.
FIRST_RELEASE = "0.1.0"


#: Added after 0.1.0, in CHANGELOG.md's "Unreleased" section (the next release).
UNRELEASED = "Unreleased (after 0.1.0)"


#: What the host provides: its users' billing state.
ACCOUNT_STORE = ContractPart(UserStore, "account store", "user_store", FIRST_RELEASE, 1)


#: What the library's logs provide (the shipped stores keep them in the library's tables).
EVENT_LOG = ContractPart(
    EventLog,
    "event log",
    "event_log",
    FIRST_RELEASE,
    1,
    later={"count_events": (f'{UNRELEASED}, "Retention that ends"', 3)},
)
SUBSCRIPTION_LOG = ContractPart(
    SubscriptionLog,
    "subscription records",
    "subscription_log",
    f'{UNRELEASED}, "Each Stripe subscription is its own record"',
    2,
)


#: Optional: without it entitlement summaries are recorded ``ignored``.
ENTITLEMENT_LOG = ContractPart(
    EntitlementLog,
    "entitlements",
    None,
    f'{UNRELEASED}, "Stripe Entitlements"',
    4,
)


#: Optional: without it ``report_usage`` and the usage sender refuse, naming it.
USAGE_LOG = ContractPart(
    UsageLog,
    "usage",
    None,
    f'{UNRELEASED}, "Usage-based billing"',
    5,
)


#: Optional: without it refunds and disputes are ignored and no purchase is recorded.
PURCHASE_LOG = ContractPart(
    PurchaseLog,
    "purchases",
    None,
    f'{UNRELEASED}, "One-time purchases"',
    6,
)


@dataclass(frozen=True)
class StoreParts:
    """The parts of the contract one app's extension uses, checked."""

    user_store: UserStore
    event_log: EventLog
    subscription_log: SubscriptionLog
    #: None: the stores keep no entitlements, so summaries are recorded ``ignored``.
    entitlement_log: EntitlementLog | None
    #: The pipeline's reads and writes of one event (the store's own when it keeps all).
    steps: PipelineSteps
    #: None: the stores keep no usage, so reporting usage is refused.
    usage_log: UsageLog | None = None
    #: None: the stores keep no purchases.
    purchase_log: PurchaseLog | None = None


def check_store(
    user_store: object,
    *,
    event_log: object | None = None,
    subscription_log: object | None = None,
) -> StoreParts:
    """The store's parts, or one :class:`StoreContractError` naming everything missing.

    The event log is ``event_log`` or the account store itself; the subscription
    log ``subscription_log`` or the first of those two keeping subscription records;
    entitlements and usage each the first of the three that keeps them (optional, but one
    kept in part is an error: a method is missing).
    """
    if user_store is None:
        raise StoreContractError("StripeBilling needs a user_store", ("UserStore",))
    store_name = type(user_store).__name__
    log = event_log if event_log is not None else user_store
    subscriptions = subscription_log
    if subscriptions is None:
        subscriptions = _best_candidate(SUBSCRIPTION_LOG, (user_store, log))
    entitlements = _best_candidate(ENTITLEMENT_LOG, (user_store, log, subscriptions))
    problems = [
        *_problems(ACCOUNT_STORE, user_store, given=True),
        *_problems(EVENT_LOG, log, given=event_log is not None),
        *_problems(SUBSCRIPTION_LOG, subscriptions, given=subscription_log is not None),
    ]
    if ENTITLEMENT_LOG.lacking(entitlements) != ENTITLEMENT_LOG.methods:
        problems += _problems(ENTITLEMENT_LOG, entitlements, given=True)
    usage = _best_candidate(USAGE_LOG, (user_store, log, subscriptions))
    if USAGE_LOG.lacking(usage) != USAGE_LOG.methods:
        problems += _problems(USAGE_LOG, usage, given=True)
    purchases = _best_candidate(PURCHASE_LOG, (user_store, log, subscriptions))
    if PURCHASE_LOG.lacking(purchases) != PURCHASE_LOG.methods:
        problems += _problems(PURCHASE_LOG, purchases, given=True)
    if problems:
        lines = "\n".join(f"- {line}" for _, line in problems)
        raise StoreContractError(
            f"{store_name} does not keep the whole store contract of flask-stripe-billing "
            f"(see {UPGRADE_NOTES} and docs/custom-store.md):\n{lines}",
            tuple(name for name, _ in problems),
        )
    users = cast(UserStore, user_store)  # each cast: checked above
    events = cast(EventLog, log)
    records = cast(SubscriptionLog, subscriptions)
    kept = not ENTITLEMENT_LOG.lacking(entitlements)
    return StoreParts(
        user_store=users,
        event_log=events,
        subscription_log=records,
        entitlement_log=cast(EntitlementLog, entitlements) if kept else None,
        steps=_steps(users, events, records),
        usage_log=None if USAGE_LOG.lacking(usage) else cast(UsageLog, usage),
        purchase_log=None if PURCHASE_LOG.lacking(purchases) else cast(PurchaseLog, purchases),
    )


def _best_candidate(part: ContractPart, candidates: Sequence[object]) -> object:
    """The first candidate with every method of ``part``, else the one with the most
    (the first on a tie): the one an error then talks about."""
    return min(candidates, key=lambda candidate: len(part.lacking(candidate)))


def _problems(part: ContractPart, candidate: object, *, given: bool) -> list[tuple[str, str]]:
    """What ``candidate`` lacks of ``part``: (name, one line saying since when and the step)."""
    lacking = part.lacking(candidate)
    protocol = part.protocol.__name__
    name = type(candidate).__name__
    if not lacking:
        return []
    if lacking == part.methods and not given and part.option is not None:
        added, step = part.since(lacking[0])
        return [
            (
                protocol,
                f"{name} keeps no {part.keeps}; pass {part.option}=... or add "
                f"{protocol}'s methods {', '.join(lacking)} ({protocol} added in {added}; "
                f"upgrade step {step} in {UPGRADE_NOTES})",
            )
        ]
    problems = []
    for method in lacking:
        added, step = part.since(method)
        problems.append(
            (
                f"{protocol}.{method}",
                f"{name} lacks {protocol}.{method} (added in {added}; "
                f"upgrade step {step} in {UPGRADE_NOTES})",
            )
        )
    return problems


def _steps(store: UserStore, log: EventLog, subscriptions: SubscriptionLog) -> PipelineSteps:
    """The store's own steps when it keeps all three; else one call per step."""
    parts: tuple[object, ...] = (log, subscriptions)
    if isinstance(store, PipelineSteps) and all(part is store for part in parts):
        return store
    return SeparateSteps(store, log, subscriptions)
