"""The event log, the subscription records, the entitlements, usage and purchases over
Flask-SQLAlchemy's session."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy
from ..._util import as_utc, utcnow
from ...core.account import SubscriptionRecord
from ...core.entitlements import EntitlementRecord
from ...core.events import StripeEvent
from ...errors import StoreUnavailableError
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
    event_record,
    new_event_row,
    subscription_record,
    subscription_values,
)
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
    mark_event,
    purchase_table,
    schema_gaps,
    subscription_table,
    usage_table,
)
from .purchases import SQLPurchaseLog
from .usage import SQLUsageLog


class SQLBillingLog(SQLUsageLog, SQLPurchaseLog):
    """``EventLog``, ``SubscriptionLog``, ``EntitlementLog``, ``UsageLog`` and ``PurchaseLog``
    in the library's own tables, on ``db.metadata``.

    Adding the tables to the host's metadata lets ``db.create_all()`` and
    Flask-Migrate/Alembic pick them up like any other table.
    """

    def __init__(
        self,
        db: SQLAlchemy,
        *,
        event_table_name: str = DEFAULT_EVENT_TABLE,
        subscription_table_name: str = DEFAULT_SUBSCRIPTION_TABLE,
        entitlement_table_name: str = DEFAULT_ENTITLEMENT_TABLE,
        usage_table_name: str = DEFAULT_USAGE_TABLE,
        purchase_table_name: str = DEFAULT_PURCHASE_TABLE,
    ) -> None:
        self.db = db
        self.events_table = event_table(db.metadata, event_table_name)
        self.subscriptions_table = subscription_table(db.metadata, subscription_table_name)
        self.entitlements_table = entitlement_table(db.metadata, entitlement_table_name)
        self.usage_table = usage_table(db.metadata, usage_table_name)
        self.purchases_table = purchase_table(db.metadata, purchase_table_name)
        events = self.events_table
        subscriptions = self.subscriptions_table
        # Statements built once, with bound parameters: one round trip each.
        self._finish = mark_event(events, "mark_")
        self._select_subscriptions = sa.select(subscriptions).where(
            subscriptions.c.user_id == sa.bindparam("user_id")
        )
        self._upserts: dict[tuple[str, str], sa.Insert] = {}

    # EventLog

    @contextmanager
    def transaction(self) -> Iterator[None]:
        session = self.db.session
        try:
            yield
            session.commit()
        except BaseException as error:
            session.rollback()
            if isinstance(error, exc.OperationalError | exc.InterfaceError) or (
                isinstance(error, exc.DBAPIError) and error.connection_invalidated
            ):
                raise StoreUnavailableError(str(error.orig)) from error
            raise

    def record_event(self, event: StripeEvent, payload: str) -> EventRecord:
        """Insert the event, or count one more attempt (and record its customer if the
        row has none yet): one statement, row locked.

        The record's ``payload`` is the one given (the same event id carries the
        same body); the stored one is kept from the first delivery.

        Two workers recording the same id at once: the database makes the second
        wait for the first to commit, then it finds the event as the first left it.
        """
        table = self.events_table
        session = self.db.session
        values = new_event_row(event, payload)
        connection = session.connection()
        upsert = self._upsert(connection.dialect, table, _count_attempt)
        if upsert is not None:
            returned = connection.execute(upsert, values).one()._mapping
            return event_record({**returned, "payload": payload})
        try:  # other databases: insert, or count the attempt on the existing row
            with session.begin_nested():
                session.execute(table.insert().values(**values))
        except exc.IntegrityError:
            session.execute(
                table.update()
                .where(table.c.id == event.id)
                .values(
                    attempts=table.c.attempts + 1,
                    customer_id=sa.func.coalesce(table.c.customer_id, values["customer_id"]),
                )
            )
        stored = session.execute(sa.select(table).where(table.c.id == event.id).with_for_update())
        return event_record(stored.one()._mapping)

    def finish_event(
        self,
        event_id: str,
        status: str,
        *,
        user_id: str | None = None,
        error: str | None = None,
    ) -> None:
        self.db.session.connection().execute(
            self._finish,
            {
                "mark_id": event_id,
                "mark_status": status,
                "mark_user_id": user_id,
                "mark_error": error,
                "mark_processed_at": utcnow(),
            },
        )

    def get_event(self, event_id: str) -> EventRecord | None:
        table = self.events_table
        row = self.db.session.execute(sa.select(table).where(table.c.id == event_id)).one_or_none()
        return None if row is None else event_record(row._mapping)

    def list_events(
        self,
        *,
        statuses: Collection[str] | None = None,
        event_type: str | None = None,
        customer_id: str | None = None,
        limit: int | None = None,
        oldest_first: bool = False,
    ) -> list[EventRecord]:
        table = self.events_table
        statement = self._select_matching(statuses, event_type, customer_id)
        if oldest_first:
            statement = statement.order_by(table.c.created, table.c.received_at, table.c.id)
        else:
            statement = statement.order_by(table.c.received_at.desc(), table.c.id.desc())
        if limit is not None:
            statement = statement.limit(limit)
        rows = self.db.session.execute(statement)
        return [event_record(row._mapping) for row in rows]

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
        table = self.events_table
        statement = self._select_matching(statuses, event_type, customer_id)
        if received_since is not None:
            statement = statement.where(table.c.received_at >= as_utc(received_since))
        if received_before is not None:
            statement = statement.where(table.c.received_at < as_utc(received_before))
        if after is not None:
            at = as_utc(after.received_at)
            statement = statement.where(
                sa.or_(
                    table.c.received_at < at,
                    sa.and_(table.c.received_at == at, table.c.id < after.id),
                )
            )
        statement = statement.order_by(table.c.received_at.desc(), table.c.id.desc()).limit(limit)
        rows = self.db.session.execute(statement)
        return [event_record(row._mapping) for row in rows]

    def _select_matching(
        self, statuses: Collection[str] | None, event_type: str | None, customer_id: str | None
    ) -> sa.Select[Any]:
        """``SELECT`` the events with one of ``statuses``, of ``event_type``, of
        ``customer_id`` (each when given)."""
        table = self.events_table
        statement = sa.select(table)
        if statuses is not None:
            statement = statement.where(table.c.status.in_(list(statuses)))
        if event_type is not None:
            statement = statement.where(table.c.type == event_type)
        if customer_id is not None:
            statement = statement.where(table.c.customer_id == customer_id)
        return statement

    def count_events(self, *, before: datetime, statuses: Collection[str]) -> int:
        table = self.events_table
        statement = (
            sa.select(sa.func.count())
            .select_from(table)
            .where(table.c.received_at < as_utc(before), table.c.status.in_(list(statuses)))
        )
        return int(self.db.session.execute(statement).scalar_one())

    def delete_events(self, *, before: datetime, statuses: Collection[str]) -> int:
        table = self.events_table
        result = self.db.session.execute(
            table.delete().where(
                table.c.received_at < as_utc(before), table.c.status.in_(list(statuses))
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    # SubscriptionLog

    def subscriptions_of(self, user_id: str) -> list[SubscriptionRecord]:
        rows = self.db.session.connection().execute(
            self._select_subscriptions, {"user_id": str(user_id)}
        )
        return [subscription_record(row._mapping) for row in rows]

    def save_subscription(self, record: SubscriptionRecord) -> None:
        table = self.subscriptions_table
        values = subscription_values(record.in_utc())
        connection = self.db.session.connection()
        upsert = self._upsert(connection.dialect, table, _replace_all_but_key, returning=False)
        if upsert is not None:
            connection.execute(upsert, values)
            return
        replaced = {name: value for name, value in values.items() if name != "id"}
        updated = connection.execute(table.update().where(table.c.id == record.id), replaced)
        if not updated.rowcount:
            connection.execute(table.insert(), values)

    # EntitlementLog

    def lock_entitlements(self, customer_id: str) -> EntitlementRecord:
        """Insert a blank record or lock the existing one, and return it: one statement
        where the database has ``INSERT … ON CONFLICT``."""
        table = self.entitlements_table
        session = self.db.session
        connection = session.connection()
        blank = entitlement_values(EntitlementRecord.blank(customer_id))
        upsert = self._upsert(connection.dialect, table, _keep_key)
        if upsert is not None:
            return entitlement_record(connection.execute(upsert, blank).one()._mapping)
        by_customer = table.c.customer_id == customer_id
        try:  # other databases: insert, or find the existing row
            with session.begin_nested():
                session.execute(table.insert().values(**blank))
        except exc.IntegrityError:
            pass
        locked = session.execute(sa.select(table).where(by_customer).with_for_update())
        return entitlement_record(locked.one()._mapping)

    def save_entitlements(self, record: EntitlementRecord) -> None:
        table = self.entitlements_table
        values = entitlement_values(record.in_utc())
        self.db.session.execute(
            table.update().where(table.c.customer_id == record.customer_id).values(**values)
        )

    def entitlements_of(self, customer_id: str) -> EntitlementRecord | None:
        table = self.entitlements_table
        row = self.db.session.execute(
            sa.select(table).where(table.c.customer_id == customer_id)
        ).one_or_none()
        return None if row is None else entitlement_record(row._mapping)

    # TableInspection

    def library_tables(self) -> dict[str, str]:
        return {
            EVENTS_TABLE: str(self.events_table.name),
            SUBSCRIPTIONS_TABLE: str(self.subscriptions_table.name),
            ENTITLEMENTS_TABLE: str(self.entitlements_table.name),
            USAGE_TABLE: str(self.usage_table.name),
            PURCHASES_TABLE: str(self.purchases_table.name),
        }

    def missing_tables(self) -> frozenset[str]:
        inspector = sa.inspect(self.db.engine)
        tables = (
            self.events_table,
            self.subscriptions_table,
            self.entitlements_table,
            self.usage_table,
            self.purchases_table,
        )
        return frozenset(
            str(table.name)
            for table in tables
            if not inspector.has_table(table.name, schema=table.schema)
        )

    def create_tables_hint(self) -> str:
        return "create it with db.create_all() or your migrations"

    # SchemaInspection

    def schema_gaps(self) -> tuple[SchemaGap, ...]:
        return self._gaps()

    def upgrade_command(self) -> str:
        return "flask db migrate, then flask db upgrade"

    def _gaps(
        self, host: Sequence[Expected] = (), fields: Mapping[str, str] | None = None
    ) -> tuple[SchemaGap, ...]:
        """What the database lacks of the library's tables (every one on ``db.metadata``
        that :meth:`library_tables` names) and of ``host``'s columns: one inspector."""
        names = self.library_tables()
        expected: list[Expected] = [
            (kind, table, list(table.c))
            for table in self.db.metadata.tables.values()
            for kind, name in names.items()
            if table.name == name
        ]
        inspector = sa.inspect(self.db.engine)

        def columns_of(table: sa.Table) -> set[str] | None:
            if not inspector.has_table(table.name, schema=table.schema):
                return None
            return {column["name"] for column in inspector.get_columns(table.name, table.schema)}

        return schema_gaps([*expected, *host], columns_of, fields=fields)

    # helpers

    def _upsert(
        self,
        dialect: sa.Dialect,
        table: sa.Table,
        assignments: Assignments,
        *,
        returning: bool = True,
    ) -> sa.Insert | None:
        """``INSERT … ON CONFLICT (primary key) DO UPDATE``, where the dialect has it (built
        once, on the first call: ``assignments`` only runs then, so nothing is built per
        request).

        For the event log the conflicting row is locked by the update, so two
        workers recording one event serialise: the second sees the event as the
        first committed it. ``assignments(table, excluded)`` gives the ``SET`` clause;
        ``excluded`` holds the new row's columns.
        """
        if dialect.name not in ("postgresql", "sqlite"):
            return None
        if returning and not dialect.insert_returning:
            return None
        key = (dialect.name, table.name)
        if key not in self._upserts:
            statement = (postgresql if dialect.name == "postgresql" else sqlite).insert(table)
            keys = [column.name for column in table.primary_key.columns]
            statement = statement.on_conflict_do_update(
                index_elements=keys, set_=assignments(table, statement.excluded)
            )
            if returning:
                # Not the payload: it is what we just sent (Stripe resends the same).
                statement = statement.returning(*(c for c in table.c if c.name != "payload"))
            self._upserts[key] = statement
        return self._upserts[key]


#: Builds an upsert's ``SET`` clause from its table and the new row's columns.
Assignments = Callable[[sa.Table, Any], Mapping[str, Any]]


def _count_attempt(table: sa.Table, excluded: Any) -> Mapping[str, Any]:
    """The event log's upsert: the stored row stays, one more attempt is counted (and the
    customer, if the row has none yet)."""
    return {
        "attempts": table.c.attempts + 1,
        "customer_id": sa.func.coalesce(table.c.customer_id, excluded.customer_id),
    }


def _replace_all_but_key(table: sa.Table, excluded: Any) -> Mapping[str, Any]:
    """The subscription table's upsert: every column but the key takes the new row's value."""
    return {column.name: excluded[column.name] for column in table.c if column.name != "id"}


def _keep_key(table: sa.Table, excluded: Any) -> Mapping[str, Any]:
    """The entitlement table's upsert: a no-op update, so the existing row is locked and
    returned."""
    return {"customer_id": excluded["customer_id"]}
