"""SQL for the DB-API store: checked and quoted names, placeholders and values per dialect."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..._util import as_utc

#: A plain SQL identifier: what a table or column name given to the store may be.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


#: How SQLAlchemy writes a DateTime on SQLite: sortable text, in UTC here.
SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def quote(name: str) -> str:
    """A table or column name, checked and double-quoted (``schema.table`` part by part).

    Names reach SQL text only through here: anything but a plain identifier is
    refused, so a name can never carry SQL of its own.
    """
    parts = name.split(".")
    for part in parts:
        if not _IDENTIFIER.match(part):
            raise ValueError(f"{name!r} is not a plain SQL identifier (letters, digits, _)")
    return ".".join(f'"{part}"' for part in parts)


def quoted_list(names: Iterable[str]) -> str:
    """``"a", "b", …``."""
    return ", ".join(quote(name) for name in names)


@dataclass(frozen=True)
class Dialect:
    """What differs between the databases the store speaks to."""

    name: str
    #: The driver's placeholder (paramstyle ``qmark`` for sqlite3, ``format`` for psycopg).
    placeholder: str
    #: How the store's transaction starts (None: the driver starts one itself).
    begin: str | None
    #: Appended to a SELECT that row-locks (SQLite locks the database at BEGIN instead).
    for_update: str

    def placeholders(self, count: int) -> str:
        """``?, ?, …`` (or ``%s, …``) for ``count`` values."""
        return ", ".join([self.placeholder] * count)

    def to_db(self, value: Any) -> Any:
        """A value as the driver takes it: datetimes in UTC (text on SQLite), booleans as 0/1
        on SQLite."""
        if isinstance(value, datetime):
            utc = as_utc(value)
            assert utc is not None
            if self.name == "sqlite":
                return utc.replace(tzinfo=None).strftime(SQLITE_TIME_FORMAT)
            return utc
        if isinstance(value, bool) and self.name == "sqlite":
            return int(value)
        return value

    def values(self, values: Sequence[Any]) -> tuple[Any, ...]:
        """Every value as the driver takes it."""
        return tuple(self.to_db(value) for value in values)


SQLITE = Dialect("sqlite", "?", "BEGIN IMMEDIATE", "")


POSTGRESQL = Dialect("postgresql", "%s", None, " FOR UPDATE")


DIALECTS = {dialect.name: dialect for dialect in (SQLITE, POSTGRESQL)}


#: Driver modules (the top-level package of the connection's class) → dialect name.
DRIVER_DIALECTS = {
    "sqlite3": "sqlite",
    "pysqlite2": "sqlite",
    "psycopg": "postgresql",
    "psycopg2": "postgresql",
    "pg8000": "postgresql",
}


def dialect_named(name: str) -> Dialect:
    """The dialect called ``name`` (``postgres`` is ``postgresql``)."""
    key = "postgresql" if name == "postgres" else name
    if key not in DIALECTS:
        raise ValueError(f"dialect must be one of {sorted(DIALECTS)}, not {name!r}")
    return DIALECTS[key]


def dialect_of(connection: Any) -> Dialect:
    """The dialect of a DB-API connection, from its driver's module."""
    module = type(connection).__module__.split(".")[0]
    if module not in DRIVER_DIALECTS:
        raise ValueError(
            f"cannot tell the database of a {module}.{type(connection).__name__} connection; "
            "pass dialect='sqlite' or dialect='postgresql'"
        )
    return DIALECTS[DRIVER_DIALECTS[module]]


def from_db_time(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite gives text, naive meaning UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a stored time: {value!r}")
    return as_utc(value)


def is_unavailable(error: BaseException) -> bool:
    """Whether a driver error means the database cannot be used now (PEP 249's
    ``OperationalError`` or ``InterfaceError``: connection lost, database locked, no table)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"OperationalError", "InterfaceError"})
