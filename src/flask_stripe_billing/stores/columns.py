"""The billing columns a host model takes on, and how a store finds them on any model."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..core.account import FREE_PLAN

DEFAULT_COLUMNS: dict[str, str] = {
    "email": "email",
    "stripe_customer_id": "stripe_customer_id",
    "stripe_subscription_id": "stripe_subscription_id",
    "plan": "plan",
    "subscription_status": "stripe_subscription_status",
    "current_period_end": "current_period_end",
    "cancel_at_period_end": "cancel_at_period_end",
    "updated_at": "updated_at",
    "trial_end": "trial_end",
    "subscription_quantity": "subscription_quantity",
}


#: Fields the store cannot work without.
REQUIRED_FIELDS = frozenset(
    {"stripe_customer_id", "stripe_subscription_id", "plan", "subscription_status"}
)


#: Fields of version 1 that are gone, with what replaced them.
REMOVED_FIELDS = {
    "last_event_at": "each subscription record keeps its own ordering watermark now; "
    "remove it from columns={...} (the column may stay in the table)",
}


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
    trial_end: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    subscription_quantity: Mapped[int | None] = mapped_column(sa.Integer)


def resolve_columns(model: type[Any], overrides: Mapping[str, str | None]) -> dict[str, str | None]:
    """BillingAccount field → the model's attribute (None: the model has none), checked
    against the model; ``user_id`` defaults to the primary key."""
    for field, replacement in REMOVED_FIELDS.items():
        if field in overrides:
            raise ValueError(f"{field!r} is no longer a BillingAccount field: {replacement}")
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
