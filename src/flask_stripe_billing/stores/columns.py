"""The billing columns a host model takes on, and how a store finds them on any model."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, mapped_column

from .._util import EXTENSION_KEY
from ..core.account import FREE_PLAN, BillingAccount

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


#: The deferred group of BillingMixin's columns added after 0.1.0 (``trial_end``,
#: ``subscription_quantity``): ``sa.orm.undefer_group(DEFERRED_GROUP)`` loads them with the
#: user.
DEFERRED_GROUP = "stripe_billing"


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
    """The billing columns, for a host model: ``class User(BillingMixin, db.Model)``; and
    read-only questions about the user's billing (``current_user.on_trial()``), answered
    from the store the current app's extension was set up with."""

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
    # Added after 0.1.0, so deferred: loading a user (Flask-Login's user_loader, a sign-in
    # query) does not select them, and works on a users table whose migration has not run
    # yet. The library reads them with its own statements, never through the instance;
    # reading ``user.trial_end`` loads both at once (``undefer_group`` in a listing).
    # ``evaluates_none``: an INSERT of a new user leaves them out unless set (the ORM would
    # name every column without a default, as NULL).
    trial_end: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True).evaluates_none(), deferred=True, deferred_group=DEFERRED_GROUP
    )
    subscription_quantity: Mapped[int | None] = mapped_column(
        sa.Integer().evaluates_none(), deferred=True, deferred_group=DEFERRED_GROUP
    )

    # Questions: each reads the account from the app's store (one read, with its Stripe
    # Entitlements and the app's past_due grace), as ``billing.account(user_id)`` does.

    @property
    def billing_account(self) -> BillingAccount:
        """This user's billing account as the app's store has it now.

        Needs an app context; LookupError for a user the store does not know (not saved).
        """
        state: Any = current_app.extensions.get(EXTENSION_KEY)
        if state is None:
            raise RuntimeError("StripeBilling is not set up on this app; call init_app(app)")
        key = getattr(state.user_store, "_key_attr", None) or _primary_key_of(type(self))
        account: BillingAccount = state.account_of(str(getattr(self, key)))
        return account

    def is_paying(self) -> bool:
        """Whether the subscription pays for access: active, trialing, or past_due in grace."""
        return self.billing_account.is_paying()

    def on_trial(self, now: datetime | None = None) -> bool:
        """Whether the subscription is trialing and its trial has not ended yet."""
        return self.billing_account.on_trial(now)

    def on_grace_period(self, now: datetime | None = None) -> bool:
        """Whether the subscription ends at a period end still ahead: access until then."""
        return self.billing_account.on_grace_period(now)

    def has_feature(self, name: str) -> bool:
        """Whether the user has the feature: an active Stripe entitlement, or their plan's
        in ``STRIPE_BILLING_FEATURES``."""
        state: Any = current_app.extensions[EXTENSION_KEY]
        return self.billing_account.has_feature(name, state.settings)


def _primary_key_of(model: type[Any]) -> str:
    """The attribute of a mapped model's (first) primary-key column."""
    mapper = sa.inspect(model)
    return str(mapper.get_property_by_column(mapper.primary_key[0]).key)


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
