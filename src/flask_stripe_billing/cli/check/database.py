"""Whether the library's own tables exist: what an upgrade whose migration has not run
yet lacks, named by ``flask billing check``."""

from __future__ import annotations

import sqlalchemy as sa

from ...state import BillingState
from ...stores.dbapi.log import DBAPIBillingLog
from ...stores.sqlalchemy import SQLAlchemyUserStore
from .findings import Finding


def check_library_tables(state: BillingState) -> list[Finding]:
    """A finding for each of the library's other tables that is missing (an upgrade whose
    migration has not run): subscription records (a problem), entitlements (a warning)."""
    tables = []
    subscriptions = state.subscription_log
    if isinstance(subscriptions, SQLAlchemyUserStore | DBAPIBillingLog):
        name = _table_name(subscriptions, "subscriptions")
        tables.append((subscriptions, name, "subscription records", True))
    entitlements = state.entitlement_log
    if isinstance(entitlements, SQLAlchemyUserStore | DBAPIBillingLog):
        name = _table_name(entitlements, "entitlements")
        tables.append((entitlements, name, "entitlements", False))
    found = []
    for store, name, subject, required in tables:
        if _has_table(store, name):
            continue
        fails = "subscription events fail" if required else "entitlement summaries fail"
        how = (
            "run the SQL that flask billing schema prints"
            if isinstance(store, DBAPIBillingLog)
            else "create it with db.create_all() or your migrations"
        )
        found.append(
            Finding(
                "missing" if required else "warning",
                subject,
                f"table {name} does not exist: {how} ({fails} until then)",
                problem=required,
            )
        )
    return found


def _table_name(store: SQLAlchemyUserStore | DBAPIBillingLog, kind: str) -> str:
    if isinstance(store, SQLAlchemyUserStore):
        table = store.subscriptions_table if kind == "subscriptions" else store.entitlements_table
        return str(table.name)
    if kind == "subscriptions":
        return store.subscription_table_name
    return store.entitlement_table_name


def _has_table(store: SQLAlchemyUserStore | DBAPIBillingLog, name: str) -> bool:
    """Whether the table exists, from the database's catalog (True when that cannot be
    told: the event log's check reports an unreachable database)."""
    try:
        if isinstance(store, SQLAlchemyUserStore):
            return bool(sa.inspect(store.db.engine).has_table(name))
        session = store.session
        p = session.dialect.placeholder
        if session.dialect.name == "sqlite":
            sql = f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = {p}"
        else:
            sql = f"SELECT count(*) FROM (SELECT to_regclass({p}) AS t) c WHERE t IS NOT NULL"
        with store.transaction():
            (row,) = session.execute(sql, [name]).rows
        return bool(row[0])
    except Exception:
        return True
