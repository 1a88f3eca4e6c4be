"""A Flask app on raw sqlite3 (Flask's tutorial style) whose users' plans
Flask-Stripe-Billing keeps right, through ``DBAPIUserStore``: no SQLAlchemy models.

Run it::

    flask --app examples/sqlite3_app/sqlite3_app init-db
    flask --app examples/sqlite3_app/sqlite3_app run

Pages: ``/`` (every user and plan, as JSON), ``/login/<id>`` (a stand-in for a
real login: remembers the user in the session), ``/pro`` (paid plans only).
Without ``STRIPE_WEBHOOK_SECRET`` in the environment the app uses a demo
secret, so a test (or ``flask billing trigger``) can sign events for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, session

from flask_stripe_billing import DBAPIUserStore, StripeBilling

from . import db

#: DEMO ONLY, not a secret: set STRIPE_WEBHOOK_SECRET for real events.
DEMO_WEBHOOK_SECRET = "whsec_demo_only_not_secret"

# The billing wiring: the store reads and writes the `user` table through get_db().
billing = StripeBilling(
    user_store=DBAPIUserStore(db.get_db, users_table="user"),
    current_user_id=lambda: session.get("user_id"),
)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app; ``config`` overrides the defaults and the environment."""
    app = Flask(__name__, instance_path=str(Path(__file__).parent / "instance"))
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY", "dev"),
        DATABASE=os.path.join(app.instance_path, "app.sqlite"),
        STRIPE_WEBHOOK_SECRET=os.environ.get("STRIPE_WEBHOOK_SECRET", DEMO_WEBHOOK_SECRET),
    )
    app.config.update(config or {})
    os.makedirs(app.instance_path, exist_ok=True)
    db.init_app(app)
    billing.init_app(app)

    @app.get("/")
    def users() -> Any:
        rows = db.get_db().execute(
            "SELECT id, username, plan, stripe_subscription_status FROM user ORDER BY id"
        )
        return [dict(row) for row in rows]

    @app.get("/login/<int:user_id>")
    def login(user_id: int) -> Any:
        session["user_id"] = str(user_id)
        return {"user_id": user_id}

    @app.get("/pro")
    @billing.plan_required()
    def pro() -> Any:
        return {"message": f"Welcome, user {session['user_id']}: this page is for paying users."}

    return app
