"""The usage table over Flask-SQLAlchemy's session: reports join the host's transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy
from ..._util import as_utc
from ...core.usage import UsageRecord, UsageStatus
from ..rows import USAGE_PROGRESS, usage_record, usage_values


class SQLUsageLog:
    """``UsageLog`` in the library's usage table, on ``db.session`` (the host's own).

    A report is one ``INSERT … ON CONFLICT DO NOTHING`` in the session's transaction:
    a repeated identifier writes nothing and never ends the host's transaction.
    """

    db: SQLAlchemy
    usage_table: sa.Table

    def add_usage(self, record: UsageRecord) -> bool:
        connection = self.db.session.connection()
        statement = self._usage_insert(connection.dialect)
        values = usage_values(record.in_utc())
        if statement is None:  # other databases: look first (in the same transaction)
            table = self.usage_table
            exists = sa.select(table.c.identifier).where(table.c.identifier == record.identifier)
            if connection.execute(exists).first() is not None:
                return False
            connection.execute(table.insert(), values)
            return True
        if connection.dialect.insert_returning:  # psycopg's rowcount here is -1
            return connection.execute(statement, values).first() is not None
        return bool(connection.execute(statement, values).rowcount)

    def _usage_insert(self, dialect: sa.Dialect) -> sa.Insert | None:
        """``INSERT … ON CONFLICT (identifier) DO NOTHING [RETURNING identifier]`` for the
        dialect, built once (a report is on the host's request path)."""
        if dialect.name not in ("postgresql", "sqlite"):
            return None
        cache: dict[str, sa.Insert] = self.__dict__.setdefault("_usage_inserts", {})
        if dialect.name not in cache:
            table = self.usage_table
            insert = (postgresql if dialect.name == "postgresql" else sqlite).insert(table)
            statement = insert.on_conflict_do_nothing(index_elements=["identifier"])
            if dialect.insert_returning:
                statement = statement.returning(table.c.identifier)
            cache[dialect.name] = statement
        return cache[dialect.name]

    def claim_usage(self, *, limit: int, now: datetime) -> list[UsageRecord]:
        table = self.usage_table
        statement = (
            sa.select(table)
            .where(table.c.status == UsageStatus.PENDING, table.c.next_attempt_at <= as_utc(now))
            .order_by(table.c.next_attempt_at, table.c.identifier)
            .limit(limit)
            .with_for_update(skip_locked=True)  # SQLite: none; its write lock serialises
        )
        connection = self.db.session.connection()
        if connection.dialect.name == "sqlite":
            _take_write_lock(connection, table)
        return [usage_record(row._mapping) for row in connection.execute(statement)]

    def save_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        table = self.usage_table
        statement = (
            table.update()
            .where(table.c.identifier == sa.bindparam("key"))
            .values({name: sa.bindparam(f"new_{name}") for name in USAGE_PROGRESS})
        )
        params = []
        for record in records:
            values = usage_values(record.in_utc())
            params.append(
                {"key": record.identifier} | {f"new_{n}": values[n] for n in USAGE_PROGRESS}
            )
        self.db.session.connection().execute(statement, params)

    def list_usage(
        self,
        *,
        statuses: Collection[str] | None = None,
        user_id: str | None = None,
        limit: int | None = None,
    ) -> list[UsageRecord]:
        table = self.usage_table
        statement = sa.select(table).order_by(table.c.reported_at.desc(), table.c.identifier.desc())
        if statuses is not None:
            statement = statement.where(table.c.status.in_(list(statuses)))
        if user_id is not None:
            statement = statement.where(table.c.user_id == str(user_id))
        if limit is not None:
            statement = statement.limit(limit)
        return [usage_record(row._mapping) for row in self.db.session.execute(statement)]

    def count_usage(self) -> dict[str, int]:
        table = self.usage_table
        statement = sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
        return {str(status): int(count) for status, count in self.db.session.execute(statement)}

    def usage_total(self, user_id: str, event_name: str, *, since: datetime) -> int:
        table = self.usage_table
        statement = sa.select(sa.func.coalesce(sa.func.sum(table.c.value), 0)).where(
            table.c.user_id == str(user_id),
            table.c.event_name == event_name,
            table.c.timestamp >= as_utc(since),
            table.c.status != UsageStatus.FAILED,
        )
        return int(self.db.session.execute(statement).scalar_one())


def _take_write_lock(connection: Any, table: sa.Table) -> None:
    """On SQLite, make the transaction a writer now (an update of no row takes the
    database's write lock), so two senders serialise at the claim instead of both reading
    the same pending rows."""
    connection.execute(table.update().where(sa.false()).values(status=table.c.status))
