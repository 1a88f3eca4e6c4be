"""The DB-API store's connections: one per transaction, shared by every call inside it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

from ...errors import StoreUnavailableError
from .sql import Dialect, dialect_named, dialect_of, is_unavailable

#: A callable returning a PEP 249 connection (a new one, or the request's own).
Connect = Callable[[], Any]


#: The connection of each store's transaction in progress, on this thread or task.
_ACTIVE: ContextVar[dict[int, Any] | None] = ContextVar("stripe_billing_dbapi", default=None)


class Session:
    """Runs SQL on a connection from ``connect``, inside a transaction.

    ``transaction()`` takes one connection for the whole ``with`` block (nested
    blocks join it) and commits or rolls back at the end; a call outside any
    block runs in a short transaction of its own, committed at once. On SQLite
    the block starts with ``BEGIN IMMEDIATE``: the database's write lock is
    taken first, so concurrent webhooks serialise instead of failing to upgrade
    a read lock. ``close=True`` closes each connection after its transaction
    (for a ``connect`` that opens a new one per call); by default the
    connection is left open for its owner (a per-request ``get_db()``).
    """

    def __init__(self, connect: Connect, *, dialect: str | None, close: bool) -> None:
        self.connect = connect
        self.close = close
        self._dialect = None if dialect is None else dialect_named(dialect)

    @property
    def dialect(self) -> Dialect:
        """The database's dialect: as given, else told by the first connection's driver."""
        if self._dialect is None:
            with self.transaction(begin=False):
                pass  # the connection taken sets it
        assert self._dialect is not None
        return self._dialect

    @contextmanager
    def transaction(self, *, begin: bool = True) -> Iterator[Any]:
        """The connection of the transaction in progress, or a new transaction's: committed
        on exit, rolled back on an error; a database that cannot be used raises
        :class:`StoreUnavailableError`. ``begin=False`` lets the driver start it."""
        active = _ACTIVE.get() or {}
        if id(self) in active:
            yield active[id(self)]
            return
        connection = self._open()
        token = _ACTIVE.set({**active, id(self): connection})
        explicit = False
        try:
            explicit = self._begin(connection) if begin else False
            yield connection
        except BaseException as error:
            with suppress(Exception):
                self._end(connection, explicit=explicit, commit=False)
            if isinstance(error, Exception) and is_unavailable(error):
                raise StoreUnavailableError(str(error)) from error
            raise
        else:
            try:
                self._end(connection, explicit=explicit, commit=True)
            except Exception as error:
                if is_unavailable(error):
                    raise StoreUnavailableError(str(error)) from error
                raise
        finally:
            _ACTIVE.reset(token)
            if self.close:
                with suppress(Exception):
                    connection.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Fetched:
        """Run one statement (in the transaction in progress, or one of its own); its rows,
        fetched before the transaction ends."""
        with self.transaction(begin=False) as connection:
            cursor = connection.cursor()
            cursor.execute(sql, self.dialect.values(params))
            return Fetched(cursor)

    def _open(self) -> Any:
        try:
            connection = self.connect()
        except Exception as error:
            if is_unavailable(error):
                raise StoreUnavailableError(str(error)) from error
            raise
        if self._dialect is None:
            self._dialect = dialect_of(connection)
        return connection

    def _begin(self, connection: Any) -> bool:
        """Start the transaction where the driver would not; whether it was started here."""
        statement = self.dialect.begin
        if statement is None:  # PostgreSQL drivers open one, unless in autocommit mode
            if getattr(connection, "autocommit", False) is not True:
                return False
            statement = "BEGIN"
        elif getattr(connection, "in_transaction", False):
            return False  # the host's own transaction is under way: join it
        connection.cursor().execute(statement)
        return True

    @staticmethod
    def _end(connection: Any, *, explicit: bool, commit: bool) -> None:
        """Commit or roll back (by statement when the transaction was begun by one)."""
        if explicit:
            connection.cursor().execute("COMMIT" if commit else "ROLLBACK")
        elif commit:
            connection.commit()
        else:
            connection.rollback()


class Fetched:
    """A finished cursor's rows and row count (read before the transaction ends)."""

    def __init__(self, cursor: Any) -> None:
        self.rowcount: int = cursor.rowcount
        #: The result's column names (PEP 249 ``cursor.description``).
        self.names = [column[0] for column in cursor.description or ()]
        rows = cursor.fetchall() if cursor.description else []
        # A host's row factory may make mappings (psycopg's dict_row): values, in order.
        self.rows: list[Sequence[Any]] = [
            tuple(row.values()) if isinstance(row, Mapping) else row for row in rows
        ]
        with suppress(Exception):
            cursor.close()

    def first(self) -> Sequence[Any] | None:
        """The first row, or None."""
        return self.rows[0] if self.rows else None
