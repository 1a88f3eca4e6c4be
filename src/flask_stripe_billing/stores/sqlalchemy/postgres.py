"""The pipeline's two steps in one statement each, on PostgreSQL.

``record_and_lock`` records the event and row-locks its customer's account;
``write_outcome`` saves the subscription records, updates the account and
marks the event. Data-modifying ``WITH`` queries put each step's statements in
one round trip; the rows are the same as the separate statements would write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, RowMapping

from ..tables import mark_event

#: The event-log columns written when an event is first recorded.
RECORDED_COLUMNS = ("id", "type", "created", "customer_id", "status", "payload", "attempts")


class PostgresSteps:
    """Builds (once) and runs the two statements, over the store's tables."""

    def __init__(
        self,
        *,
        events: sa.Table,
        subscriptions: sa.Table,
        users: sa.Table,
        account_columns: Sequence[sa.ColumnElement[Any]],
        by_user: sa.ColumnElement[bool],
        customer_column: sa.Column[Any],
        field_columns: Mapping[str, sa.Column[Any]],
    ) -> None:
        self.events = events
        self.subscriptions = subscriptions
        self.users = users
        self.account_columns = list(account_columns)
        self.by_user = by_user
        self.field_columns = field_columns
        #: The record-and-lock row's column names: the event's, then the account's.
        self._event_names: list[str] = []
        self._account_names: list[str] = []
        self._record_and_lock = self._build_record_and_lock(customer_column)
        self._writes: dict[tuple[int, frozenset[str], bool], sa.Select[Any]] = {}

    def record_and_lock(
        self, connection: Connection, values: Mapping[str, Any], customer_id: str | None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The event row as recorded, and the locked account's (None: no account locked)."""
        params = {f"ev_{name}": value for name, value in values.items()}
        params["lock_customer"] = customer_id
        row = connection.execute(self._record_and_lock, params).one()
        # The row holds the event's columns, then the account's (see the statement):
        # split by position, not by matching each label's prefix.
        split = len(self._event_names)
        event = dict(zip(self._event_names, row[:split], strict=True))
        account = dict(zip(self._account_names, row[split:], strict=True))
        return event, (account if account["user_id"] is not None else None)

    def write_outcome(
        self,
        connection: Connection,
        *,
        records: Sequence[Mapping[str, Any]],
        account_key: Any,
        account_values: Mapping[str, Any],
        mark: Mapping[str, Any] | None,
    ) -> RowMapping | None:
        """Save ``records``, update the account (given values), mark the event (``mark``);
        the account's row after the update, when it was updated."""
        statement = self._write_statement(len(records), frozenset(account_values), mark is not None)
        params: dict[str, Any] = {"user_key": account_key} if account_values else {}
        for index, record in enumerate(records):
            params.update({f"s{index}_{name}": value for name, value in record.items()})
        params.update({f"new_{field}": value for field, value in account_values.items()})
        if mark is not None:
            params.update({f"mark_{name}": value for name, value in mark.items()})
        row = connection.execute(statement, params).first()
        return row._mapping if account_values and row is not None else None

    def _build_record_and_lock(self, customer_column: sa.Column[Any]) -> sa.Select[Any]:
        events = self.events
        insert = postgresql.insert(events).values(
            {name: sa.bindparam(f"ev_{name}") for name in (*RECORDED_COLUMNS, "received_at")}
        )
        recorded = (
            insert.on_conflict_do_update(
                index_elements=["id"],
                set_={
                    "attempts": events.c.attempts + 1,
                    "customer_id": sa.func.coalesce(
                        events.c.customer_id, insert.excluded.customer_id
                    ),
                },
            )
            .returning(*(column for column in events.c if column.name != "payload"))
            .cte("recorded")
        )
        # Referring to ``recorded`` makes the lock come after the event is recorded,
        # in every transaction alike: two deliveries cannot wait for each other.
        locked = (
            sa.select(*self.account_columns)
            .where(customer_column == sa.bindparam("lock_customer"))
            .where(sa.exists(sa.select(recorded.c.id)))
            .with_for_update()
            .cte("locked")
        )
        self._event_names = [column.name for column in recorded.c]
        self._account_names = [column.name for column in locked.c]
        return sa.select(
            *(column.label(f"e_{column.name}") for column in recorded.c),
            *(column.label(f"a_{column.name}") for column in locked.c),
        ).select_from(recorded.outerjoin(locked, sa.true()))

    def _write_statement(self, records: int, fields: frozenset[str], mark: bool) -> sa.Select[Any]:
        key = (records, fields, mark)
        if key in self._writes:
            return self._writes[key]
        subscriptions = self.subscriptions
        ctes: list[sa.CTE] = []
        for index in range(records):
            insert = postgresql.insert(subscriptions).values(
                {column.name: sa.bindparam(f"s{index}_{column.name}") for column in subscriptions.c}
            )
            replaced = {c.name: insert.excluded[c.name] for c in subscriptions.c if c.name != "id"}
            ctes.append(
                insert.on_conflict_do_update(index_elements=["id"], set_=replaced).cte(
                    f"saved_{index}"
                )
            )
        if mark:
            ctes.append(mark_event(self.events, "mark_").cte("marked"))
        if fields:
            applied = (
                sa.update(self.users)
                .where(self.by_user)
                .values({self.field_columns[f]: sa.bindparam(f"new_{f}") for f in fields})
                .returning(*self.account_columns)
                .cte("applied")
            )
            statement = sa.select(applied)
        else:
            statement = sa.select(sa.literal(1))
        statement = statement.add_cte(*ctes)
        self._writes[key] = statement
        return statement
