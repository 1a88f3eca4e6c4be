"""A store over the host's Flask-SQLAlchemy user model, plus the event-log table."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite
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
        sa.Boolean, default=False, server_default=sa.false(), nullable=False
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
        key_column = sa.inspect(model).get_property(self._key_attr).columns[0]
        self._key_type: type[Any] = key_column.type.python_type

    # UserStore

    def get(self, user_id: str, *, lock: bool = False) -> BillingAccount | None:
        user = self._load_user(user_id, lock)
        return None if user is None else self._account(user)

    def get_by_customer_id(self, customer_id: str, *, lock: bool = False) -> BillingAccount | None:
        column = getattr(self.model, self.columns["stripe_customer_id"] or "")
        user = self._load(column == customer_id, lock)
        return None if user is None else self._account(user)

    def set_customer_id(self, user_id: str, customer_id: str) -> BillingAccount:
        account = self.apply(user_id, {"stripe_customer_id": customer_id})
        self.db.session.commit()
        return account

    def apply(self, user_id: str, changes: AccountChanges) -> BillingAccount:
        user = self._load_user(user_id, lock=False)
        if user is None:
            raise LookupError(f"no user {user_id!r}")
        for field, value in changes.items():
            attribute = self.columns.get(field)
            if attribute is not None:
                # In UTC: SQLite would keep the wall time and drop the offset.
                setattr(user, attribute, as_utc(value) if isinstance(value, datetime) else value)
        self.db.session.flush()
        return self._account(user)

    def accounts_with_customer(self) -> list[BillingAccount]:
        """Every account linked to a Stripe customer, by user id (for ``flask billing sync``)."""
        column = getattr(self.model, self.columns["stripe_customer_id"] or "")
        key = getattr(self.model, self._key_attr)
        statement = sa.select(self.model).where(column.is_not(None)).order_by(key)
        return [self._account(user) for user in self.db.session.scalars(statement)]

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
        if not self._insert_if_absent(values):
            session.execute(
                table.update().where(table.c.id == event.id).values(attempts=table.c.attempts + 1)
            )
        row = session.execute(
            sa.select(table).where(table.c.id == event.id).with_for_update()
        ).one()
        return _event_record(dict(row._mapping))

    def finish_event(
        self,
        event_id: str,
        status: str,
        *,
        user_id: str | None = None,
        error: str | None = None,
    ) -> None:
        table = self.events_table
        self.db.session.execute(
            table.update()
            .where(table.c.id == event_id)
            .values(status=status, user_id=user_id, error=error, processed_at=utcnow())
        )

    def get_event(self, event_id: str) -> EventRecord | None:
        table = self.events_table
        row = self.db.session.execute(sa.select(table).where(table.c.id == event_id)).one_or_none()
        return None if row is None else _event_record(dict(row._mapping))

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
        return [_event_record(dict(row._mapping)) for row in rows]

    def delete_events(self, *, before: datetime, statuses: Collection[str]) -> int:
        table = self.events_table
        result = self.db.session.execute(
            table.delete().where(
                table.c.received_at < as_utc(before), table.c.status.in_(list(statuses))
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    # helpers

    def _load_user(self, user_id: str, lock: bool) -> Any:
        """The model instance whose ``user_id`` column matches, or None."""
        try:
            key = self._key_type(user_id)
        except (TypeError, ValueError):
            return None
        column = getattr(self.model, self._key_attr)
        if isinstance(key, int):
            # An id from a webhook (client_reference_id can come from a Payment Link
            # URL) may not fit the column: it names no user, and must not make the
            # database raise. Compare as 64-bit (int4 columns overflow otherwise).
            if not -(2**63) <= key < 2**63:
                return None
            return self._load(column == sa.literal(key, sa.BigInteger), lock)
        return self._load(column == key, lock)

    def _load(self, condition: sa.ColumnElement[bool], lock: bool) -> Any:
        statement = sa.select(self.model).where(condition)
        if lock:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return self.db.session.execute(statement).scalar_one_or_none()

    def _insert_if_absent(self, values: dict[str, Any]) -> bool:
        """Insert the event row unless one with its id exists; True if inserted.

        Two workers inserting the same id at once: the database makes the second
        wait for the first to commit, then skip, so one of them processes it.
        """
        session = self.db.session
        dialect = session.get_bind().dialect
        if dialect.name in ("postgresql", "sqlite"):
            insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
            statement = (
                insert(self.events_table)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["id"])
            )
            if dialect.insert_returning:
                # rowcount is -1 here with psycopg 3 under SQLAlchemy 2.1; RETURNING is exact.
                inserted = statement.returning(self.events_table.c.id)
                return session.execute(inserted).first() is not None
            return session.execute(statement).rowcount == 1  # type: ignore[attr-defined, no-any-return]
        try:
            with session.begin_nested():
                session.execute(self.events_table.insert().values(**values))
        except exc.IntegrityError:
            return False
        return True

    def _account(self, user: Any) -> BillingAccount:
        def value(field: str, default: Any = None) -> Any:
            attribute = self.columns.get(field)
            return default if attribute is None else getattr(user, attribute)

        email = value("email")
        return BillingAccount(
            user_id=str(getattr(user, self._key_attr)),
            email=None if email is None else str(email),
            stripe_customer_id=value("stripe_customer_id"),
            stripe_subscription_id=value("stripe_subscription_id"),
            plan=value("plan") or FREE_PLAN,
            subscription_status=value("subscription_status"),
            current_period_end=as_utc(value("current_period_end")),
            cancel_at_period_end=bool(value("cancel_at_period_end", False)),
            updated_at=as_utc(value("updated_at")),
            last_event_at=as_utc(value("last_event_at")),
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


def _event_record(row: Mapping[str, Any]) -> EventRecord:
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
