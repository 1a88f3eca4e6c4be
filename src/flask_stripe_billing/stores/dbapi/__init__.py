"""A store over a PEP 249 connection (sqlite3, psycopg, …), for apps without SQLAlchemy models."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from ...core.account import FREE_PLAN, AccountChanges, BillingAccount
from ..columns import DEFAULT_COLUMNS, REMOVED_FIELDS, REQUIRED_FIELDS
from ..schema import billing_columns
from ..tables import (
    DEFAULT_ENTITLEMENT_TABLE,
    DEFAULT_EVENT_TABLE,
    DEFAULT_PURCHASE_TABLE,
    DEFAULT_SUBSCRIPTION_TABLE,
    DEFAULT_USAGE_TABLE,
    USERS,
    SchemaGap,
)
from .log import DBAPIBillingLog
from .session import Connect
from .sql import from_db_time, quote, quoted_list

DEFAULT_USERS_TABLE = "users"


_ACCOUNT_TIMES = frozenset({"current_period_end", "updated_at", "trial_end"})


class DBAPIUserStore(DBAPIBillingLog):
    """``UserStore``, ``EventLog`` and ``SubscriptionLog`` over the host's own users table,
    through any PEP 249 connection: SQL, no models.

    ``connect`` returns a connection: the request's own (Flask's tutorial
    ``get_db``; the store commits, the app closes it) or a new one per call
    with ``close=True``. ``dialect`` (``"sqlite"`` or ``"postgresql"``) is told
    by the driver when not given. ``columns`` maps BillingAccount fields to the
    table's column names where they differ from :class:`BillingMixin`'s (None:
    the table has none); optional columns the table lacks are left out, the
    table is read once for its column names. ``user_id`` is the ``id`` column,
    compared as ``user_id_type`` (``int``; ``str`` for text keys).
    """

    def __init__(
        self,
        connect: Connect,
        *,
        dialect: str | None = None,
        close: bool = False,
        users_table: str = DEFAULT_USERS_TABLE,
        columns: Mapping[str, str | None] | None = None,
        user_id_type: Callable[[str], Any] = int,
        event_table_name: str = DEFAULT_EVENT_TABLE,
        subscription_table_name: str = DEFAULT_SUBSCRIPTION_TABLE,
        entitlement_table_name: str = DEFAULT_ENTITLEMENT_TABLE,
        usage_table_name: str = DEFAULT_USAGE_TABLE,
        purchase_table_name: str = DEFAULT_PURCHASE_TABLE,
    ) -> None:
        super().__init__(
            connect,
            dialect=dialect,
            close=close,
            event_table_name=event_table_name,
            subscription_table_name=subscription_table_name,
            entitlement_table_name=entitlement_table_name,
            usage_table_name=usage_table_name,
            purchase_table_name=purchase_table_name,
        )
        self.users_table = users_table
        self._users = quote(users_table)
        self._overrides = _checked_overrides(columns or {})
        self._user_id_type = user_id_type
        self._resolved: dict[str, str] | None = None
        #: The users table's billing columns the last inspection found missing.
        self._missing_columns: frozenset[str] | None = None

    @property
    def column_overrides(self) -> dict[str, str | None]:
        """The ``columns`` given: BillingAccount field → column name (None: no column)."""
        return dict(self._overrides)

    @property
    def columns(self) -> dict[str, str]:
        """BillingAccount field → the users table's column (``user_id`` first), for the
        fields the table has; read from the table on first use."""
        if self._resolved is None:
            found = self.session.execute(f"SELECT * FROM {self._users} WHERE 1 = 0").names
            self._resolved = resolve_table_columns(self.users_table, found, self._overrides)
        return self._resolved

    # UserStore

    def get(self, user_id: str, *, lock: bool = False) -> BillingAccount | None:
        key = self._user_key(user_id)
        if key is None:
            return None
        return self._select_one("user_id", key, lock)

    def get_by_customer_id(self, customer_id: str, *, lock: bool = False) -> BillingAccount | None:
        return self._select_one("stripe_customer_id", customer_id, lock)

    def set_customer_id(self, user_id: str, customer_id: str) -> BillingAccount:
        # Outside a transaction (Checkout) the update is committed at once.
        return self.apply(user_id, {"stripe_customer_id": customer_id})

    def apply(self, user_id: str, changes: AccountChanges) -> BillingAccount:
        columns = self.columns
        key = self._user_key(user_id)
        values = {columns[field]: value for field, value in changes.items() if field in columns}
        account = None
        if key is not None and values:
            p = self.session.dialect.placeholder
            assignments = ", ".join(f"{quote(name)} = {p}" for name in values)
            row = self.session.execute(
                f"UPDATE {self._users} SET {assignments} WHERE {quote(columns['user_id'])} = {p} "
                f"RETURNING {quoted_list(columns.values())}",
                [*values.values(), key],
            ).first()
            account = None if row is None else _account(dict(zip(columns, row, strict=True)))
        elif key is not None:
            account = self._select_one("user_id", key, False)
        if account is None:
            raise LookupError(f"no user {user_id!r}")
        return account

    def accounts_with_customer(self) -> list[BillingAccount]:
        """Every account linked to a Stripe customer, by user id (for ``flask billing sync``)."""
        columns = self.columns
        customer, key = quote(columns["stripe_customer_id"]), quote(columns["user_id"])
        return self._select(f"{customer} IS NOT NULL ORDER BY {key}", [])

    # SchemaInspection: the library's tables and the users table's billing columns

    def schema_gaps(self) -> tuple[SchemaGap, ...]:
        """As :class:`DBAPIBillingLog`, and each billing column of the users table that is
        missing: the default names as ``columns`` maps them (one mapped to None is not
        looked for). The account is read and written without the missing ones (their
        fields' defaults) until an inspection finds them: then the table is read again."""
        names = {
            field: name
            for field, default in DEFAULT_COLUMNS.items()
            if (name := self._overrides.get(field, default)) is not None
        }
        table = billing_columns(self.users_table, names)
        fields = {name: field for field, name in names.items()}
        wanted = [column for column in table.c if column.name in fields]
        gaps = self._gaps([(USERS, table, wanted)], fields)
        missing = frozenset(gap.name for gap in gaps if gap.kind == USERS)
        if missing != self._missing_columns:
            self._missing_columns = missing
            self._resolved = None  # a migration added some since: read the columns again
        return gaps

    # helpers

    def _select_one(self, field: str, value: Any, lock: bool) -> BillingAccount | None:
        p = self.session.dialect.placeholder
        condition = f"{quote(self.columns[field])} = {p}"
        if lock:
            condition += self.session.dialect.for_update
        accounts = self._select(condition, [value])
        return accounts[0] if accounts else None

    def _select(self, condition: str, params: Sequence[Any]) -> list[BillingAccount]:
        columns = self.columns
        sql = f"SELECT {quoted_list(columns.values())} FROM {self._users} WHERE {condition}"
        rows = self.session.execute(sql, params).rows
        return [_account(dict(zip(columns, row, strict=True))) for row in rows]

    def _user_key(self, user_id: str) -> Any:
        """The id column's value for this user id, or None when it can name no user (an id
        from a webhook need not fit the column, and must not make the database raise)."""
        try:
            key = self._user_id_type(user_id)
        except (TypeError, ValueError):
            return None
        if isinstance(key, int) and not -(2**63) <= key < 2**63:
            return None
        return key


def _checked_overrides(columns: Mapping[str, str | None]) -> dict[str, str | None]:
    """``columns`` checked: known fields, plain identifiers."""
    for field, replacement in REMOVED_FIELDS.items():
        if field in columns:
            raise ValueError(f"{field!r} is no longer a BillingAccount field: {replacement}")
    unknown = set(columns) - set(DEFAULT_COLUMNS) - {"user_id"}
    if unknown:
        raise ValueError(f"unknown BillingAccount fields in columns: {sorted(unknown)}")
    for name in columns.values():
        if name is not None:
            quote(name)
    return dict(columns)


def resolve_table_columns(
    table: str, found: Collection[str], overrides: Mapping[str, str | None]
) -> dict[str, str]:
    """BillingAccount field → column of ``table`` (which has the columns ``found``): the
    defaults, as overridden; an optional column the table lacks is left out."""
    key = overrides.get("user_id") or "id"
    if key not in found:
        raise ValueError(f"table {table!r} has no column {key!r} for 'user_id'")
    resolved = {"user_id": key}
    for field, default in DEFAULT_COLUMNS.items():
        explicit = field in overrides
        name = overrides[field] if explicit else default
        if name is not None and name not in found:
            if explicit or field in REQUIRED_FIELDS:
                raise ValueError(
                    f"table {table!r} has no column {name!r} for {field!r}; add it "
                    "(flask billing schema prints the statements) or map it with columns={...}"
                )
            name = None
        if name is None and field in REQUIRED_FIELDS:
            raise ValueError(f"{field!r} needs a column in table {table!r}")
        if name is not None:
            resolved[field] = name
    return resolved


def _account(row: dict[str, Any]) -> BillingAccount:
    """A BillingAccount from a row keyed by field name (absent fields: defaults)."""
    times = {name: from_db_time(row.get(name)) for name in _ACCOUNT_TIMES}
    email = row.get("email")
    quantity = row.get("subscription_quantity")
    return BillingAccount(
        user_id=str(row["user_id"]),
        email=None if email is None else str(email),
        stripe_customer_id=row.get("stripe_customer_id"),
        stripe_subscription_id=row.get("stripe_subscription_id"),
        plan=row.get("plan") or FREE_PLAN,
        subscription_status=row.get("subscription_status"),
        current_period_end=times["current_period_end"],
        cancel_at_period_end=bool(row.get("cancel_at_period_end") or False),
        updated_at=times["updated_at"],
        trial_end=times["trial_end"],
        subscription_quantity=None if quantity is None else int(quantity),
    )
