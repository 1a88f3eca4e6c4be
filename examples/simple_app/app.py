"""A small host app: a SQLite user table whose plans Flask-Stripe-Billing keeps right.

Run it with ``make run`` (or ``flask --app examples/simple_app/app.py run``) and
point the Stripe CLI at it::

    stripe listen --forward-to localhost:5000/stripe/webhook

Configuration comes from the environment: the extension reads every
``STRIPE_*`` setting there, and ``DATABASE_URL`` replaces the SQLite file in the
instance folder. Without ``STRIPE_WEBHOOK_SECRET`` the app uses a demo secret so
that ``examples/demo.py`` can sign events for it; real Stripe events need the
secret that ``stripe listen`` (or the Dashboard) shows.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, render_template_string
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_stripe_billing import (
    BillingAccount,
    BillingMixin,
    SQLAlchemyUserStore,
    StripeBilling,
    StripeEvent,
    signals,
)

#: DEMO ONLY, not a secret: lets the scripted demo sign events for this app.
#: Set STRIPE_WEBHOOK_SECRET (from `stripe listen` or the Dashboard) for real events.
DEMO_WEBHOOK_SECRET = "whsec_demo_only_not_secret"

db = SQLAlchemy()


class User(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
    """The host's own user table; BillingMixin adds plan, Stripe ids and status."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(255), unique=True)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The example app; ``config`` overrides the defaults and the environment."""
    app = Flask(__name__)
    # A relative SQLite path lives in the app's instance folder (created on start).
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
        "DATABASE_URL", "sqlite:///simple_app.db"
    )
    app.config.update(config or {})
    if not (app.config.get("STRIPE_WEBHOOK_SECRET") or os.environ.get("STRIPE_WEBHOOK_SECRET")):
        app.config["STRIPE_WEBHOOK_SECRET"] = DEMO_WEBHOOK_SECRET
        app.logger.warning(
            "STRIPE_WEBHOOK_SECRET is not set: using the DEMO secret; real Stripe events will fail"
        )
    app.logger.setLevel(logging.INFO)  # show the plan-change messages below

    db.init_app(app)
    StripeBilling(app, user_store=SQLAlchemyUserStore(db, User))
    with app.app_context():
        db.create_all()  # also creates the extension's stripe_billing_events table
        seed_demo_users()

    app.add_url_rule("/", view_func=index)
    app.add_url_rule("/users/<int:user_id>", view_func=show_user)
    return app


def seed_demo_users() -> None:
    """alice is already a Stripe customer; bob will become one through Checkout."""
    if db.session.get(User, 1) is None:
        db.session.add(User(id=1, email="alice@example.com", stripe_customer_id="cus_demo_alice"))
    if db.session.get(User, 2) is None:
        db.session.add(User(id=2, email="bob@example.com"))
    db.session.commit()


@signals.plan_changed.connect
def on_plan_changed(
    app: Flask,
    *,
    user_id: str,
    old_plan: str,
    new_plan: str,
    account: BillingAccount,
    event: StripeEvent,
    **extra: Any,
) -> None:
    """Where a real app would send a mail or unlock features."""
    if new_plan == "free":
        app.logger.info("Downgrade: %s is back on free (was %s)", account.email, old_plan)
    else:
        app.logger.info("Welcome to %s, %s! (was %s)", new_plan, account.email, old_plan)


PAGE = """<!doctype html>
<title>Flask-Stripe-Billing example</title>
<h1>Users</h1>
<table border="1" cellpadding="4">
  <tr><th>id</th><th>email</th><th>plan</th><th>subscription</th><th>customer</th></tr>
  {% for user in users %}
  <tr>
    <td><a href="{{ url_for('show_user', user_id=user.id) }}">{{ user.id }}</a></td>
    <td>{{ user.email }}</td>
    <td>{{ user.plan }}</td>
    <td>{{ user.stripe_subscription_status or "-" }}</td>
    <td>{{ user.stripe_customer_id or "-" }}</td>
  </tr>
  {% endfor %}
</table>
<p>Stripe sends its events to <code>POST /stripe/webhook</code>.</p>
"""


def index() -> str:
    """Every user with plan and subscription status."""
    users = db.session.scalars(sa.select(User).order_by(User.id)).all()
    return render_template_string(PAGE, users=users)


def show_user(user_id: int) -> dict[str, Any]:
    """One user's billing state as JSON."""
    user = db.get_or_404(User, user_id)
    return {
        "id": user.id,
        "email": user.email,
        "plan": user.plan,
        "stripe_customer_id": user.stripe_customer_id,
        "stripe_subscription_id": user.stripe_subscription_id,
        "subscription_status": user.stripe_subscription_status,
        "current_period_end": _iso(user.current_period_end),
        "cancel_at_period_end": user.cancel_at_period_end,
        "updated_at": _iso(user.updated_at),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def __getattr__(name: str) -> Any:
    """The module-level ``app``, made on first use.

    ``flask --app examples/simple_app/app.py run`` and WSGI servers
    (``gunicorn app:app``) find it as usual, while importing this module for
    ``create_app`` (as examples/demo.py does) creates no database.
    """
    if name == "app":
        app = globals()["app"] = create_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
