"""The app's own user table; BillingMixin adds the columns the extension keeps right."""

from __future__ import annotations

from datetime import datetime

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
    #: 0.1's account-wide watermark: 0.2 neither reads nor writes it. Kept while 0.1
    #: may still run (a rolling deploy, a rollback); a later migration drops it.
    stripe_last_event_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def is_pro(self) -> bool:
        """On a paid plan (the extension sets ``plan``; "free" is the unpaid one)."""
        return self.plan != "free"


@login.user_loader
def load_user(user_id: str) -> User | None:
    """Flask-Login's callback: the user the session cookie names."""
    return db.session.get(User, int(user_id))
