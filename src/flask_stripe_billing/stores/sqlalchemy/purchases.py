"""The purchase table over Flask-SQLAlchemy's session: one row per one-time payment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy
from ...core.purchases import PurchaseRecord
from ..rows import purchase_record, purchase_values


class SQLPurchaseLog:
    """``PurchaseLog`` in the library's purchase table, on ``db.metadata`` (the host's own)."""

    db: SQLAlchemy
    purchases_table: sa.Table

    def lock_purchase(self, purchase_id: str) -> PurchaseRecord:
        """Insert a blank record or lock the existing one, and return it: one statement
        where the database has ``INSERT … ON CONFLICT``."""
        table = self.purchases_table
        session = self.db.session
        connection = session.connection()
        blank = purchase_values(PurchaseRecord(purchase_id))
        dialect = connection.dialect
        if dialect.name in ("postgresql", "sqlite") and dialect.insert_returning:
            insert = (postgresql if dialect.name == "postgresql" else sqlite).insert(table)
            statement = insert.on_conflict_do_update(
                index_elements=["id"], set_={"id": insert.excluded.id}
            ).returning(*table.c)
            return purchase_record(connection.execute(statement, blank).one()._mapping)
        try:  # other databases: insert, or find the existing row
            with session.begin_nested():
                session.execute(table.insert().values(**blank))
        except exc.IntegrityError:
            pass
        locked = session.execute(
            sa.select(table).where(table.c.id == purchase_id).with_for_update()
        )
        return purchase_record(locked.one()._mapping)

    def save_purchase(self, record: PurchaseRecord) -> None:
        table = self.purchases_table
        values = purchase_values(record.in_utc())
        self.db.session.execute(table.update().where(table.c.id == record.id).values(**values))

    def get_purchase(self, purchase_id: str) -> PurchaseRecord | None:
        table = self.purchases_table
        row = self.db.session.execute(
            sa.select(table).where(table.c.id == purchase_id)
        ).one_or_none()
        return None if row is None else purchase_record(row._mapping)

    def purchases_of(self, user_id: str) -> list[PurchaseRecord]:
        table = self.purchases_table
        statement = (
            sa.select(table)
            .where(table.c.user_id == str(user_id))
            .order_by(table.c.created.desc().nulls_last(), table.c.id.desc())
        )
        return [purchase_record(row._mapping) for row in self.db.session.execute(statement)]
