"""The event log, the subscription records, the entitlements, usage and purchases over a
DB-API connection, in plain SQL."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..._util import utcnow
from ...core.account import SubscriptionRecord
from ...core.entitlements import EntitlementRecord
from ...core.events import StripeEvent
from ..base import (
    ENTITLEMENTS_TABLE,
    EVENTS_TABLE,
    PURCHASES_TABLE,
    SUBSCRIPTIONS_TABLE,
    USAGE_TABLE,
    EventCursor,
    EventRecord,
)
from ..rows import (
    entitlement_record,
    entitlement_values,
    new_event_row,
    subscription_record,
    subscription_values,
)
from ..schema import library_tables_by_kind
from ..tables import (
    DEFAULT_ENTITLEMENT_TABLE,
    DEFAULT_EVENT_TABLE,
    DEFAULT_PURCHASE_TABLE,
    DEFAULT_SUBSCRIPTION_TABLE,
    DEFAULT_USAGE_TABLE,
    Expected,
    SchemaGap,
    entitlement_table,
    event_table,
    schema_gaps,
    subscription_table,
)
from .purchases import DBAPIPurchaseLog
from .session import Connect, Session
from .sql import from_db_time, quote, quoted_list
from .usage import DBAPIUsageLog

#: The event-log columns read back (all of them; the table definition is the SQLAlchemy store's).
EVENT_COLUMNS = tuple(column.name for column in event_table(sa.MetaData()).c)


#: The subscription table's columns.
SUBSCRIPTION_COLUMNS = tuple(column.name for column in subscription_table(sa.MetaData()).c)


#: The entitlement table's columns.
ENTITLEMENT_COLUMNS = tuple(column.name for column in entitlement_table(sa.MetaData()).c)


_EVENT_TIMES = frozenset({"created", "received_at", "processed_at"})


_SUBSCRIPTION_TIMES = frozenset(
    {"trial_end", "current_period_end", "cancel_at", "ended_at", "created", "last_event_at"}
)


class DBAPIBillingLog(DBAPIUsageLog, DBAPIPurchaseLog):
    """``EventLog``, ``SubscriptionLog``, ``EntitlementLog``, ``UsageLog`` and ``PurchaseLog``
    in the library's own tables, over a PEP 249 connection (create them with ``flask billing
    schema``)."""

    def __init__(
        self,
        connect: Connect,
        *,
        dialect: str | None = None,
        close: bool = False,
        event_table_name: str = DEFAULT_EVENT_TABLE,
        subscription_table_name: str = DEFAULT_SUBSCRIPTION_TABLE,
        entitlement_table_name: str = DEFAULT_ENTITLEMENT_TABLE,
        usage_table_name: str = DEFAULT_USAGE_TABLE,
        purchase_table_name: str = DEFAULT_PURCHASE_TABLE,
    ) -> None:
        self.session = Session(connect, dialect=dialect, close=close)
        quote(usage_table_name)
        quote(purchase_table_name)
        self.usage_table_name = usage_table_name
        self.purchase_table_name = purchase_table_name
        self.event_table_name = event_table_name
        self.subscription_table_name = subscription_table_name
        self._events = quote(event_table_name)
        #: The table's own name (no schema), by which an upsert refers to the existing row.
        self._events_name = quote(event_table_name.rsplit(".", 1)[-1])
        self._subscriptions = quote(subscription_table_name)
        self.entitlement_table_name = entitlement_table_name
        self._entitlements = quote(entitlement_table_name)
        self._entitlements_name = quote(entitlement_table_name.rsplit(".", 1)[-1])

    # EventLog

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.session.transaction():
            yield

    def record_event(self, event: StripeEvent, payload: str) -> EventRecord:
        """Insert the event, or count one more attempt (and record its customer if the row
        has none yet): one statement, its row locked.

        ``INSERT … ON CONFLICT (id) DO UPDATE``: of two workers recording one
        event at once, the second waits for the first to commit and then finds
        the event as the first left it.
        """
        values = new_event_row(event, payload)
        returned = [name for name in EVENT_COLUMNS if name != "payload"]
        mark = self.session.dialect.placeholders(len(values))
        sql = (
            f"INSERT INTO {self._events} ({quoted_list(values)}) VALUES ({mark}) "
            f'ON CONFLICT ("id") DO UPDATE SET "attempts" = {self._events_name}."attempts" + 1, '
            f'"customer_id" = COALESCE({self._events_name}."customer_id", excluded."customer_id") '
            f"RETURNING {quoted_list(returned)}"
        )
        row = self.session.execute(sql, list(values.values())).first()
        assert row is not None
        return _event_record({**dict(zip(returned, row, strict=True)), "payload": payload})

    def finish_event(
        self,
        event_id: str,
        status: str,
        *,
        user_id: str | None = None,
        error: str | None = None,
    ) -> None:
        p = self.session.dialect.placeholder
        self.session.execute(
            f'UPDATE {self._events} SET "status" = {p}, "user_id" = {p}, "error" = {p}, '
            f'"processed_at" = {p} WHERE "id" = {p}',
            [status, user_id, error, utcnow(), event_id],
        )

    def get_event(self, event_id: str) -> EventRecord | None:
        p = self.session.dialect.placeholder
        rows = self._select_events(f'"id" = {p}', [event_id], "")
        return rows[0] if rows else None

    def list_events(
        self,
        *,
        statuses: Collection[str] | None = None,
        event_type: str | None = None,
        customer_id: str | None = None,
        limit: int | None = None,
        oldest_first: bool = False,
    ) -> list[EventRecord]:
        if statuses is not None and not statuses:
            return []
        p = self.session.dialect.placeholder
        conditions, params = self._matching(statuses, event_type, customer_id)
        if oldest_first:
            order = ' ORDER BY "created", "received_at", "id"'
        else:
            order = ' ORDER BY "received_at" DESC, "id" DESC'
        if limit is not None:
            order += f" LIMIT {p}"
            params.append(limit)
        return self._select_events(" AND ".join(conditions) or "1 = 1", params, order)

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
        if statuses is not None and not statuses:
            return []
        p = self.session.dialect.placeholder
        conditions, params = self._matching(statuses, event_type, customer_id)
        if received_since is not None:
            conditions.append(f'"received_at" >= {p}')
            params.append(received_since)
        if received_before is not None:
            conditions.append(f'"received_at" < {p}')
            params.append(received_before)
        if after is not None:
            conditions.append(f'("received_at" < {p} OR ("received_at" = {p} AND "id" < {p}))')
            params.extend([after.received_at, after.received_at, after.id])
        order = f' ORDER BY "received_at" DESC, "id" DESC LIMIT {p}'
        return self._select_events(" AND ".join(conditions) or "1 = 1", [*params, limit], order)

    def delete_events(self, *, before: datetime, statuses: Collection[str]) -> int:
        if not statuses:
            return 0
        where, params = self._older(before, statuses)
        return int(
            self.session.execute(f"DELETE FROM {self._events} WHERE {where}", params).rowcount
        )

    def count_events(self, *, before: datetime, statuses: Collection[str]) -> int:
        if not statuses:
            return 0
        where, params = self._older(before, statuses)
        result = self.session.execute(f"SELECT count(*) FROM {self._events} WHERE {where}", params)
        (count,) = result.rows
        return int(count[0])

    # SubscriptionLog

    def subscriptions_of(self, user_id: str) -> list[SubscriptionRecord]:
        p = self.session.dialect.placeholder
        sql = (
            f"SELECT {quoted_list(SUBSCRIPTION_COLUMNS)} FROM {self._subscriptions} "
            f'WHERE "user_id" = {p} ORDER BY "id"'
        )
        rows = self.session.execute(sql, [str(user_id)]).rows
        return [
            _subscription_record(dict(zip(SUBSCRIPTION_COLUMNS, row, strict=True))) for row in rows
        ]

    def save_subscription(self, record: SubscriptionRecord) -> None:
        """Insert the record, or replace every field of the one with its id."""
        values = subscription_values(record.in_utc())
        replaced = ", ".join(
            f"{quote(name)} = excluded.{quote(name)}" for name in values if name != "id"
        )
        mark = self.session.dialect.placeholders(len(values))
        self.session.execute(
            f"INSERT INTO {self._subscriptions} ({quoted_list(values)}) VALUES ({mark}) "
            f'ON CONFLICT ("id") DO UPDATE SET {replaced}',
            list(values.values()),
        )

    # EntitlementLog

    def lock_entitlements(self, customer_id: str) -> EntitlementRecord:
        """Insert a blank record or lock the existing one, and return it: one statement."""
        values = entitlement_values(EntitlementRecord.blank(customer_id))
        mark = self.session.dialect.placeholders(len(values))
        kept = f'{self._entitlements_name}."customer_id"'
        sql = (
            f"INSERT INTO {self._entitlements} ({quoted_list(values)}) VALUES ({mark}) "
            f'ON CONFLICT ("customer_id") DO UPDATE SET "customer_id" = {kept} '
            f"RETURNING {quoted_list(ENTITLEMENT_COLUMNS)}"
        )
        row = self.session.execute(sql, list(values.values())).first()
        assert row is not None
        return _entitlement_record(dict(zip(ENTITLEMENT_COLUMNS, row, strict=True)))

    def save_entitlements(self, record: EntitlementRecord) -> None:
        values = entitlement_values(record.in_utc())
        p = self.session.dialect.placeholder
        assignments = ", ".join(f"{quote(name)} = {p}" for name in values)
        self.session.execute(
            f'UPDATE {self._entitlements} SET {assignments} WHERE "customer_id" = {p}',
            [*values.values(), record.customer_id],
        )

    def entitlements_of(self, customer_id: str) -> EntitlementRecord | None:
        p = self.session.dialect.placeholder
        sql = (
            f"SELECT {quoted_list(ENTITLEMENT_COLUMNS)} FROM {self._entitlements} "
            f'WHERE "customer_id" = {p}'
        )
        rows = self.session.execute(sql, [customer_id]).rows
        if not rows:
            return None
        return _entitlement_record(dict(zip(ENTITLEMENT_COLUMNS, rows[0], strict=True)))

    # TableInspection

    def library_tables(self) -> dict[str, str]:
        return {
            EVENTS_TABLE: self.event_table_name,
            SUBSCRIPTIONS_TABLE: self.subscription_table_name,
            ENTITLEMENTS_TABLE: self.entitlement_table_name,
            USAGE_TABLE: self.usage_table_name,
            PURCHASES_TABLE: self.purchase_table_name,
        }

    def missing_tables(self) -> frozenset[str]:
        with self.transaction():
            return frozenset(
                name for name in self.library_tables().values() if not self._table_exists(name)
            )

    def create_tables_hint(self) -> str:
        return "run the SQL that flask billing schema prints"

    # SchemaInspection

    def schema_gaps(self) -> tuple[SchemaGap, ...]:
        return self._gaps()

    def upgrade_command(self) -> str:
        return "flask billing schema --upgrade"

    def _gaps(
        self, host: Sequence[Expected] = (), fields: Mapping[str, str] | None = None
    ) -> tuple[SchemaGap, ...]:
        """What the database lacks of the library's tables and of ``host``'s columns, read
        in one transaction: the catalog for each table, a row-less ``SELECT *`` for its
        columns."""
        tables = library_tables_by_kind(self.library_tables())
        expected: list[Expected] = [(kind, t, list(t.c)) for kind, t in tables.items()]

        def columns_of(table: sa.Table) -> list[str] | None:
            if not self._table_exists(table.name):
                return None
            return self.session.execute(f"SELECT * FROM {quote(table.name)} WHERE 1 = 0").names

        with self.transaction():
            return schema_gaps([*expected, *host], columns_of, fields=fields)

    def _table_exists(self, name: str) -> bool:
        """From the database's catalog: ``sqlite_master``, or ``to_regclass`` elsewhere."""
        p = self.session.dialect.placeholder
        if self.session.dialect.name == "sqlite":
            sql = f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = {p}"
        else:
            sql = f"SELECT count(*) FROM (SELECT to_regclass({p}) AS t) c WHERE t IS NOT NULL"
        (row,) = self.session.execute(sql, [name]).rows
        return bool(row[0])

    # helpers

    def _select_events(self, where: str, params: Sequence[Any], order: str) -> list[EventRecord]:
        sql = f"SELECT {quoted_list(EVENT_COLUMNS)} FROM {self._events} WHERE {where}{order}"
        rows = self.session.execute(sql, params).rows
        return [_event_record(dict(zip(EVENT_COLUMNS, row, strict=True))) for row in rows]

    def _status_in(self, statuses: Collection[str]) -> str:
        return f'"status" IN ({self.session.dialect.placeholders(len(statuses))})'

    def _matching(
        self, statuses: Collection[str] | None, event_type: str | None, customer_id: str | None
    ) -> tuple[list[str], list[Any]]:
        """The conditions (and their parameters) of the events with one of ``statuses``, of
        ``event_type``, of ``customer_id`` (each when given)."""
        p = self.session.dialect.placeholder
        conditions: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            conditions.append(self._status_in(statuses))
            params.extend(statuses)
        for column, value in (("type", event_type), ("customer_id", customer_id)):
            if value is not None:
                conditions.append(f"{quote(column)} = {p}")
                params.append(value)
        return conditions, params

    def _older(self, before: datetime, statuses: Collection[str]) -> tuple[str, list[Any]]:
        """``received_at < before AND status IN (…)`` and its parameters."""
        p = self.session.dialect.placeholder
        return f'"received_at" < {p} AND {self._status_in(statuses)}', [before, *statuses]


def _event_record(row: dict[str, Any]) -> EventRecord:
    """An :class:`EventRecord` from a row of the event log, by column name."""
    times = {name: from_db_time(row[name]) for name in _EVENT_TIMES}
    return EventRecord(
        id=row["id"],
        type=row["type"],
        created=times["created"],  # type: ignore[arg-type]
        customer_id=row["customer_id"],
        user_id=row["user_id"],
        status=row["status"],
        error=row["error"],
        payload=row["payload"],
        attempts=int(row["attempts"]),
        received_at=times["received_at"],  # type: ignore[arg-type]
        processed_at=times["processed_at"],
    )


def _subscription_record(row: dict[str, Any]) -> SubscriptionRecord:
    """A :class:`SubscriptionRecord` from a row of the subscription table, by column name."""
    times = {name: from_db_time(row[name]) for name in _SUBSCRIPTION_TIMES}
    return subscription_record({**row, **times})


def _entitlement_record(row: dict[str, Any]) -> EntitlementRecord:
    """An :class:`EntitlementRecord` from a row of the entitlement table, by column name."""
    times = {name: from_db_time(row[name]) for name in ("last_event_at", "updated_at")}
    return entitlement_record({**row, **times})
