"""Billing an organisation instead of a user, end to end: Flask-Login members sign in,
Checkout is for their organisation (with seats), the webhook updates the organisation,
and gates open by the organisation's plan. Stripe's HTTP API mocked with responses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import responses
import sqlalchemy as sa
import sqlalchemy.orm
from conftest import DATABASE_URL
from flask import Flask, render_template_string
from flask_login import LoginManager, UserMixin, current_user, login_user
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column
from support import SECRET, post_event, subscription_event
from test_checkout import API, CUSTOMER, SESSION, form, stripe_calls
from test_seats import with_quantity

from flask_stripe_billing import BillingMixin, SQLAlchemyUserStore, StripeBilling
from flask_stripe_billing.testing import record_signals

ACME, GLOBEX = 10, 20
CONFIG = {
    "STRIPE_API_KEY": "sk_test_51OrganisationKey00000000",
    "STRIPE_WEBHOOK_SECRET": SECRET,
    "STRIPE_BILLING_PLANS": {"price_team": "team"},
    "STRIPE_BILLING_FEATURES": {"team": ["export"]},
    "STRIPE_BILLING_PRICING_URL": "/pricing",
    "STRIPE_SEATS_MAX": 50,
    "STRIPE_SUCCESS_URL": "https://app.example.com/welcome",
    "STRIPE_CANCEL_URL": "https://app.example.com/pricing",
}


@dataclass
class TeamApp:
    app: Flask
    db: SQLAlchemy
    Organisation: Any

    def organisation(self, organisation_id: int) -> Any:
        with self.app.app_context():
            loaded = [sa.orm.undefer_group("stripe_billing")]  # BillingMixin's deferred ones
            row = self.db.session.get(self.Organisation, organisation_id, options=loaded)
            self.db.session.expunge(row)
            return row

    def signed_in(self, member_id: int) -> Any:
        client = self.app.test_client()
        assert client.get(f"/login/{member_id}").status_code == 204
        return client


@pytest.fixture
def team_app() -> Iterator[TeamApp]:
    """An app whose billable is the Organisation; members sign in with Flask-Login."""
    db = SQLAlchemy()

    class Organisation(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "organisations"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(100))
        billing_email: Mapped[str | None] = mapped_column(sa.String(255))

    class Member(UserMixin, db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "members"
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(sa.String(255))
        organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"))

    app = Flask(__name__)
    app.config.update(
        TESTING=True, SECRET_KEY="test", SQLALCHEMY_DATABASE_URI=DATABASE_URL, **CONFIG
    )
    db.init_app(app)
    login = LoginManager(app)
    login.user_loader(lambda member_id: db.session.get(Member, int(member_id)))

    def organisation_id() -> str | None:
        """Who pays: the signed-in member's organisation."""
        if not current_user.is_authenticated:
            return None
        return str(current_user.organisation_id)

    billing = StripeBilling(
        app,
        user_store=SQLAlchemyUserStore(db, Organisation, columns={"email": "billing_email"}),
        current_user_id=organisation_id,
    )

    @app.get("/login/<int:member_id>")
    def sign_in(member_id: int) -> tuple[str, int]:
        login_user(db.session.get(Member, member_id))
        return "", 204

    @app.get("/pricing")
    def pricing() -> str:
        return "pricing"

    @app.get("/reports")
    @billing.plan_required("team")
    def reports() -> str:
        return render_template_string(
            "{{ current_user.email }}: {{ billing_account.plan }}, "
            "{{ billing_account.seats }} seats"
        )

    @app.get("/export")
    @billing.feature_required("export")
    def export() -> str:
        return "export"

    with app.app_context():
        db.drop_all()
        db.create_all()
        db.session.add_all(
            [
                Organisation(id=ACME, name="Acme", billing_email="billing@acme.example"),
                Organisation(id=GLOBEX, name="Globex"),
            ]
        )
        db.session.flush()  # the organisations before their members (a foreign key)
        db.session.add_all(
            [
                Member(id=1, email="alice@acme.example", organisation_id=ACME),
                Member(id=2, email="carol@acme.example", organisation_id=ACME),
                Member(id=3, email="bob@globex.example", organisation_id=GLOBEX),
            ]
        )
        db.session.commit()
    yield TeamApp(app, db, Organisation)
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def test_a_member_buys_seats_for_the_organisation_and_every_member_gets_in(
    team_app: TeamApp, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)
    alice, carol, bob = (team_app.signed_in(member) for member in (1, 2, 3))

    # Before paying: the team page sends browsers to pricing, JSON callers get 402.
    refused = alice.get("/reports")
    assert (refused.status_code, refused.headers["Location"]) == (302, "/pricing")
    as_json = alice.get("/reports", headers={"Accept": "application/json"})
    assert as_json.status_code == 402
    assert as_json.json["details"] == {"required_plans": ["team"], "current_plan": "free"}

    # Alice buys 5 seats of the team plan: the customer and the session are Acme's.
    answer = alice.post("/billing/checkout-session", json={"price_id": "price_team", "quantity": 5})
    assert answer.status_code == 200
    (customer_call,) = stripe_calls(stripe_api, "/customers")
    assert form(customer_call) == {
        "email": "billing@acme.example",
        "metadata[user_id]": str(ACME),
    }
    (session_call,) = stripe_calls(stripe_api, "/checkout/sessions")
    sent = form(session_call)
    assert (sent["client_reference_id"], sent["metadata[user_id]"]) == (str(ACME), str(ACME))
    assert (sent["line_items[0][price]"], sent["line_items[0][quantity]"]) == ("price_team", "5")
    assert team_app.organisation(ACME).stripe_customer_id == CUSTOMER["id"]

    # Stripe's webhook: Acme's subscription to 5 seats of the team plan.
    event = with_quantity(
        subscription_event(
            "customer.subscription.created",
            customer=CUSTOMER["id"],
            subscription="sub_acme",
            price="price_team",
            user_id=str(ACME),
        ),
        5,
    )
    with record_signals() as signalled:
        assert post_event(team_app.app.test_client(), event).status_code == 200

    acme = team_app.organisation(ACME)
    assert (acme.plan, acme.stripe_subscription_status) == ("team", "active")
    assert (acme.stripe_subscription_id, acme.subscription_quantity) == ("sub_acme", 5)
    assert team_app.organisation(GLOBEX).plan == "free"
    plan = signalled["plan_changed"]
    assert [(c["user_id"], c["new_plan"]) for c in plan] == [(str(ACME), "team")]
    seats = signalled["seats_changed"]
    assert [(c["user_id"], c["old_seats"], c["new_seats"]) for c in seats] == [(str(ACME), None, 5)]

    # Every Acme member is in; Globex's member is not.
    for client, email in ((alice, "alice@acme.example"), (carol, "carol@acme.example")):
        page = client.get("/reports")
        assert page.status_code == 200
        assert page.get_data(as_text=True) == f"{email}: team, 5 seats"
        assert client.get("/export").status_code == 200
    assert bob.get("/reports").headers["Location"] == "/pricing"
    assert bob.get("/export", headers={"Accept": "application/json"}).status_code == 403


def test_a_second_checkout_for_a_paying_organisation_is_409(
    team_app: TeamApp, stripe_api: responses.RequestsMock
) -> None:
    event = subscription_event(
        customer="cus_acme", subscription="sub_acme", price="price_team", user_id=str(ACME)
    )
    assert post_event(team_app.app.test_client(), event).status_code == 200

    answer = team_app.signed_in(2).post(
        "/billing/checkout-session", json={"price_id": "price_team", "quantity": 3}
    )

    assert answer.status_code == 409
    assert len(stripe_api.calls) == 0


def test_checkout_for_a_member_signed_out_is_401(
    team_app: TeamApp, stripe_api: responses.RequestsMock
) -> None:
    answer = team_app.app.test_client().post("/billing/checkout-session", json={})

    assert answer.status_code == 401
    assert answer.json["error"] == "authentication_error"
    assert len(stripe_api.calls) == 0
