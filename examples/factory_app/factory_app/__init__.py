"""Flask-Stripe-Billing in an app factory, with Flask-Login and Flask-Migrate.

Run it from examples/factory_app/ (see its README.md)::

    flask --app factory_app db upgrade
    flask --app factory_app run
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from flask_stripe_billing import SQLAlchemyUserStore, signals

from .extensions import billing, csrf, db, login, migrate
from .models import User
from .notifications import on_plan_changed

#: The Alembic migrations, found wherever ``flask`` is started from.
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
#: Where ``flask run`` serves the app; Checkout sends the user back here.
BASE_URL = "http://127.0.0.1:5000"
DEFAULT_URLS = {
    "STRIPE_SUCCESS_URL": BASE_URL + "/billing/success?session_id={CHECKOUT_SESSION_ID}",
    "STRIPE_CANCEL_URL": BASE_URL + "/pricing",
    # Where the gates of /pro and /export send browsers: endpoint names.
    "STRIPE_BILLING_PRICING_URL": "main.pricing",
    "STRIPE_BILLING_LOGIN_URL": "main.login",
    # What each plan includes, for @billing.feature_required (a JSON object in the environment).
    "STRIPE_BILLING_FEATURES": '{"pro": ["export"]}',
    # This app renders its own thank-you page at /billing/success (views.billing_success),
    # so the extension's default success route is off.
    "STRIPE_BILLING_SUCCESS_ROUTE": "false",
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A new app; ``config`` wins over the defaults and the environment."""
    app = Flask(__name__)
    app.config.update(
        # A relative SQLite path lives in the instance folder (created on start).
        SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL", "sqlite:///factory_app.db"),
        # Signs the session cookie (random when unset: everyone is signed out on restart).
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_hex(16),
        SESSION_COOKIE_SAMESITE="Lax",
    )
    for name, url in DEFAULT_URLS.items():
        if not os.environ.get(name):
            app.config[name] = url  # this app's own pages
    # The extension reads the other STRIPE_* settings from the environment itself.
    app.config.update(config or {})
    app.logger.setLevel(logging.INFO)  # show the plan-change messages

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    login.init_app(app)
    csrf.init_app(app)  # the extension exempts its webhook; the buttons carry the token
    # Routes: POST /stripe/webhook, POST /billing/checkout-session, GET /billing/portal.
    # The current user is Flask-Login's: no current_user_id to pass.
    billing.init_app(app, user_store=SQLAlchemyUserStore(db, User))
    signals.plan_changed.connect(on_plan_changed, sender=app)

    from .views import bp

    app.register_blueprint(bp)
    return app
