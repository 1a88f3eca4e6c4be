"""A small host app: a SQLite user table whose plans Flask-Stripe-Billing keeps right.

Pages: ``/`` (the users), ``/pricing`` (Upgrade and Manage billing buttons, and Buy
credits: a one-time product, ``credits_100`` in ``STRIPE_BILLING_PRODUCTS``, with the
user's credits and purchases),
``/billing/success`` (the extension's own: where Checkout sends the user back; it
applies the session and redirects to ``/account`` with a flash message), two gated pages:
``/pro`` for users on a paid plan (``billing.plan_required()``) and ``/export``
for plans that include the ``export`` feature (``billing.feature_required``,
``STRIPE_BILLING_FEATURES``); others are sent to the pricing page, JSON
callers get 402 / 403; ``POST /api/convert``, a metered call reporting usage
(``billing.report_usage``, a quota per plan); and ``/settings`` (the app's own page that cancels,
resumes and switches the plan through the extension's JSON routes,
``templates/settings.html``), and ``/account``, the same without JavaScript: the
extension's ``billing_settings()`` partial and its form buttons; and ``/billing/admin``,
the extension's operations page (the event log, accounts, replay / link / sync), which
only alice may open. The example has no real login: add ``?as=2`` to any page to act
as user 2 from then on (remembered in the session), ``?as=`` to act as nobody.

Credits are the app's own: a ``purchase_completed`` receiver grants 100 credits a pack
times the quantity (a ``credit_grants`` row keyed by the purchase id, so a purchase is
granted once), and they are taken back, all of them, when the purchase is fully refunded
(``purchase_refunded`` with ``fully_refunded``) or its dispute is lost
(``purchase_disputed``). A partial refund takes nothing back: it is a goodwill gesture or
a price adjustment, and the customer keeps the pack. A user's balance is the sum of their
grants not taken back (a real app would subtract what was spent, and may let a refund
take the balance below zero). See docs/purchases.md.

Run it with ``make run`` (or ``flask --app examples/simple_app/app.py run``) and
point the Stripe CLI at it::

    stripe listen --forward-to localhost:5000/stripe/webhook

Configuration comes from the environment: the extension reads every
``STRIPE_*`` setting there, and ``DATABASE_URL`` replaces the SQLite file in the
instance folder. Without ``STRIPE_WEBHOOK_SECRET`` the app uses a demo secret so
that ``examples/demo.py`` can sign events for it; real Stripe events need the
secret that ``stripe listen`` (or the Dashboard) shows. Without
``STRIPE_API_KEY`` the buttons answer "Stripe billing is not configured".
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import (
    Flask,
    current_app,
    render_template,
    render_template_string,
    request,
    session,
)
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_stripe_billing import (
    BillingAccount,
    BillingMixin,
    PurchaseRecord,
    SQLAlchemyUserStore,
    StripeBilling,
    StripeEvent,
    signals,
)

#: DEMO ONLY, not a secret: lets the scripted demo sign events for this app.
#: Set STRIPE_WEBHOOK_SECRET (from `stripe listen` or the Dashboard) for real events.
DEMO_WEBHOOK_SECRET = "whsec_demo_only_not_secret"
#: Where ``make run`` serves the app; Checkout sends the user back here.
BASE_URL = "http://127.0.0.1:5000"
DEFAULTS = {
    "STRIPE_SUCCESS_URL": BASE_URL + "/billing/success?session_id={CHECKOUT_SESSION_ID}",
    "STRIPE_CANCEL_URL": BASE_URL + "/pricing",
    # Where the /pro gate sends users without a paid plan: an endpoint name.
    "STRIPE_BILLING_PRICING_URL": "pricing",
    # The JSON routes the settings page calls (off unless set).
    "STRIPE_BILLING_MANAGEMENT_ROUTES": "1",
    # What each plan includes, for the /export gate (a JSON object in the environment).
    "STRIPE_BILLING_FEATURES": '{"pro": ["export"]}',
    # Where the extension's /billing/success sends the user once the session is applied.
    "STRIPE_BILLING_AFTER_CHECKOUT_URL": "account",
    # A one-time product, a pack of 100 credits, sold on the pricing page (mode payment).
    # DEMO price id: with a real test-mode key, set STRIPE_BILLING_PRODUCTS to a one-time
    # price of yours (``price_...=credits_100``, or ``lookup_key:credits_100=credits_100``).
    "STRIPE_BILLING_PRODUCTS": "price_demo_credits_100=credits_100",
    # Conversions each plan includes per month, for POST /api/convert's quota.
    "STRIPE_BILLING_USAGE_QUOTAS": '{"free": {"conversions": 3}, "pro": {"conversions": 1000}}',
}
#: Credits in one pack of each product that sells credits (5 packs: 5 times as many).
CREDITS_PER_PACK = {"credits_100": 100}
#: Who may open the operations page (DEMO: alice; a real app asks its own login).
ADMIN_USER_IDS = frozenset({"1"})

db = SQLAlchemy()


class User(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
    """The host's own user table; BillingMixin adds plan, Stripe ids and status."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(255), unique=True)

    @property
    def credits(self) -> int:
        """The credits of the user's purchases, but those taken back."""
        total = db.session.scalar(
            sa.select(sa.func.sum(CreditGrant.credits)).where(
                CreditGrant.user_id == self.id, CreditGrant.revoked.is_(False)
            )
        )
        return int(total or 0)


class CreditGrant(db.Model):  # type: ignore[name-defined, misc]
    """The credits one purchase gave: keyed by the purchase id, so it is granted once;
    ``revoked`` once a full refund or a lost dispute took them back."""

    __tablename__ = "credit_grants"
    purchase_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    credits: Mapped[int]
    revoked: Mapped[bool] = mapped_column(default=False)


def acting_user_id() -> str | None:
    """Who is calling, for the extension: the user chosen with ``?as=`` (a real app: its login)."""
    user_id: str | None = session.get("user_id")
    return user_id


billing = StripeBilling(user_store=SQLAlchemyUserStore(db, User), current_user_id=acting_user_id)


def is_admin() -> bool:
    """Who may see the operations page: the users in ``ADMIN_USER_IDS`` (DEMO: alice)."""
    return acting_user_id() in current_app.config["ADMIN_USER_IDS"]


#: The operations page at /billing/admin: the event log, accounts, replay / link / sync.
admin = billing.admin_blueprint(admin_required=is_admin)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The example app; ``config`` overrides the defaults and the environment."""
    app = Flask(__name__)
    # A relative SQLite path lives in the app's instance folder (created on start).
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
        "DATABASE_URL", "sqlite:///simple_app.db"
    )
    # Signs the session cookie that remembers whom you act as (random: until restart).
    app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or secrets.token_hex(16)
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["ADMIN_USER_IDS"] = ADMIN_USER_IDS
    app.config.update(config or {})
    if not (app.config.get("STRIPE_WEBHOOK_SECRET") or os.environ.get("STRIPE_WEBHOOK_SECRET")):
        app.config["STRIPE_WEBHOOK_SECRET"] = DEMO_WEBHOOK_SECRET
        app.logger.warning(
            "STRIPE_WEBHOOK_SECRET is not set: using the DEMO secret; real Stripe events will fail"
        )
    for name, value in DEFAULTS.items():
        if not (app.config.get(name) or os.environ.get(name)):
            app.config[name] = value  # this app's own pages and routes
    app.logger.setLevel(logging.INFO)  # show the plan-change messages below

    db.init_app(app)
    # POST /stripe/webhook, POST /billing/checkout-session, GET /billing/portal,
    # GET /billing/success, POST /billing/subscription/(cancel|resume|change-plan|...)
    # and their form routes POST /billing/manage/(cancel|resume|change-plan|seats):
    billing.init_app(app)
    app.register_blueprint(admin)  # after init_app; refused without a permission check
    # This app's purchases only (sender=app): the receivers write to this app's database.
    signals.purchase_completed.connect(grant_credits, sender=app)
    signals.purchase_refunded.connect(take_back_refunded_credits, sender=app)
    signals.purchase_disputed.connect(take_back_disputed_credits, sender=app)
    with app.app_context():
        db.create_all()  # also creates the extension's stripe_billing_events table
        seed_demo_users()

    app.before_request(act_as)
    app.context_processor(lambda: {"me": current_user(), "everyone": all_users()})
    app.add_url_rule("/", view_func=index)
    app.add_url_rule("/users/<int:user_id>", view_func=show_user)
    app.add_url_rule("/pricing", view_func=pricing)
    app.add_url_rule("/pro", view_func=pro)
    app.add_url_rule("/settings", view_func=settings)
    app.add_url_rule("/account", view_func=account)
    app.add_url_rule("/export", view_func=export)
    app.add_url_rule("/api/convert", view_func=convert, methods=["POST"])
    return app


def convert() -> tuple[dict[str, Any], int]:
    """A metered API call: the work and its usage report commit together.

    ``X-Request-Id`` (a client's retry sends the same) is the meter event's identifier, so
    a retried request is billed once. Pending usage goes to Stripe with ``flask billing
    usage send`` (or ``STRIPE_BILLING_USAGE_FLUSH=1``).
    """
    user = current_user()
    if user is None:
        return {"error": "authentication_error", "message": "act as a user (?as=1)"}, 401
    if billing.usage_remaining(user.id, "conversions") == 0:
        return {"error": "quota_exceeded", "message": "no conversions left this month"}, 429
    request_id = request.headers.get("X-Request-Id")
    billing.report_usage(user.id, "conversions", 1, identifier=request_id)
    db.session.commit()  # a real app commits its own rows here too
    return {"converted": True, "left": billing.usage_remaining(user.id, "conversions")}, 200


def seed_demo_users() -> None:
    """alice is already a Stripe customer; bob will become one through Checkout.

    alice's customer id is made up for ``make demo``: with a real test-mode key,
    try Checkout as bob.
    """
    if db.session.get(User, 1) is None:
        db.session.add(User(id=1, email="alice@example.com", stripe_customer_id="cus_demo_alice"))
    if db.session.get(User, 2) is None:
        db.session.add(User(id=2, email="bob@example.com"))
    db.session.commit()


def act_as() -> None:
    """``?as=<id>`` on any page: act as that user from now on; ``?as=`` alone: as nobody."""
    if "as" not in request.args:
        return
    user_id = request.args.get("as", type=int)
    user = None if user_id is None else db.session.get(User, user_id)
    if user is None:
        session.pop("user_id", None)
    else:
        session["user_id"] = str(user.id)


def current_user() -> User | None:
    """The user acted as, or None."""
    user_id = acting_user_id()
    return None if user_id is None else db.session.get(User, int(user_id))


def all_users() -> list[User]:
    """Every user, for the "act as" links."""
    return list(db.session.scalars(sa.select(User).order_by(User.id)))


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


def grant_credits(
    app: Flask, *, user_id: str, account: BillingAccount, purchase: PurchaseRecord, **extra: Any
) -> None:
    """A paid purchase of a credit pack: its credits times the quantity, once per purchase."""
    per_pack = CREDITS_PER_PACK.get(purchase.product or "")
    if per_pack is None or db.session.get(CreditGrant, purchase.id) is not None:
        return  # not a credit pack (a lifetime deal, an unknown price), or granted already
    credits = per_pack * (purchase.quantity or 1)
    db.session.add(CreditGrant(purchase_id=purchase.id, user_id=int(user_id), credits=credits))
    db.session.commit()  # the purchase is committed already: this is the app's own
    app.logger.info("%s bought %d credits (%s)", account.email, credits, purchase.id)


def take_back_refunded_credits(
    app: Flask, *, purchase: PurchaseRecord, fully_refunded: bool, **extra: Any
) -> None:
    """A full refund takes the purchase's credits back; a partial one leaves them."""
    if fully_refunded:
        take_back_credits(app, purchase, "refunded")


def take_back_disputed_credits(
    app: Flask, *, purchase: PurchaseRecord, dispute_status: str, **extra: Any
) -> None:
    """A lost dispute (the money went back to the card holder) takes the credits back."""
    if dispute_status == "lost":
        take_back_credits(app, purchase, "its dispute lost")


def take_back_credits(app: Flask, purchase: PurchaseRecord, why: str) -> None:
    """Mark the purchase's grant taken back, once."""
    grant = db.session.get(CreditGrant, purchase.id)
    if grant is None or grant.revoked:
        return
    grant.revoked = True
    db.session.commit()
    app.logger.info("%d credits taken back: %s %s", grant.credits, purchase.id, why)


HEADER = """<!doctype html>
<title>Flask-Stripe-Billing example</title>
<p>
  <a href="{{ url_for('index') }}">Users</a> |
  <a href="{{ url_for('pricing') }}">Pricing</a> |
  <a href="{{ url_for('pro') }}">Pro page</a> |
  <a href="{{ url_for('settings') }}">Settings</a> |
  <a href="{{ url_for('account') }}">Account</a> |
  <a href="{{ url_for('export') }}">Export</a> |
  <a href="{{ url_for('stripe_billing_admin.event_log') }}">Operations</a> (alice only) |
  Acting as <b>{{ me.email if me else "nobody" }}</b>{% if me %} ({{ me.plan }}){% endif %};
  act as
  {% for user in everyone %}<a href="?as={{ user.id }}">{{ user.email }}</a>, {% endfor %}
  <a href="?as=">nobody</a>
</p>
{% for category, message in get_flashed_messages(with_categories=true) %}
<p class="flash {{ category }}" role="status">{{ message }}</p>
{% endfor %}
"""

USERS_PAGE = """
<h1>Users</h1>
<table border="1" cellpadding="4">
  <tr>
    <th>id</th><th>email</th><th>plan</th><th>subscription</th><th>customer</th><th>credits</th>
  </tr>
  {% for user in everyone %}
  <tr>
    <td><a href="{{ url_for('show_user', user_id=user.id) }}">{{ user.id }}</a></td>
    <td>{{ user.email }}</td>
    <td>{{ user.plan }}</td>
    <td>{{ user.stripe_subscription_status or "-" }}</td>
    <td>{{ user.stripe_customer_id or "-" }}</td>
    <td>{{ user.credits }}</td>
  </tr>
  {% endfor %}
</table>
<p>Stripe sends its events to <code>POST /stripe/webhook</code>.</p>
"""

PRICING_PAGE = """
<h1>Pricing</h1>
<p>Free: the basics. Pro: <a href="{{ url_for('pro') }}">everything</a>.</p>
<p>
  <button onclick="checkout('monthly')">Upgrade to Pro — monthly</button>
  <button onclick="checkout('yearly')">Upgrade to Pro — yearly</button>
  <button onclick="manageBilling()">Manage billing</button>
</p>
<p id="error" role="alert" style="color: #b00"></p>
<h2>Credits</h2>
<p>A one-time purchase, beside any plan: 100 credits a pack.</p>
{# The extension's form buttons: a one-time Checkout (mode payment) of the product. #}
{{ billing_checkout_button("Buy 100 credits", product="credits_100") }}
{{ billing_checkout_button("Buy 500 credits", product="credits_100", quantity=5) }}
{% if me %}
<p id="credits">You have <b>{{ me.credits }}</b> credits.</p>
{% if purchases %}
<table border="1" cellpadding="4">
  <tr><th>purchase</th><th>product</th><th>quantity</th><th>status</th><th>refunded</th></tr>
  {% for purchase in purchases %}
  <tr>
    <td>{{ purchase.id }}</td>
    <td>{{ purchase.product or "?" }}</td>
    <td>{{ purchase.quantity or 1 }}</td>
    <td>{{ purchase.status }}</td>
    <td>{{ money(purchase.amount_refunded) }} of {{ money(purchase.amount or 0) }}
      {{ (purchase.currency or "").upper() }}</td>
  </tr>
  {% endfor %}
</table>
{% endif %}
{% endif %}
<script>
  // The extension's routes answer {"url": ...} to go to, or an error with a message.
  async function goToStripe(method, url, body) {
    const error = document.getElementById("error");
    error.textContent = "";
    const response = await fetch(url, {
      method: method,
      headers: body ? {"Content-Type": "application/json"} : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await response.json().catch(() => ({message: "HTTP " + response.status}));
    if (response.ok) {
      window.location = data.url;
      return;
    }
    const missing = (data.details || {}).missing;
    error.textContent = data.message + (missing ? " (missing: " + missing.join(", ") + ")" : "");
  }
  function checkout(interval) {
    goToStripe("POST", "{{ url_for('stripe_billing.checkout_session') }}", {interval: interval});
  }
  function manageBilling() {
    goToStripe("GET", "{{ url_for('stripe_billing.portal') }}");
  }
</script>
"""

ACCOUNT_PAGE = """
<h1>Account</h1>
{# The extension's partial: plan, renewal or end date, and its form buttons (cancel or
   resume, switch plan) that come back here with a flash message. #}
{{ billing_settings() }}
{% if not billing_account or not billing_account.stripe_subscription_id %}
<p>See <a href="{{ url_for('pricing') }}">pricing</a> to subscribe.</p>
{% elif me.on_trial() %}
<p>You are on a free trial.</p>
{% endif %}
"""

PRO_PAGE = """
<h1>Pro</h1>
<p>Welcome, {{ me.email }}: everything here is for {{ billing_account.plan }} users.</p>
{% if billing_account.is_past_due() %}
<p>Your last payment failed; Stripe will try again. Update your card with Manage billing.</p>
{% elif billing_account.on_grace_period() %}
<p>Your plan ends on {{ billing_account.current_period_end.date() }}.</p>
{% endif %}
"""

EXPORT_PAGE = """
<h1>Export</h1>
<p>Your {{ billing_account.plan }} plan includes exports, {{ me.email }}.</p>
"""


def index() -> str:
    """Every user with plan and subscription status."""
    return render_template_string(HEADER + USERS_PAGE)


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
        # Its customer's active Stripe Entitlements (kept by the extension, not on User).
        "features": sorted(billing.account(user.id).features),
        # The app's own credits, and the one-time purchases the extension keeps.
        "credits": user.credits,
        "purchases": [
            {
                "id": purchase.id,
                "product": purchase.product,
                "quantity": purchase.quantity,
                "status": purchase.status,
                "amount": purchase.amount,
                "amount_refunded": purchase.amount_refunded,
                "currency": purchase.currency,
            }
            for purchase in billing.purchases(user.id)
        ],
    }


def pricing() -> str:
    """The Upgrade buttons (to Stripe Checkout), Manage billing (to the portal), and the
    credit packs with the user's credits and purchases."""
    user = current_user()
    purchases = [] if user is None else billing.purchases(user.id)
    return render_template_string(HEADER + PRICING_PAGE, purchases=purchases, money=_money)


@billing.plan_required()
def pro() -> str:
    """A page only users on a paid plan see; the others go to the pricing page."""
    return render_template_string(HEADER + PRO_PAGE)


def settings() -> str:
    """The user's own billing settings: cancel, resume, switch plan (with a preview)."""
    return render_template_string(HEADER) + render_template("settings.html")


def account() -> str:
    """The same settings without JavaScript: the extension's partial and form buttons."""
    return render_template_string(HEADER + ACCOUNT_PAGE)


@billing.feature_required("export")
def export() -> str:
    """A page for plans that include the ``export`` feature; the others go to pricing."""
    return render_template_string(HEADER + EXPORT_PAGE)


def _money(amount: int) -> str:
    """An amount in cents as ``10.00`` (the example sells in USD)."""
    return f"{amount / 100:.2f}"


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
