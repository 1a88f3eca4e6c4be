"""The app's pages: a demo login, pricing with the Upgrade buttons, the success page, and two
gated pages: /pro by plan, /export by feature."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user
from werkzeug.wrappers import Response

from flask_stripe_billing import BillingError

from .extensions import billing, db
from .models import User

bp = Blueprint("main", __name__)


@bp.get("/")
def index() -> str:
    """Who is signed in, on which plan."""
    return render_template("index.html")


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    """DEMO ONLY: sign in with an e-mail address alone, no password (made on first use).

    A real app checks a password, a magic link or an identity provider here;
    everything else in this example stays the same.
    """
    if request.method == "GET":
        return render_template("login.html")
    email = request.form.get("email", "").strip().lower()
    if "@" not in email:
        flash("Enter an e-mail address.")
        return render_template("login.html"), 400  # type: ignore[return-value]
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        user = User(email=email)
        db.session.add(user)
        db.session.commit()
    login_user(user)
    return redirect(url_for("main.pricing"))


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    return redirect(url_for("main.index"))


@bp.get("/pricing")
def pricing() -> str:
    """The Upgrade buttons (Stripe Checkout) and Manage billing (the Billing portal)."""
    return render_template("pricing.html")


@bp.get("/billing/success")
@login_required
def billing_success() -> str:
    """Where Checkout sends the user back: apply the session now, before its webhook."""
    note = None
    session_id = request.args.get("session_id")
    if session_id:
        try:
            billing.sync_checkout_session(session_id)
        except BillingError as error:  # e.g. Stripe unreachable: the webhook will do it
            note = f"{error.message}; your plan changes when Stripe's webhook arrives."
    return render_template("success.html", note=note)


@bp.get("/pro")
@billing.plan_required("pro")
def pro() -> str:
    """A page only users on the pro plan see; the others go to pricing (or sign-in)."""
    return render_template("pro.html")


@bp.get("/export")
@billing.feature_required("export")
def export() -> str:
    """A page for plans that include the ``export`` feature (STRIPE_BILLING_FEATURES)."""
    return render_template("export.html")
