"""The account on the user: ``BillingMixin``'s read-only questions (``current_user.on_trial()``)
answered from the app's store, and the same through ``billing.account(id)`` on every store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.orm
from conftest import Host
from dbapi_support import make_database
from flask import Flask, render_template_string
from flask_login import LoginManager, UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column
from support import SECRET, post_event, subscription_event

from flask_stripe_billing import (
    BillingAccount,
    BillingMixin,
    DBAPIUserStore,
    InMemoryUserStore,
    SQLAlchemyUserStore,
    StripeBilling,
)

FEATURES = {"STRIPE_BILLING_FEATURES": {"pro": ["export"]}}
SOON = datetime.now(UTC) + timedelta(days=7)


def trialing(host: Host) -> None:
    """User 1 trialing until SOON, as the store has it."""
    with host.app.app_context():
        user = host.db.session.get(host.User, 1)
        user.plan, user.stripe_subscription_status, user.trial_end = "pro", "trialing", SOON
        user.stripe_subscription_id = "sub_test"
        host.db.session.commit()


def test_the_mixin_answers_from_the_store(make_host: Callable[..., Host]) -> None:
    host = make_host(FEATURES)
    host.add_user(1, stripe_customer_id="cus_test")
    host.add_user(2)
    trialing(host)

    with host.app.app_context():
        ada, bob = host.db.session.get(host.User, 1), host.db.session.get(host.User, 2)
        assert (ada.is_paying(), ada.on_trial(), ada.on_grace_period()) == (True, True, False)
        assert ada.on_trial(SOON + timedelta(seconds=1)) is False
        assert (ada.has_feature("export"), ada.has_feature("audit")) == (True, False)
        assert ada.billing_account == host.billing.account(1)
        assert ada.billing_account.plan == "pro"
        assert (bob.is_paying(), bob.on_trial(), bob.has_feature("export")) == (False, False, False)


def test_the_answer_follows_the_webhook_not_the_loaded_row(make_host: Callable[..., Host]) -> None:
    host = make_host(FEATURES)
    host.add_user(1, stripe_customer_id="cus_test")
    client = host.client
    assert (
        post_event(client, subscription_event(period_end=int(SOON.timestamp()))).status_code == 200
    )

    with host.app.app_context():
        user = host.db.session.get(host.User, 1)
        assert (user.is_paying(), user.on_grace_period()) == (True, False)
        ending = subscription_event(cancel_at_period_end=True, period_end=int(SOON.timestamp()))
        assert post_event(client, ending).status_code == 200
        assert user.on_grace_period() is True  # the same instance, asked again
        deleted = subscription_event("customer.subscription.deleted", status="canceled")
        assert post_event(client, deleted).status_code == 200
        assert (user.is_paying(), user.has_feature("export")) == (False, False)


def test_is_paying_follows_the_apps_past_due_grace(make_host: Callable[..., Host]) -> None:
    strict = make_host({"STRIPE_PAST_DUE_KEEPS_PLAN": "false"})
    strict.add_user(1, stripe_customer_id="cus_test")
    assert post_event(strict.client, subscription_event(status="past_due")).status_code == 200

    with strict.app.app_context():
        assert strict.db.session.get(strict.User, 1).is_paying() is False


def test_current_user_on_trial_works_in_views_and_templates(make_host: Callable[..., Host]) -> None:
    host = make_host(FEATURES)
    host.add_user(1, stripe_customer_id="cus_test")
    trialing(host)
    app = host.app
    app.config["SECRET_KEY"] = "test"
    # The host's model as Flask-Login wants it (a real app: class User(UserMixin, ...)).
    for name in ("get_id", "is_authenticated", "is_active"):
        setattr(host.User, name, getattr(UserMixin, name))
    manager = LoginManager(app)
    manager.user_loader(lambda user_id: host.db.session.get(host.User, int(user_id)))
    page = (
        "{{ current_user.on_trial() }} {{ current_user.is_paying() }} "
        "{{ current_user.has_feature('export') }} {{ current_user.billing_account.plan }}"
    )
    app.add_url_rule("/me", "me", lambda: render_template_string(page))
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1"

    assert client.get("/me").get_data(as_text=True) == "True True True pro"


def test_a_store_mapping_user_id_to_another_column_is_followed() -> None:
    db = SQLAlchemy()

    class Member(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "members"
        pk: Mapped[int] = mapped_column(primary_key=True)
        public_id: Mapped[str] = mapped_column(sa.String(40), unique=True)

    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", STRIPE_WEBHOOK_SECRET=SECRET)
    db.init_app(app)
    store = SQLAlchemyUserStore(db, Member, columns={"user_id": "public_id", "email": None})
    StripeBilling(app, user_store=store)
    with app.app_context():
        db.create_all()
        db.session.add(
            Member(pk=1, public_id="m_ada", plan="pro", stripe_subscription_status="active")
        )
        db.session.add(Member(pk=2, public_id="m_bob"))
        db.session.commit()
        ada = db.session.get(Member, 1)
        assert (ada.billing_account.user_id, ada.is_paying()) == ("m_ada", True)
        assert db.session.get(Member, 2).is_paying() is False


def test_outside_an_app_with_the_extension_the_mixin_says_so(
    make_host: Callable[..., Host],
) -> None:
    host = make_host()
    host.add_user(1)
    with host.app.app_context():
        user = host.db.session.get(host.User, 1)
        host.db.session.expunge(user)
    bare = Flask("bare")

    with bare.app_context(), pytest.raises(RuntimeError, match="not set up on this app"):
        user.is_paying()
    with host.app.app_context(), pytest.raises(LookupError, match="no user '9'"):
        host.User(id=9).on_trial()


# The same questions on the other stores: billing.account(user_id)


def test_in_memory_store_answers_through_billing_account() -> None:
    app = Flask(__name__)
    app.config.update(STRIPE_WEBHOOK_SECRET=SECRET, **FEATURES)
    store = InMemoryUserStore(
        [
            BillingAccount("1", plan="pro", subscription_status="trialing", trial_end=SOON),
            BillingAccount(
                "2",
                plan="pro",
                subscription_status="active",
                cancel_at_period_end=True,
                current_period_end=SOON,
            ),
        ]
    )
    billing = StripeBilling(app, user_store=store)

    with app.app_context():
        trial, ending = billing.account("1"), billing.account(2)
        assert (trial.is_paying(), trial.on_trial(), trial.on_grace_period()) == (True, True, False)
        assert (ending.on_trial(), ending.on_grace_period()) == (False, True)
        assert trial.has_feature("export", billing.settings)


def test_dbapi_store_answers_through_billing_account(tmp_path: Path) -> None:
    database = make_database(tmp_path)
    database.create()
    try:
        database.add_user(1, stripe_customer_id="cus_test")
        app = Flask(__name__)
        app.config.update(STRIPE_WEBHOOK_SECRET=SECRET, **FEATURES)
        billing = StripeBilling(app, user_store=DBAPIUserStore(database.connect, close=True))
        client = app.test_client()
        ending = subscription_event(
            status="trialing", cancel_at_period_end=True, period_end=int(SOON.timestamp())
        )
        assert post_event(client, ending).status_code == 200

        with app.app_context():
            account = billing.account(1)
            assert (account.is_paying(), account.on_grace_period()) == (True, True)
            assert account.on_trial() is False  # the event names no trial end
            assert account.has_feature("export", billing.settings)
    finally:
        database.drop("users")


def test_a_template_asks_the_same_of_billing_account(make_host: Callable[..., Host]) -> None:
    """``billing_account`` in templates is the account the mixin answers from."""
    host = make_host(FEATURES, current_user_id=lambda: "1")
    host.add_user(1, stripe_customer_id="cus_test")
    trialing(host)

    with host.app.test_request_context("/"):
        shown = render_template_string("{{ billing_account.on_trial() }}")

    assert shown == "True"


def test_loading_users_leaves_the_newer_columns_out_and_the_mixin_adds_no_query_per_user(
    make_host: Callable[..., Host],
) -> None:
    """BillingMixin defers trial_end and subscription_quantity (so loading a user works before
    the migration adding them): the questions still cost what ``billing.account`` costs,
    never a lazy load of the deferred columns per user."""
    host = make_host(FEATURES)
    for user_id in (1, 2, 3):
        host.add_user(user_id, stripe_customer_id=f"cus_{user_id}")
    trialing(host)
    statements: list[str] = []

    def seen(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with host.app.app_context():
        host.billing.account(1)  # (the first read finds the tables the host made since)
        sa.event.listen(host.db.engine, "before_cursor_execute", seen)
        try:
            host.billing.account(1)
            per_account = len(statements)
            assert per_account == 2  # the user's row and its customer's entitlements
            statements.clear()
            users = host.db.session.scalars(sa.select(host.User).order_by(host.User.id)).all()
            (listing,) = statements
            assert "trial_end" not in listing
            assert "subscription_quantity" not in listing
            statements.clear()

            answers = [(user.is_paying(), user.on_trial()) for user in users]

            assert answers == [(True, True), (False, False), (False, False)]
            assert len(statements) == 2 * len(users) * per_account
            assert not [s for s in statements if "users_trial_end" in s]  # no ORM lazy load
            statements.clear()
            # The host reading them: one load for both (one deferred group) ...
            assert (users[0].trial_end is not None, users[0].subscription_quantity) == (True, None)
            assert len(statements) == 1
            statements.clear()
            # ... or none, with undefer_group in the listing.
            host.db.session.expunge_all()
            listed = host.db.session.scalars(
                sa.select(host.User)
                .options(sa.orm.undefer_group("stripe_billing"))
                .order_by(host.User.id)
            ).all()
            assert [user.trial_end is not None for user in listed] == [True, False, False]
            assert len(statements) == 1
        finally:
            sa.event.remove(host.db.engine, "before_cursor_execute", seen)
