"""The purchase table over a DB-API connection, in plain SQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ...core.purchases import PurchaseRecord
from ..rows import PURCHASE_TIMES, purchase_record, purchase_values
from ..tables import purchase_table
from .session import Session
from .sql import from_db_time, quote, quoted_list

#: The purchase table's columns (the table definition is the SQLAlchemy store's).
PURCHASE_COLUMNS = tuple(column.name for column in purchase_table(sa.MetaData()).c)


class DBAPIPurchaseLog:
    """``PurchaseLog`` in the library's purchase table (create it with ``flask billing
    schema``)."""

    session: Session
    purchase_table_name: str

    @property
    def _purchases(self) -> str:
        return quote(self.purchase_table_name)

    def lock_purchase(self, purchase_id: str) -> PurchaseRecord:
        """Insert a blank record or lock the existing one, and return it: one statement."""
        values = purchase_values(PurchaseRecord(purchase_id))
        mark = self.session.dialect.placeholders(len(values))
        kept = f'{quote(self.purchase_table_name.rsplit(".", 1)[-1])}."id"'
        sql = (
            f"INSERT INTO {self._purchases} ({quoted_list(values)}) VALUES ({mark}) "
            f'ON CONFLICT ("id") DO UPDATE SET "id" = {kept} '
            f"RETURNING {quoted_list(PURCHASE_COLUMNS)}"
        )
        row = self.session.execute(sql, list(values.values())).first()
        assert row is not None
        return _record(row)

    def save_purchase(self, record: PurchaseRecord) -> None:
        values = purchase_values(record.in_utc())
        p = self.session.dialect.placeholder
        assignments = ", ".join(f"{quote(name)} = {p}" for name in values)
        self.session.execute(
            f'UPDATE {self._purchases} SET {assignments} WHERE "id" = {p}',
            [*values.values(), record.id],
        )

    def get_purchase(self, purchase_id: str) -> PurchaseRecord | None:
        p = self.session.dialect.placeholder
        sql = f'SELECT {quoted_list(PURCHASE_COLUMNS)} FROM {self._purchases} WHERE "id" = {p}'
        rows = self.session.execute(sql, [purchase_id]).rows
        return _record(rows[0]) if rows else None

    def purchases_of(self, user_id: str) -> list[PurchaseRecord]:
        p = self.session.dialect.placeholder
        sql = (
            f"SELECT {quoted_list(PURCHASE_COLUMNS)} FROM {self._purchases} "
            f'WHERE "user_id" = {p} ORDER BY "created" IS NULL, "created" DESC, "id" DESC'
        )
        return [_record(row) for row in self.session.execute(sql, [str(user_id)]).rows]


def _record(row: Any) -> PurchaseRecord:
    """A :class:`PurchaseRecord` from a row of the purchase table, in column order."""
    values = dict(zip(PURCHASE_COLUMNS, row, strict=True))
    values.update({name: from_db_time(values[name]) for name in PURCHASE_TIMES})
    return purchase_record(values)
