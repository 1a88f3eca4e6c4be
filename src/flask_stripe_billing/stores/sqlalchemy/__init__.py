"""A store over the host's Flask-SQLAlchemy user model, plus the library's own tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy
from ..._util import as_utc, utcnow
from ...core.account import FREE_PLAN, AccountChanges, BillingAccount, SubscriptionRecord
from ...core.events import StripeEvent
from ..base import EventRecord, SeparateSteps
from ..columns import resolve_columns
from ..rows import event_record, new_event_row, subscription_values
from ..tables import (
    DEFAULT_ENTITLEMENT_TABLE,
    DEFAULT_EVENT_TABLE,
    DEFAULT_PURCHASE_TABLE,
    DEFAULT_SUBSCRIPTION_TABLE,
    DEFAULT_USAGE_TABLE,
    USERS,
    SchemaGap,
)
from .log import SQLBillingLog
from .postgres import PostgresSteps


#: BillingAccount field → model attribute, as BillingMixin names them.
class SQLAlchemyUserStore(SQLBillingLog):
    """``UserStore`` over a Flask-SQLAlchemy model, plus the event log and subscriptions.

    ``columns`` maps BillingAccount field names to the model's attribute names
    where they differ from :class:`BillingMixin`'s; map a field to ``None`` when
    the model has no such column. ``user_id`` defaults to the primary key.
    """

    def __init__(
        self,
        db: SQLAlchemy,
        model: type[Any],
        *,
        columns: Mapping[str, str | None] | None = None,
        event_table_name: str = DEFAULT_EVENT_TABLE,
        subscription_table_name: str = DEFAULT_SUBSCRIPTION_TABLE,
        entitlement_table_name: str = DEFAULT_ENTITLEMENT_TABLE,
        usage_table_name: str = DEFAULT_USAGE_TABLE,
        purchase_table_name: str = DEFAULT_PURCHASE_TABLE,
    ) -> None:
        super().__init__(
            db,
            event_table_name=event_table_name,
            subscription_table_name=subscription_table_name,
            entitlement_table_name=entitlement_table_name,
            usage_table_name=usage_table_name,
            purchase_table_name=purchase_table_name,
        )
        self.model = model
        resolved = resolve_columns(model, columns or {})
        self._key_attr: str = resolved.pop("user_id") or ""
        self.columns = resolved
        mapper = sa.inspect(model)
        key_column = mapper.get_property(self._key_attr).columns[0]
        self._key_type: type[Any] = key_column.type.python_type
        # The hot path runs Core statements built here once, with bound parameters:
        # one round trip each, and no statement to build or cache-key per request.
        self._table: sa.Table = key_column.table
        #: BillingAccount field → the table column holding it (every mapped one; the
        #: statements in ``_reads`` use those the database has).
        self._field_columns: dict[str, sa.Column[Any]] = {"user_id": key_column} | {
            field: mapper.get_property(attribute).columns[0]
            for field, attribute in self.columns.items()
            if attribute is not None
        }
        # Integer ids compare as 64-bit (an int4 column would overflow otherwise).
        key_type = sa.BigInteger() if issubclass(self._key_type, int) else key_column.type
        self._by_user = key_column == sa.bindparam("user_key", type_=key_type)
        self._reads = self._account_reads(self._field_columns)
        self._separate_steps = SeparateSteps(self, self, self)
        self._postgres_steps = PostgresSteps(
            events=self.events_table,
            subscriptions=self.subscriptions_table,
            users=self._table,
            account_columns=self._reads.labelled,
            by_user=self._by_user,
            customer_column=self._field_columns["stripe_customer_id"],
            field_columns=self._field_columns,
        )

    # PipelineSteps: one statement each on PostgreSQL, the separate calls elsewhere

    def record_and_lock(
        self, event: StripeEvent, payload: str, *, lock: bool = True
    ) -> tuple[EventRecord, BillingAccount | None]:
        connection = self.db.session.connection()
        if connection.dialect.name != "postgresql":
            return self._separate_steps.record_and_lock(event, payload, lock=lock)
        values = new_event_row(event, payload)
        recorded, locked = self._postgres_steps.record_and_lock(
            connection, values, event.customer_id if lock else None
        )
        account = None if locked is None else _account(locked)
        recorded["payload"] = payload  # not returned: it is the one just sent
        return event_record(recorded), account

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
        connection = self.db.session.connection()
        if connection.dialect.name != "postgresql":
            return self._separate_steps.write_outcome(
                event_id=event_id,
                status=status,
                account=account,
                changes=changes,
                records=records,
                error=error,
            )
        values = {
            field: self._storable(field, value)
            for field, value in changes.items()
            if field in self._field_columns
        }
        key = None if account is None else self._user_key(account.user_id)
        if key is None:
            values = {}
        mark = None
        if event_id is not None:
            mark = {
                "id": event_id,
                "status": status,
                "user_id": account.user_id if account is not None else None,
                "error": error,
                "processed_at": utcnow(),
            }
        row = self._postgres_steps.write_outcome(
            connection,
            records=[subscription_values(record.in_utc()) for record in records],
            account_key=key,
            account_values=values,
            mark=mark,
        )
        return account if row is None else _account(row)

    # UserStore

    def get(self, user_id: str, *, lock: bool = False) -> BillingAccount | None:
        key = self._user_key(user_id)
        if key is None:
            return None
        return self._fetch(self._reads.select_user[lock], {"user_key": key})

    def get_by_customer_id(self, customer_id: str, *, lock: bool = False) -> BillingAccount | None:
        return self._fetch(self._reads.select_customer[lock], {"customer_id": customer_id})

    def set_customer_id(self, user_id: str, customer_id: str) -> BillingAccount:
        account = self.apply(user_id, {"stripe_customer_id": customer_id})
        self.db.session.commit()
        return account

    def apply(self, user_id: str, changes: AccountChanges) -> BillingAccount:
        key = self._user_key(user_id)
        reads = self._reads
        values = {
            field: self._storable(field, value)
            for field, value in changes.items()
            if field in reads.columns
        }
        account = None
        if key is not None and values:
            connection = self.db.session.connection()
            returning = connection.dialect.update_returning
            statement = reads.update(frozenset(values), returning)
            params = {"user_key": key} | {f"new_{field}": value for field, value in values.items()}
            result = connection.execute(statement, params)
            row = result.first() if returning else None
            account = None if row is None else _account(row._mapping)
        if account is None and key is not None:
            account = self._fetch(reads.select_user[False], {"user_key": key})
        if account is None:
            raise LookupError(f"no user {user_id!r}")
        return account

    def accounts_with_customer(self) -> list[BillingAccount]:
        """Every account linked to a Stripe customer, by user id (for ``flask billing sync``)."""
        customer = self._field_columns["stripe_customer_id"]
        statement = (
            sa.select(*self._reads.labelled)
            .where(customer.is_not(None))
            .order_by(self._field_columns["user_id"])
        )
        return [_account(row._mapping) for row in self.db.session.execute(statement)]

    # SchemaInspection: the library's tables and the model's billing columns

    def schema_gaps(self) -> tuple[SchemaGap, ...]:
        """The gaps, as :class:`SchemaInspection` says; the account is read and written
        without the host's missing columns from now on (None, the fields' defaults), until
        an inspection finds them: the host's pages keep working before its migration."""
        billing = {f: c for f, c in self._field_columns.items() if f != "user_id"}
        host = [(USERS, self._table, list(billing.values()))]
        gaps = self._gaps(host, fields={column.name: f for f, column in billing.items()})
        missing = {gap.column.name for gap in gaps if gap.kind == USERS and gap.column is not None}
        present = {
            field: column
            for field, column in self._field_columns.items()
            if column.name not in missing
        }
        if present.keys() != self._reads.columns.keys():
            self._reads = self._account_reads(present)
        return gaps

    # helpers

    def _user_key(self, user_id: str) -> Any:
        """The primary-key value for this user id, or None when it can name no user.

        An id from a webhook (client_reference_id can come from a Payment Link URL)
        may not fit the column: it names no user, and must not make the database
        raise.
        """
        try:
            key = self._key_type(user_id)
        except (TypeError, ValueError):
            return None
        if isinstance(key, int) and not -(2**63) <= key < 2**63:
            return None
        return key

    def _storable(self, field: str, value: Any) -> Any:
        """A value as its column stores it; datetimes in UTC.

        Aware for ``DateTime(timezone=True)``; naive UTC for a column without a
        zone (an existing ``updated_at``, say), which PostgreSQL would otherwise
        shift into the session's time zone. SQLite drops the offset either way.
        """
        if not isinstance(value, datetime):
            return value
        utc = as_utc(value)
        timezone_aware = getattr(self._field_columns[field].type, "timezone", True)
        return utc if timezone_aware or utc is None else utc.replace(tzinfo=None)

    def _fetch(self, statement: sa.Select[Any], params: dict[str, Any]) -> BillingAccount | None:
        row = self.db.session.connection().execute(statement, params).first()
        return None if row is None else _account(row._mapping)

    def _account_reads(self, columns: Mapping[str, sa.Column[Any]]) -> _AccountReads:
        """The statements that read and write the account over ``columns``."""
        labelled = [column.label(field) for field, column in columns.items()]
        select = sa.select(*labelled)
        by_customer = columns["stripe_customer_id"] == sa.bindparam("customer_id")
        return _AccountReads(
            table=self._table,
            by_user=self._by_user,
            columns=dict(columns),
            labelled=labelled,
            select_user=_with_lock_variants(select.where(self._by_user)),
            select_customer=_with_lock_variants(select.where(by_customer)),
        )


@dataclasses.dataclass
class _AccountReads:
    """The account's statements over the users table's columns (all the mapped ones, or
    those a lagging database has): swapped whole, so a request never mixes two sets."""

    table: sa.Table
    by_user: sa.ColumnElement[bool]
    #: BillingAccount field → the table column holding it.
    columns: dict[str, sa.Column[Any]]
    labelled: list[sa.Label[Any]]
    select_user: dict[bool, sa.Select[Any]]
    select_customer: dict[bool, sa.Select[Any]]
    updates: dict[tuple[frozenset[str], bool], sa.Update] = dataclasses.field(default_factory=dict)

    def update(self, fields: frozenset[str], returning: bool) -> sa.Update:
        """``UPDATE users SET <fields> WHERE key = :user_key`` (built once per field set)."""
        cache_key = (fields, returning)
        if cache_key not in self.updates:
            statement = (
                sa.update(self.table)
                .where(self.by_user)
                .values({self.columns[f]: sa.bindparam(f"new_{f}") for f in fields})
            )
            if returning:
                statement = statement.returning(*self.labelled)
            self.updates[cache_key] = statement
        return self.updates[cache_key]


def _with_lock_variants(statement: sa.Select[Any]) -> dict[bool, sa.Select[Any]]:
    """The statement as is (False) and ``FOR UPDATE`` (True; ignored by SQLite)."""
    return {False: statement, True: statement.with_for_update()}


def _account(row: Mapping[str, Any] | RowMapping) -> BillingAccount:
    """A BillingAccount from a row labelled with its field names (absent: defaults)."""
    email = row.get("email")
    return BillingAccount(
        user_id=str(row["user_id"]),
        email=None if email is None else str(email),
        stripe_customer_id=row.get("stripe_customer_id"),
        stripe_subscription_id=row.get("stripe_subscription_id"),
        plan=row.get("plan") or FREE_PLAN,
        subscription_status=row.get("subscription_status"),
        current_period_end=as_utc(row.get("current_period_end")),
        cancel_at_period_end=bool(row.get("cancel_at_period_end", False)),
        updated_at=as_utc(row.get("updated_at")),
        trial_end=as_utc(row.get("trial_end")),
        subscription_quantity=row.get("subscription_quantity"),
    )
