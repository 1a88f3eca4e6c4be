"""The DDL the library needs, per dialect, compiled from the SQLAlchemy store's own tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable

from .columns import DEFAULT_COLUMNS, BillingMixin
from .sqlalchemy.log import SQLBillingLog
from .tables import (
    DEFAULT_ENTITLEMENT_TABLE,
    DEFAULT_EVENT_TABLE,
    DEFAULT_PURCHASE_TABLE,
    DEFAULT_SUBSCRIPTION_TABLE,
    DEFAULT_USAGE_TABLE,
    USERS,
    SchemaGap,
)

DIALECTS: dict[str, sa.Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(),  # type: ignore[no-untyped-call]
}


def library_metadata(
    *,
    event_table_name: str = DEFAULT_EVENT_TABLE,
    subscription_table_name: str = DEFAULT_SUBSCRIPTION_TABLE,
    entitlement_table_name: str = DEFAULT_ENTITLEMENT_TABLE,
    usage_table_name: str = DEFAULT_USAGE_TABLE,
    purchase_table_name: str = DEFAULT_PURCHASE_TABLE,
) -> sa.MetaData:
    """Every table the library keeps, in a MetaData of their own.

    They are the tables the SQLAlchemy store adds to a host's ``db.metadata``
    (it is asked to add them here), so the printed DDL and that store cannot
    drift apart, and a table the library gains is printed too.
    """
    metadata = sa.MetaData()
    stand_in = SimpleNamespace(metadata=metadata)  # all the store reads of ``db`` here
    SQLBillingLog(
        cast(Any, stand_in),
        event_table_name=event_table_name,
        subscription_table_name=subscription_table_name,
        entitlement_table_name=entitlement_table_name,
        usage_table_name=usage_table_name,
        purchase_table_name=purchase_table_name,
    )
    return metadata


def library_tables_by_kind(names: Mapping[str, str]) -> dict[str, sa.Table]:
    """Each library table of ``names`` (kind → its name in the database, as
    ``TableInspection.library_tables`` gives them), as this release defines it: every
    table the SQLAlchemy store keeps, so a table the library gains is inspected too."""
    metadata = sa.MetaData()
    log = SQLBillingLog(cast(Any, SimpleNamespace(metadata=metadata)))
    renamed = sa.MetaData()
    return {
        kind: metadata.tables[default].to_metadata(renamed, name=names[kind])
        for kind, default in log.library_tables().items()
        if kind in names
    }


def billing_columns(users_table: str, columns: Mapping[str, str] | None = None) -> sa.Table:
    """The billing columns of :class:`BillingMixin`, on a table named ``users_table``, named
    as ``columns`` maps them (BillingAccount field → column name)."""
    names = {**DEFAULT_COLUMNS, **(columns or {})}

    class Base(DeclarativeBase):
        pass

    class Users(BillingMixin, Base):
        __tablename__ = users_table
        id: Mapped[int] = mapped_column(primary_key=True)

    table = cast(sa.Table, Users.__table__)
    by_attribute = {default: names[field] for field, default in DEFAULT_COLUMNS.items()}
    for column in table.c:
        column.name = by_attribute.get(column.name, column.name)
    return table


def schema_statements(
    dialect_name: str,
    *,
    users_table: str = "users",
    columns: Mapping[str, str] | None = None,
    event_table_name: str = DEFAULT_EVENT_TABLE,
    subscription_table_name: str = DEFAULT_SUBSCRIPTION_TABLE,
    entitlement_table_name: str = DEFAULT_ENTITLEMENT_TABLE,
    usage_table_name: str = DEFAULT_USAGE_TABLE,
    purchase_table_name: str = DEFAULT_PURCHASE_TABLE,
) -> list[str]:
    """``CREATE TABLE`` and ``CREATE INDEX`` for each library table, then ``ALTER TABLE
    … ADD COLUMN`` for each billing column of the host's users table (and its index)."""
    dialect = DIALECTS[dialect_name]
    metadata = library_metadata(
        event_table_name=event_table_name,
        subscription_table_name=subscription_table_name,
        entitlement_table_name=entitlement_table_name,
        usage_table_name=usage_table_name,
        purchase_table_name=purchase_table_name,
    )
    statements: list[str] = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda index: index.name or ""):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)))
    users = billing_columns(users_table, columns)
    prefix = f"ALTER TABLE {dialect.identifier_preparer.format_table(users)} ADD COLUMN"
    for column in users.c:
        if not column.primary_key:
            statements.append(f"{prefix} {CreateColumn(column).compile(dialect=dialect)}")
    for index in sorted(users.indexes, key=lambda index: index.name or ""):
        statements.append(str(CreateIndex(index).compile(dialect=dialect)))
    return statements


def schema_script(dialect_name: str, **options: Any) -> str:
    """The statements as one script, each ending in ``;`` (no trailing spaces)."""
    statements = schema_statements(dialect_name, **options)
    users = options.get("users_table", "users")
    header = (
        f"-- Flask-Stripe-Billing on {dialect_name}: the library's tables, then the billing\n"
        f"-- columns of the {users} table (printed by: flask billing schema).\n"
    )
    lines = (header + "\n" + "\n".join(f"{s};\n" for s in statements)).splitlines()
    return "\n".join(line.rstrip() for line in lines) + "\n"


def upgrade_statements(dialect_name: str, gaps: Sequence[SchemaGap]) -> list[str]:
    """The statements adding what ``gaps`` names: ``CREATE TABLE`` (and its indexes) for a
    missing library table, ``ALTER TABLE … ADD COLUMN`` (and an index on it) for a missing
    column. The host's own table, if it is missing, is not the library's to create."""
    dialect = DIALECTS[dialect_name]
    statements: list[str] = []
    for gap in gaps:
        if gap.column is None and gap.kind == USERS:
            continue
        if gap.column is None:
            statements.append(str(CreateTable(gap.table).compile(dialect=dialect)).strip())
            indexes = list(gap.table.indexes)
        else:
            table = dialect.identifier_preparer.format_table(gap.table)
            column = CreateColumn(gap.column).compile(dialect=dialect)
            statements.append(f"ALTER TABLE {table} ADD COLUMN {column}")
            indexes = [i for i in gap.table.indexes if gap.column.name in i.columns]
        for index in sorted(indexes, key=lambda index: index.name or ""):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)))
    return statements


def upgrade_script(dialect_name: str, gaps: Sequence[SchemaGap]) -> str:
    """The upgrade statements as one script, or a comment saying there is nothing to do."""
    statements = upgrade_statements(dialect_name, gaps)
    header = (
        f"-- Flask-Stripe-Billing on {dialect_name}: what this database lacks (printed by:\n"
        "-- flask billing schema --upgrade).\n"
    )
    missing_users = [gap.name for gap in gaps if gap.kind == USERS and gap.column is None]
    if missing_users:
        header += f"-- Table {missing_users[0]} does not exist: create it first, then run again.\n"
    if not statements:
        return header + "-- Nothing to add: every table and column is there.\n"
    lines = (header + "\n" + "\n".join(f"{s};\n" for s in statements)).splitlines()
    return "\n".join(line.rstrip() for line in lines) + "\n"
