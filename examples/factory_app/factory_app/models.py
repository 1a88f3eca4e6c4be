"""The app's own user table; BillingMixin adds the columns the extension keeps right."""

from __future__ import annotations

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column

from flask_stripe_billing import BillingMixin

from .extensions import db, login


class User(UserMixin, BillingMixin, db.Model):  # type: ignore[name-defined, misc]
    """A user: id and e-mail, plus plan, Stripe ids and subscription status."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(255), unique=True)

    @property
    def is_pro(self) -> bool:
        """On a paid plan (the extension sets ``plan``; "free" is the unpaid one)."""
        return self.plan != "free"


@login.user_loader
def load_user(user_id: str) -> User | None:
    """Flask-Login's callback: the user the session cookie names."""
    return db.session.get(User, int(user_id))
