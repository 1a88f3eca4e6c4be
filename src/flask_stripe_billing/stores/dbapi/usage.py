"""The usage table over a DB-API connection, in plain SQL: reports join the store's
transaction in progress (the host's, inside ``with store.transaction():``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ...core.usage import UsageRecord, UsageStatus
from ..rows import USAGE_PROGRESS, usage_record, usage_values
from ..tables import usage_table
from .session import Session
from .sql import from_db_time, quote, quoted_list

#: The usage table's columns (the table definition is the SQLAlchemy store's).
USAGE_COLUMNS = tuple(column.name for column in usage_table(sa.MetaData()).c)


_USAGE_TIMES = ("timestamp", "next_attempt_at", "first_attempt_at", "sent_at", "reported_at")


class DBAPIUsageLog:
    """``UsageLog`` in the library's usage table (create it with ``flask billing schema``)."""

    session: Session
    usage_table_name: str

    @property
    def _usage(self) -> str:
        return quote(self.usage_table_name)

    def add_usage(self, record: UsageRecord) -> bool:
        values = usage_values(record.in_utc())
        mark = self.session.dialect.placeholders(len(values))
        result = self.session.execute(
            f"INSERT INTO {self._usage} ({quoted_list(values)}) VALUES ({mark}) "
            'ON CONFLICT ("identifier") DO NOTHING',
            list(values.values()),
        )
        return result.rowcount > 0

    def claim_usage(self, *, limit: int, now: datetime) -> list[UsageRecord]:
        dialect = self.session.dialect
        p = dialect.placeholder
        # SQLite: the transaction's BEGIN IMMEDIATE has taken the write lock already.
        lock = " FOR UPDATE SKIP LOCKED" if dialect.name == "postgresql" else ""
        sql = (
            f"SELECT {quoted_list(USAGE_COLUMNS)} FROM {self._usage} "
            f'WHERE "status" = {p} AND "next_attempt_at" <= {p} '
            f'ORDER BY "next_attempt_at", "identifier" LIMIT {p}{lock}'
        )
        return self._records(sql, [UsageStatus.PENDING, now, limit])

    def save_usage(self, records: Sequence[UsageRecord]) -> None:
        p = self.session.dialect.placeholder
        assignments = ", ".join(f"{quote(name)} = {p}" for name in USAGE_PROGRESS)
        sql = f'UPDATE {self._usage} SET {assignments} WHERE "identifier" = {p}'
        with self.session.transaction():
            for record in records:
                values = usage_values(record.in_utc())
                self.session.execute(sql, [*(values[n] for n in USAGE_PROGRESS), record.identifier])

    def list_usage(
        self,
        *,
        statuses: Collection[str] | None = None,
        user_id: str | None = None,
        limit: int | None = None,
    ) -> list[UsageRecord]:
        if statuses is not None and not statuses:
            return []
        p = self.session.dialect.placeholder
        params: list[Any] = []
        conditions = []
        if statuses is not None:
            conditions.append(f'"status" IN ({self.session.dialect.placeholders(len(statuses))})')
            params.extend(statuses)
        if user_id is not None:
            conditions.append(f'"user_id" = {p}')
            params.append(str(user_id))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        order = ' ORDER BY "reported_at" DESC, "identifier" DESC'
        if limit is not None:
            order += f" LIMIT {p}"
            params.append(limit)
        sql = f"SELECT {quoted_list(USAGE_COLUMNS)} FROM {self._usage}{where}{order}"
        return self._records(sql, params)

    def count_usage(self) -> dict[str, int]:
        rows = self.session.execute(
            f'SELECT "status", count(*) FROM {self._usage} GROUP BY "status"'
        ).rows
        return {str(status): int(count) for status, count in rows}

    def usage_total(self, user_id: str, event_name: str, *, since: datetime) -> int:
        p = self.session.dialect.placeholder
        sql = (
            f'SELECT coalesce(sum("value"), 0) FROM {self._usage} WHERE "user_id" = {p} '
            f'AND "event_name" = {p} AND "timestamp" >= {p} AND "status" <> {p}'
        )
        (row,) = self.session.execute(
            sql, [str(user_id), event_name, since, UsageStatus.FAILED]
        ).rows
        return int(row[0])

    def _records(self, sql: str, params: Sequence[Any]) -> list[UsageRecord]:
        rows = self.session.execute(sql, params).rows
        records = []
        for row in rows:
            values = dict(zip(USAGE_COLUMNS, row, strict=True))
            values.update({name: from_db_time(values[name]) for name in _USAGE_TIMES})
            records.append(usage_record(values))
        return records
