"""The two apps measured: ours (the extension) and the baseline from the original guide.

Both use the same ``users`` table on the same database (``DATABASE_URL``) and
receive the same pre-signed payloads.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import stripe
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_stripe_billing import BillingMixin, SQLAlchemyUserStore, StripeBilling

SECRET = "whsec_benchmark_only"
PRO = "pro"

db = SQLAlchemy()


class User(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(sa.String(255))


store = SQLAlchemyUserStore(db, User)


def _base_app(database_url: str | None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url or os.environ["DATABASE_URL"],
        STRIPE_WEBHOOK_SECRET=SECRET,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 5} if _is_postgres(database_url) else {},
    )
    db.init_app(app)
    return app


def create_ours(database_url: str | None = None) -> Flask:
    """The host app with Flask-Stripe-Billing: event log, ordering guard, signals."""
    app = _base_app(database_url)
    StripeBilling(app, user_store=store)
    return app


def create_baseline(database_url: str | None = None) -> Flask:
    """What the original guide does: construct_event, one UPDATE by customer, commit."""
    app = _base_app(database_url)

    @app.post("/stripe/webhook")
    def webhook() -> Any:
        payload = request.get_data()
        try:
            event = stripe.Webhook.construct_event(
                payload, request.headers.get("Stripe-Signature"), SECRET
            )
        except (ValueError, stripe.SignatureVerificationError) as error:
            return jsonify(error="validation_error", message=str(error)), 400
        obj = event["data"]["object"]
        plan, status = _guide_rules(event["type"], obj)
        if status is not None:
            db.session.execute(
                sa.text(
                    "UPDATE users SET plan = COALESCE(:plan, plan),"
                    " stripe_subscription_status = :status, updated_at = :now"
                    " WHERE stripe_customer_id = :customer"
                ),
                {
                    "plan": plan,
                    "status": status,
                    "now": datetime.now(UTC),
                    "customer": _field(obj, "customer"),
                },
            )
            db.session.commit()
        return jsonify(received=True)

    return app


def create_raw_baseline(database_url: str | None = None) -> Flask:
    """The least a handler can do: verify_header, json.loads, one UPDATE, commit; no log."""
    app = _base_app(database_url)

    @app.post("/stripe/webhook")
    def webhook() -> Any:
        payload = request.get_data()
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode("utf-8"), request.headers.get("Stripe-Signature", ""), SECRET
            )
            event = json.loads(payload)
        except (ValueError, stripe.SignatureVerificationError) as error:
            return jsonify(error="validation_error", message=str(error)), 400
        obj = event["data"]["object"]
        plan, status = _guide_rules(event["type"], obj)
        if status is not None:
            db.session.execute(
                _RAW_UPDATE,
                {
                    "plan": plan,
                    "status": status,
                    "now": datetime.now(UTC),
                    "customer": obj.get("customer"),
                },
            )
            db.session.commit()
        return jsonify(received=True)

    return app


_RAW_UPDATE = sa.text(
    "UPDATE users SET plan = COALESCE(:plan, plan),"
    " stripe_subscription_status = :status, updated_at = :now"
    " WHERE stripe_customer_id = :customer"
)


def _guide_rules(event_type: str, obj: Any) -> tuple[str | None, str | None]:
    """The guide's rules: checkout → pro/active; active/trialing → pro; deleted → free."""
    if event_type == "checkout.session.completed":
        return PRO, "active"
    if event_type in ("customer.subscription.created", "customer.subscription.updated"):
        status = _field(obj, "status")
        return (PRO if status in ("active", "trialing") else None), status
    if event_type == "customer.subscription.deleted":
        return "free", "canceled"
    return None, None


def _field(obj: Any, name: str) -> Any:
    """A field of a stripe.StripeObject (not a dict in stripe-python 16), or None."""
    try:
        return obj[name]
    except KeyError:
        return None


def create_tables(app: Flask, users: int) -> None:
    """Fresh tables with ``users`` users, user i linked to customer ``cus_bench_i``."""
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.session.execute(
            User.__table__.insert(),
            [
                {"id": i, "email": f"u{i}@example.com", "stripe_customer_id": f"cus_bench_{i}"}
                for i in range(1, users + 1)
            ],
        )
        db.session.commit()


def fill_event_table(app: Flask, rows: int) -> None:
    """Pre-fill the event log with ``rows`` processed events (the scale run)."""
    with app.app_context():
        engine = db.engine
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(
                    sa.text(
                        "INSERT INTO stripe_billing_events (id, type, created, customer_id,"
                        " status, payload, attempts, received_at, processed_at)"
                        " SELECT 'evt_fill_' || g, 'customer.subscription.updated', now(),"
                        " 'cus_fill_' || (g % 1000), 'processed', '{}', 1, now(), now()"
                        " FROM generate_series(1, :rows) AS g"
                    ),
                    {"rows": rows},
                )
            else:
                connection.execute(
                    sa.text(
                        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g"
                        " WHERE n < :rows)"
                        " INSERT INTO stripe_billing_events (id, type, created, customer_id,"
                        " status, payload, attempts, received_at, processed_at)"
                        " SELECT 'evt_fill_' || n, 'customer.subscription.updated',"
                        " '2026-01-01 00:00:00', 'cus_fill_' || (n % 1000), 'processed',"
                        " '{}', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM g"
                    ),
                    {"rows": rows},
                )


def _is_postgres(url: str | None) -> bool:
    return (url or os.environ.get("DATABASE_URL", "")).startswith("postgresql")
