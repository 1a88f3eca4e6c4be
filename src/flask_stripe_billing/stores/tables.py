"""The library's own tables, added to the host's metadata: the event log, subscriptions,
entitlements, usage and purchases."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .base import (
    ENTITLEMENT_LOG,
    ENTITLEMENTS_TABLE,
    EVENTS_TABLE,
    FIRST_RELEASE,
    PURCHASE_LOG,
    PURCHASES_TABLE,
    SUBSCRIPTION_LOG,
    SUBSCRIPTIONS_TABLE,
    UNRELEASED,
    USAGE_LOG,
    USAGE_TABLE,
)

DEFAULT_EVENT_TABLE = "stripe_billing_events"


DEFAULT_SUBSCRIPTION_TABLE = "stripe_billing_subscriptions"


DEFAULT_ENTITLEMENT_TABLE = "stripe_billing_entitlements"


DEFAULT_USAGE_TABLE = "stripe_billing_usage"


DEFAULT_PURCHASE_TABLE = "stripe_billing_purchases"


def event_table(metadata: sa.MetaData, name: str = DEFAULT_EVENT_TABLE) -> sa.Table:
    """The event-log table in ``metadata`` (created there once, then reused)."""
    if name in metadata.tables:
        return metadata.tables[name]
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False, index=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("customer_id", sa.String(255), index=True),
        sa.Column("user_id", sa.String(255)),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("error", sa.Text),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, default=1),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
    )


def subscription_table(metadata: sa.MetaData, name: str = DEFAULT_SUBSCRIPTION_TABLE) -> sa.Table:
    """The subscription table in ``metadata``: one row per Stripe subscription."""
    if name in metadata.tables:
        return metadata.tables[name]
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False, index=True),
        sa.Column("customer_id", sa.String(255), index=True),
        sa.Column("status", sa.String(50), nullable=False),
        # Space-separated price ids (Stripe ids have no spaces).
        sa.Column("price_ids", sa.Text, nullable=False, default=""),
        sa.Column("plan", sa.String(50), nullable=False),
        sa.Column("quantity", sa.Integer),
        sa.Column("trial_end", sa.DateTime(timezone=True)),
        sa.Column("current_period_end", sa.DateTime(timezone=True)),
        sa.Column("cancel_at_period_end", sa.Boolean, nullable=False, default=False),
        sa.Column("cancel_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("created", sa.DateTime(timezone=True)),
        sa.Column("last_event_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        # The change held until its payment goes through: JSON text of its price ids,
        # quantity and expires_at (Unix time); NULL when there is none.
        sa.Column("pending_update", sa.Text),
    )


def entitlement_table(metadata: sa.MetaData, name: str = DEFAULT_ENTITLEMENT_TABLE) -> sa.Table:
    """The entitlement table in ``metadata``: one row per Stripe customer, its active features."""
    if name in metadata.tables:
        return metadata.tables[name]
    return sa.Table(
        name,
        metadata,
        sa.Column("customer_id", sa.String(255), primary_key=True),
        # A JSON list of lookup keys, sorted.
        sa.Column("features", sa.Text, nullable=False, default="[]"),
        sa.Column("last_event_at", sa.DateTime(timezone=True)),
        sa.Column("last_event_id", sa.String(255)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def usage_table(metadata: sa.MetaData, name: str = DEFAULT_USAGE_TABLE) -> sa.Table:
    """The usage table in ``metadata``: one row per reported meter event, keyed by its
    Stripe ``identifier`` (a second report with the same one is a no-op)."""
    if name in metadata.tables:
        return metadata.tables[name]
    short = name.rsplit(".", 1)[-1]
    return sa.Table(
        name,
        metadata,
        sa.Column("identifier", sa.String(100), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255)),
        sa.Column("event_name", sa.String(100), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        # The sender's claim: pending rows by when they are due; quotas: by account and
        # meter; the operations page: an account's rows, newest reported first.
        sa.Index(f"ix_{short}_due", "status", "next_attempt_at"),
        sa.Index(f"ix_{short}_account", "user_id", "event_name", "timestamp"),
        sa.Index(f"ix_{short}_reported", "user_id", "reported_at"),
    )


def purchase_table(metadata: sa.MetaData, name: str = DEFAULT_PURCHASE_TABLE) -> sa.Table:
    """The purchase table in ``metadata``: one row per one-time payment, keyed by its
    payment intent (a session that charged nothing: the session)."""
    if name in metadata.tables:
        return metadata.tables[name]
    short = name.rsplit(".", 1)[-1]
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255)),
        sa.Column("customer_id", sa.String(255)),
        sa.Column("product", sa.String(100)),
        sa.Column("quantity", sa.Integer),
        sa.Column("amount", sa.BigInteger),
        sa.Column("currency", sa.String(10)),
        sa.Column("payment_intent_id", sa.String(255)),
        sa.Column("checkout_session_id", sa.String(255)),
        sa.Column("charge_id", sa.String(255)),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("payment_status", sa.String(20)),
        sa.Column("amount_refunded", sa.BigInteger, nullable=False, default=0),
        # Each refund heard of: a JSON list of {id, amount, status, at (Unix time)}.
        sa.Column("refunds", sa.Text, nullable=False, default="[]"),
        sa.Column("charge_amount_refunded", sa.BigInteger),
        sa.Column("charge_event_at", sa.DateTime(timezone=True)),
        sa.Column("dispute_id", sa.String(255)),
        sa.Column("dispute_status", sa.String(30)),
        sa.Column("dispute_event_at", sa.DateTime(timezone=True)),
        sa.Column("created", sa.DateTime(timezone=True)),
        sa.Column("last_event_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        # An account's purchases, newest first (has_purchased, the ops page).
        sa.Index(f"ix_{short}_account", "user_id", "created"),
    )


def mark_event(events: sa.Table, prefix: str) -> sa.Update:
    """``UPDATE events SET status, user_id, error, processed_at WHERE id``, its bound
    parameters named ``<prefix>id``, ``<prefix>status``, …: how an event's processing ends."""
    return (
        events.update()
        .where(events.c.id == sa.bindparam(f"{prefix}id"))
        .values(
            status=sa.bindparam(f"{prefix}status"),
            user_id=sa.bindparam(f"{prefix}user_id"),
            error=sa.bindparam(f"{prefix}error"),
            processed_at=sa.bindparam(f"{prefix}processed_at"),
        )
    )


#: The host's users table, as a :class:`SchemaGap` names its kind.
USERS = "users"


#: The release that added each library table (column None), and each column added to a
#: table after it (for the host's table: by BillingAccount field). The one record of it:
#: the start-up inspection, ``flask billing check`` and ``schema --upgrade`` read it.
ADDED_IN: dict[tuple[str, str | None], str] = {
    (EVENTS_TABLE, None): FIRST_RELEASE,
    (SUBSCRIPTIONS_TABLE, None): SUBSCRIPTION_LOG.added,
    (ENTITLEMENTS_TABLE, None): ENTITLEMENT_LOG.added,
    (USAGE_TABLE, None): USAGE_LOG.added,
    (PURCHASES_TABLE, None): PURCHASE_LOG.added,
    (USERS, None): FIRST_RELEASE,
    (USERS, "trial_end"): f'{UNRELEASED}, "Upgrading from 0.1"',
    (USERS, "subscription_quantity"): f'{UNRELEASED}, "Upgrading from 0.1"',
}


def added_in(kind: str, column: str | None = None) -> str:
    """The release that added the table ``kind`` (or its ``column``): as :data:`ADDED_IN`
    says; a column not listed is as old as its table, a table not listed is unreleased."""
    if (kind, column) in ADDED_IN:
        return ADDED_IN[kind, column]
    if column is not None:
        return added_in(kind)
    return UNRELEASED


@dataclass(frozen=True)
class SchemaGap:
    """A table, or a column of one, that this release needs and the database lacks."""

    #: The library table's kind (``"subscriptions"``) or :data:`USERS`.
    kind: str
    #: The table as this release defines it, under its name in the database.
    table: sa.Table
    #: The missing column; None: the whole table is missing.
    column: sa.Column[Any] | None
    #: The release that added it (:func:`added_in`).
    added: str

    @property
    def name(self) -> str:
        """``table`` or ``table.column``, as an error names it."""
        if self.column is None:
            return str(self.table.name)
        return f"{self.table.name}.{self.column.name}"

    def describe(self) -> str:
        """``column users.trial_end (added in …)``."""
        what = "table" if self.column is None else "column"
        return f"{what} {self.name} (added in {self.added})"


#: One table to inspect: its kind, the table as this release defines it, and the columns
#: to look for (all of a library table's; the billing columns of the host's).
Expected = tuple[str, sa.Table, Sequence[sa.Column[Any]]]


def schema_gaps(
    expected: Sequence[Expected],
    columns_of: Callable[[sa.Table], Collection[str] | None],
    *,
    fields: Mapping[str, str] | None = None,
) -> tuple[SchemaGap, ...]:
    """What the database lacks of ``expected``: each table ``columns_of`` finds no columns
    of (None: it does not exist), else each column it lacks. ``fields`` names a host
    column's BillingAccount field, by which :data:`ADDED_IN` knows it."""
    gaps: list[SchemaGap] = []
    for kind, table, columns in expected:
        present = columns_of(table)
        if present is None:
            gaps.append(SchemaGap(kind, table, None, added_in(kind)))
            continue
        for column in columns:
            if column.name not in present:
                key = (fields or {}).get(column.name, column.name)
                gaps.append(SchemaGap(kind, table, column, added_in(kind, key)))
    return tuple(gaps)
