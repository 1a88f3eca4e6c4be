"""A store over the host's Flask-SQLAlchemy user model, plus the event-log table."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Mapped, mapped_column

from ..account import FREE_PLAN, AccountChanges, BillingAccount
from ..clock import as_utc, utcnow
from ..events import StripeEvent
from .base import EventRecord, EventStatus, StoreUnavailableError

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

DEFAULT_EVENT_TABLE = "stripe_billing_events"

#: BillingAccount field → model attribute, as BillingMixin names them.
DEFAULT_COLUMNS: dict[str, str] = {
    "email": "email",
    "stripe_customer_id": "stripe_customer_id",
    "stripe_subscription_id": "stripe_subscription_id",
    "plan": "plan",
    "subscription_status": "stripe_subscription_status",
    "current_period_end": "current_period_end",
    "cancel_at_period_end": "cancel_at_period_end",
    "updated_at": "updated_at",
    "last_event_at": "stripe_last_event_at",
}
#: Fields the store cannot work without.
REQUIRED_FIELDS = frozenset(
    {"stripe_customer_id", "stripe_subscription_id", "plan", "subscription_status", "last_event_at"}
)


class BillingMixin:
    """The billing columns, for a host model: ``class User(BillingMixin, db.Model)``."""

    plan: Mapped[str] = mapped_column(
        sa.String(50), default=FREE_PLAN, server_default=FREE_PLAN, nullable=False
    )
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True, index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_subscription_status: Mapped[str | None] = mapped_column(sa.String(50))
    current_period_end: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(
        sa.Boolean, default=False, server_default=sa.text("false"), nullable=False
    )
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    #: Creation time of the last Stripe event applied (the ordering watermark).
    stripe_last_event_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


def event_table(metadata: sa.MetaData, name: str = DEFAULT_EVENT_TABLE) -> sa.Table:
    """The event-log table in ``metadata`` (created there once, then reused)."""
    if name in metadata.tables:
        return metadata.tables[name]
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False, index=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("customer_id", sa.String(255), index=True),
        sa.Column("user_id", sa.String(255)),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("error", sa.Text),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, default=1),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
    )


class SQLAlchemyUserStore:
    """``UserStore`` and ``EventLog`` over a Flask-SQLAlchemy model and session.

    ``columns`` maps BillingAccount field names to the model's attribute names
    where they differ from :class:`BillingMixin`'s; map a field to ``None`` when
    the model has no such column. ``user_id`` defaults to the primary key.
    """

    def __init__(
        self,
        db: SQLAlchemy,
        model: type[Any],
        *,
        columns: Mapping[str, str | None] | None = None,
        event_table_name: str = DEFAULT_EVENT_TABLE,
    ) -> None:
        self.db = db
        self.model = model
        resolved = _resolve_columns(model, columns or {})
        self._key_attr: str = resolved.pop("user_id") or ""
        self.columns = resolved
        self.events_table = event_table(db.metadata, event_table_name)
        mapper = sa.inspect(model)
        key_column = mapper.get_property(self._key_attr).columns[0]
        self._key_type: type[Any] = key_column.type.python_type
        # The hot path runs Core statements built here once, with bound parameters:
        # one round trip each, and no statement to build or cache-key per request.
        self._table: sa.Table = key_column.table
        #: BillingAccount field → the table column holding it.
        self._field_columns: dict[str, sa.Column[Any]] = {"user_id": key_column} | {
            field: mapper.get_property(attribute).columns[0]
            for field, attribute in self.columns.items()
            if attribute is not None
        }
        self._labelled = [column.label(field) for field, column in self._field_columns.items()]
        # Integer ids compare as 64-bit (an int4 column would overflow otherwise).
        key_type = sa.BigInteger() if issubclass(self._key_type, int) else key_column.type
        self._by_user = key_column == sa.bindparam("user_key", type_=key_type)
        by_customer = self._field_columns["stripe_customer_id"] == sa.bindparam("customer_id")
        select = sa.select(*self._labelled)
        self._select_user = _with_lock_variants(select.where(self._by_user))
        self._select_customer = _with_lock_variants(select.where(by_customer))
        self._updates: dict[tuple[frozenset[str], bool], sa.Update] = {}
        self._upserts: dict[str, sa.Insert] = {}
        events = self.events_table
        self._finish = (
            events.update()
            .where(events.c.id == sa.bindparam("event_id"))
            .values(
                status=sa.bindparam("new_status"),
                user_id=sa.bindparam("new_user_id"),
                error=sa.bindparam("new_error"),
                processed_at=sa.bindparam("new_processed_at"),
            )
        )

    # UserStore

    def get(self, user_id: str, *, lock: bool = False) -> BillingAccount | None:
        key = self._user_key(user_id)
        if key is None:
            return None
        return self._fetch(self._select_user[lock], {"user_key": key})

    def get_by_customer_id(self, customer_id: str, *, lock: bool = False) -> BillingAccount | None:
        return self._fetch(self._select_customer[lock], {"customer_id": customer_id})

    def set_customer_id(self, user_id: str, customer_id: str) -> BillingAccount:
        account = self.apply(user_id, {"stripe_customer_id": customer_id})
        self.db.session.commit()
        return account

    def apply(self, user_id: str, changes: AccountChanges) -> BillingAccount:
        key = self._user_key(user_id)
        values = {
            field: self._storable(field, value)
            for field, value in changes.items()
            if field in self._field_columns
        }
        account = None
        if key is not None and values:
            connection = self.db.session.connection()
            returning = connection.dialect.update_returning
            statement = self._update_statement(frozenset(values), returning)
            params = {"user_key": key} | {f"new_{field}": value for field, value in values.items()}
            result = connection.execute(statement, params)
            row = result.first() if returning else None
            account = None if row is None else _account(row._mapping)
        if account is None and key is not None:
            account = self._fetch(self._select_user[False], {"user_key": key})
        if account is None:
            raise LookupError(f"no user {user_id!r}")
        return account

    def accounts_with_customer(self) -> list[BillingAccount]:
        """Every account linked to a Stripe customer, by user id (for ``flask billing sync``)."""
        customer = self._field_columns["stripe_customer_id"]
        statement = (
            sa.select(*self._labelled)
            .where(customer.is_not(None))
            .order_by(self._field_columns["user_id"])
        )
        return [_account(row._mapping) for row in self.db.session.execute(statement)]

    # EventLog

    @contextmanager
    def transaction(self) -> Iterator[None]:
        session = self.db.session
        try:
            yield
            session.commit()
        except BaseException as error:
            session.rollback()
            if isinstance(error, exc.OperationalError | exc.InterfaceError) or (
                isinstance(error, exc.DBAPIError) and error.connection_invalidated
            ):
                raise StoreUnavailableError(str(error.orig)) from error
            raise

    def record_event(self, event: StripeEvent, payload: str) -> EventRecord:
        """Insert the event, or count one more attempt: one statement, row locked.

        The record's ``payload`` is the one given (the same event id carries the
        same body); the stored one is kept from the first delivery.

        Two workers recording the same id at once: the database makes the second
        wait for the first to commit, then it finds the event as the first left it.
        """
        table = self.events_table
        session = self.db.session
        values = {
            "id": event.id,
            "type": event.type,
            "created": event.created,
            "customer_id": event.customer_id,
            "status": EventStatus.RECEIVED,
            "payload": payload,
            "attempts": 1,
            "received_at": utcnow(),
        }
        connection = session.connection()
        upsert = self._upsert_statement(connection.dialect)
        if upsert is not None:
            returned = connection.execute(upsert, values).one()._mapping
            return _event_record({**returned, "payload": payload})
        try:  # other databases: insert, or count the attempt on the existing row
            with session.begin_nested():
                session.execute(table.insert().values(**values))
        except exc.IntegrityError:
            session.execute(
                table.update().where(table.c.id == event.id).values(attempts=table.c.attempts + 1)
            )
        stored = session.execute(sa.select(table).where(table.c.id == event.id).with_for_update())
        return _event_record(stored.one()._mapping)

    def finish_event(
        self,
        event_id: str,
        status: str,
        *,
        user_id: str | None = None,
        error: str | None = None,
    ) -> None:
        self.db.session.connection().execute(
            self._finish,
            {
                "event_id": event_id,
                "new_status": status,
                "new_user_id": user_id,
                "new_error": error,
                "new_processed_at": utcnow(),
            },
        )

    def get_event(self, event_id: str) -> EventRecord | None:
        table = self.events_table
        row = self.db.session.execute(sa.select(table).where(table.c.id == event_id)).one_or_none()
        return None if row is None else _event_record(row._mapping)

    def list_events(
        self,
        *,
        statuses: Collection[str] | None = None,
        event_type: str | None = None,
        customer_id: str | None = None,
        limit: int | None = None,
        oldest_first: bool = False,
    ) -> list[EventRecord]:
        table = self.events_table
        statement = sa.select(table)
        if statuses is not None:
            statement = statement.where(table.c.status.in_(list(statuses)))
        if event_type is not None:
            statement = statement.where(table.c.type == event_type)
        if customer_id is not None:
            statement = statement.where(table.c.customer_id == customer_id)
        if oldest_first:
            statement = statement.order_by(table.c.created, table.c.received_at, table.c.id)
        else:
            statement = statement.order_by(table.c.received_at.desc(), table.c.id.desc())
        if limit is not None:
            statement = statement.limit(limit)
        rows = self.db.session.execute(statement)
        return [_event_record(row._mapping) for row in rows]

    def delete_events(self, *, before: datetime, statuses: Collection[str]) -> int:
        table = self.events_table
        result = self.db.session.execute(
            table.delete().where(
                table.c.received_at < as_utc(before), table.c.status.in_(list(statuses))
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    # helpers

    def _user_key(self, user_id: str) -> Any:
        """The primary-key value for this user id, or None when it can name no user.

        An id from a webhook (client_reference_id can come from a Payment Link URL)
        may not fit the column: it names no user, and must not make the database
        raise.
        """
        try:
            key = self._key_type(user_id)
        except (TypeError, ValueError):
            return None
        if isinstance(key, int) and not -(2**63) <= key < 2**63:
            return None
        return key

    def _storable(self, field: str, value: Any) -> Any:
        """A value as its column stores it; datetimes in UTC.

        Aware for ``DateTime(timezone=True)``; naive UTC for a column without a
        zone (an existing ``updated_at``, say), which PostgreSQL would otherwise
        shift into the session's time zone. SQLite drops the offset either way.
        """
        if not isinstance(value, datetime):
            return value
        utc = as_utc(value)
        timezone_aware = getattr(self._field_columns[field].type, "timezone", True)
        return utc if timezone_aware or utc is None else utc.replace(tzinfo=None)

    def _fetch(self, statement: sa.Select[Any], params: dict[str, Any]) -> BillingAccount | None:
        row = self.db.session.connection().execute(statement, params).first()
        return None if row is None else _account(row._mapping)

    def _update_statement(self, fields: frozenset[str], returning: bool) -> sa.Update:
        """``UPDATE users SET <fields> WHERE key = :user_key`` (built once per field set)."""
        cache_key = (fields, returning)
        if cache_key not in self._updates:
            statement = (
                sa.update(self._table)
                .where(self._by_user)
                .values({self._field_columns[f]: sa.bindparam(f"new_{f}") for f in fields})
            )
            if returning:
                statement = statement.returning(*self._labelled)
            self._updates[cache_key] = statement
        return self._updates[cache_key]

    def _upsert_statement(self, dialect: sa.Dialect) -> sa.Insert | None:
        """``INSERT … ON CONFLICT (id) DO UPDATE SET attempts + 1 RETURNING *``, if supported.

        The conflicting row is locked by the update, so two workers recording one
        event serialise: the second sees the event as the first committed it.
        """
        if dialect.name not in ("postgresql", "sqlite") or not dialect.insert_returning:
            return None
        if dialect.name not in self._upserts:
            table = self.events_table
            insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
            self._upserts[dialect.name] = (
                insert(table)
                .on_conflict_do_update(
                    index_elements=["id"], set_={"attempts": table.c.attempts + 1}
                )
                # Not the payload: it is what we just sent (Stripe resends the same).
                .returning(*(column for column in table.c if column.name != "payload"))
            )
        return self._upserts[dialect.name]


def _with_lock_variants(statement: sa.Select[Any]) -> dict[bool, sa.Select[Any]]:
    """The statement as is (False) and ``FOR UPDATE`` (True; ignored by SQLite)."""
    return {False: statement, True: statement.with_for_update()}


def _account(row: RowMapping) -> BillingAccount:
    """A BillingAccount from a row labelled with its field names (absent: defaults)."""
    email = row.get("email")
    return BillingAccount(
        user_id=str(row["user_id"]),
        email=None if email is None else str(email),
        stripe_customer_id=row.get("stripe_customer_id"),
        stripe_subscription_id=row.get("stripe_subscription_id"),
        plan=row.get("plan") or FREE_PLAN,
        subscription_status=row.get("subscription_status"),
        current_period_end=as_utc(row.get("current_period_end")),
        cancel_at_period_end=bool(row.get("cancel_at_period_end", False)),
        updated_at=as_utc(row.get("updated_at")),
        last_event_at=as_utc(row.get("last_event_at")),
    )


def _resolve_columns(
    model: type[Any], overrides: Mapping[str, str | None]
) -> dict[str, str | None]:
    """Check the mapping against the model; default names the model lacks become None."""
    unknown = set(overrides) - set(DEFAULT_COLUMNS) - {"user_id"}
    if unknown:
        raise ValueError(f"unknown BillingAccount fields in columns: {sorted(unknown)}")
    mapper = sa.inspect(model)
    primary_key = mapper.get_property_by_column(mapper.primary_key[0]).key
    resolved: dict[str, str | None] = {"user_id": overrides.get("user_id") or primary_key}
    for field, default in DEFAULT_COLUMNS.items():
        explicit = field in overrides
        attribute = overrides[field] if explicit else default
        if attribute is not None and not hasattr(model, attribute):
            if explicit or field in REQUIRED_FIELDS:
                raise ValueError(
                    f"{model.__name__} has no attribute {attribute!r} for {field!r}; "
                    "add BillingMixin or map it with columns={...}"
                )
            attribute = None
        if attribute is None and field in REQUIRED_FIELDS:
            raise ValueError(f"{field!r} needs a column on {model.__name__}")
        resolved[field] = attribute
    return resolved


def _event_record(row: Mapping[str, Any] | RowMapping) -> EventRecord:
    return EventRecord(
        id=row["id"],
        type=row["type"],
        created=as_utc(row["created"]),  # type: ignore[arg-type]
        customer_id=row["customer_id"],
        user_id=row["user_id"],
        status=row["status"],
        error=row["error"],
        payload=row["payload"],
        attempts=row["attempts"],
        received_at=as_utc(row["received_at"]),  # type: ignore[arg-type]
        processed_at=as_utc(row["processed_at"]),
    )
