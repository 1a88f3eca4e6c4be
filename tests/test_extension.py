"""Setting StripeBilling up, the ways a Flask developer would: public API only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import DATABASE_URL, Host
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column
from support import SECRET, checkout_event, post_event, subscription_event

import flask_stripe_billing
from flask_stripe_billing import (
    BillingAccount,
    BillingMixin,
    InMemoryUserStore,
    SQLAlchemyUserStore,
    StripeBilling,
    UserStore,
    signals,
)
from flask_stripe_billing.state import get_state

WEBHOOK = "/stripe/webhook"
UTC = UTC
CONFIG_NAMES = (
    "STRIPE_API_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_PRICE_PRO_MONTHLY",
    "STRIPE_PRICE_PRO_YEARLY",
    "STRIPE_SUCCESS_URL",
    "STRIPE_CANCEL_URL",
    "PRO_PLAN_NAME",
    "STRIPE_BILLING_PLANS",
    "STRIPE_PORTAL_RETURN_URL",
    "STRIPE_WEBHOOK_MAX_BYTES",
    "STRIPE_WEBHOOK_TOLERANCE",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Stripe setting leaks in from the environment the tests run in."""
    for name in CONFIG_NAMES:
        monkeypatch.delenv(name, raising=False)


def new_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(TESTING=True, STRIPE_WEBHOOK_SECRET=SECRET)
    app.config.update(config)
    return app


def memory_store() -> InMemoryUserStore:
    """User 1, linked to customer ``cus_test``, on the free plan."""
    return InMemoryUserStore([BillingAccount(user_id="1", stripe_customer_id="cus_test")])


def assert_plan_granted(response: Any, store: InMemoryUserStore, event: dict[str, Any]) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"received": True}
    account = store.get("1")
    assert account is not None
    assert account.plan == "pro"
    assert account.subscription_status == "active"
    assert [(record.id, record.status) for record in store.events] == [(event["id"], "processed")]


def assert_untouched(store: InMemoryUserStore) -> None:
    assert store.events == []
    assert store.get("1") == BillingAccount(user_id="1", stripe_customer_id="cus_test")


# Set-up forms


def test_one_line_form_sets_up_the_app_and_serves_the_webhook() -> None:
    app = new_app()
    store = memory_store()

    billing = StripeBilling(app, user_store=store)
    event = subscription_event()
    response = post_event(app.test_client(), event)

    # The object returned is the one serving this app: its blueprint is registered
    # there, and the app's state was built from the store it was given.
    assert app.blueprints[billing.blueprint.name] is billing.blueprint
    state = app.extensions["stripe_billing"]
    assert state is get_state(app)
    assert (state.user_store, state.event_log, state.subscription_log) == (store, store, store)
    assert_plan_granted(response, store, event)


def test_app_factory_form_takes_the_options_in_init_app() -> None:
    billing = StripeBilling()
    calls: list[str] = []

    def nobody() -> str | None:
        calls.append("asked")
        return None

    def create_app(store: InMemoryUserStore) -> Flask:
        app = new_app(STRIPE_API_KEY="sk_test_factory", STRIPE_PORTAL_RETURN_URL="https://x.test")
        billing.init_app(app, user_store=store, current_user_id=nobody)
        return app

    store = memory_store()
    app = create_app(store)
    event = subscription_event()
    response = post_event(app.test_client(), event)

    assert "stripe_billing" in app.extensions
    assert_plan_granted(response, store, event)
    # The current_user_id given to init_app is the one asked; None means anonymous.
    anonymous = app.test_client().get("/billing/portal")
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"] == "authentication_error"
    assert calls == ["asked"]


def test_blueprint_registered_under_a_prefix_serves_the_webhook_there_only() -> None:
    app = new_app()
    store = memory_store()
    billing = StripeBilling(user_store=store)

    app.register_blueprint(billing.blueprint, url_prefix="/api")
    event = subscription_event()
    response = post_event(app.test_client(), event, path="/api/stripe/webhook")
    at_root = post_event(app.test_client(), subscription_event(event_id="evt_root"))

    assert "stripe_billing" in app.extensions
    assert_plan_granted(response, store, event)
    assert at_root.status_code == 404
    assert [record.id for record in store.events] == [event["id"]]


def test_init_app_registers_the_webhook_at_the_root() -> None:
    app = new_app()
    StripeBilling(user_store=memory_store()).init_app(app)

    rules = {rule.endpoint: (rule.rule, rule.methods) for rule in app.url_map.iter_rules()}

    path, methods = rules["stripe_billing.webhook"]
    assert path == WEBHOOK
    assert methods is not None and "POST" in methods


def test_one_extension_serves_two_apps_with_their_own_stores() -> None:
    billing = StripeBilling()
    first_store, second_store = memory_store(), memory_store()
    first, second = new_app(), new_app(STRIPE_WEBHOOK_SECRET="whsec_second_app")
    billing.init_app(first, user_store=first_store)
    billing.init_app(second, user_store=second_store)

    event = subscription_event()
    response = post_event(first.test_client(), event)
    wrong_secret = post_event(second.test_client(), subscription_event())

    assert_plan_granted(response, first_store, event)
    assert wrong_secret.status_code == 400
    assert_untouched(second_store)


def test_init_app_store_wins_over_the_constructor_store() -> None:
    constructor_store, app_store = memory_store(), memory_store()
    billing = StripeBilling(user_store=constructor_store)
    app = new_app()

    billing.init_app(app, user_store=app_store)
    event = subscription_event()
    response = post_event(app.test_client(), event)

    assert_plan_granted(response, app_store, event)
    assert_untouched(constructor_store)


def test_same_blueprint_registered_on_two_apps_sets_up_both() -> None:
    store = memory_store()
    billing = StripeBilling(user_store=store)
    first, second = new_app(), new_app()

    first.register_blueprint(billing.blueprint)
    second.register_blueprint(billing.blueprint, url_prefix="/hooks")
    response = post_event(second.test_client(), subscription_event(), path="/hooks/stripe/webhook")

    assert "stripe_billing" in first.extensions
    assert "stripe_billing" in second.extensions
    assert response.status_code == 200


# Set-up mistakes


def test_missing_user_store_is_a_type_error_in_the_one_line_form() -> None:
    app = new_app()

    with pytest.raises(TypeError, match="user_store"):
        StripeBilling(app)

    assert "stripe_billing" not in app.extensions


def test_missing_user_store_is_a_type_error_in_init_app() -> None:
    with pytest.raises(TypeError, match="user_store"):
        StripeBilling().init_app(new_app())


def test_missing_user_store_is_a_type_error_when_registering_the_blueprint() -> None:
    with pytest.raises(TypeError, match="user_store"):
        new_app().register_blueprint(StripeBilling().blueprint)


class DictUserStore:
    """A host's own minimal UserStore: accounts only, no event log."""

    def __init__(self) -> None:
        self.accounts = {"1": BillingAccount(user_id="1", stripe_customer_id="cus_test")}

    def get(self, user_id: str, *, lock: bool = False) -> BillingAccount | None:
        return self.accounts.get(user_id)

    def get_by_customer_id(self, customer_id: str, *, lock: bool = False) -> BillingAccount | None:
        return next(
            (a for a in self.accounts.values() if a.stripe_customer_id == customer_id), None
        )

    def set_customer_id(self, user_id: str, customer_id: str) -> BillingAccount:
        return self.apply(user_id, {"stripe_customer_id": customer_id})

    def apply(self, user_id: str, changes: Any) -> BillingAccount:
        self.accounts[user_id] = self.accounts[user_id].with_changes(changes)
        return self.accounts[user_id]


def test_user_store_without_event_log_is_a_type_error_naming_event_log() -> None:
    store = DictUserStore()
    assert isinstance(store, UserStore)

    with pytest.raises(TypeError, match="event_log"):
        StripeBilling(new_app(), user_store=store)


# InMemoryUserStore


def test_in_memory_store_end_to_end() -> None:
    store = InMemoryUserStore()
    store.add(BillingAccount(user_id="7", email="seven@example.com", stripe_customer_id="cus_7"))
    app = new_app()
    StripeBilling(app, user_store=store)
    period_end = 1_900_000_000

    event = subscription_event(customer="cus_7", subscription="sub_7", period_end=period_end)
    response = post_event(app.test_client(), event)

    assert response.status_code == 200
    account = store.get("7")
    assert account is not None
    assert (account.plan, account.subscription_status, account.stripe_subscription_id) == (
        "pro",
        "active",
        "sub_7",
    )
    assert account.current_period_end == datetime.fromtimestamp(period_end, UTC)
    assert account.email == "seven@example.com"
    assert account.updated_at is not None
    [record] = store.events
    assert (record.id, record.type, record.status, record.user_id) == (
        event["id"],
        "customer.subscription.updated",
        "processed",
        "7",
    )
    assert record.customer_id == "cus_7"


# Configuration: app.config, then the environment


def test_webhook_secret_falls_back_to_the_environment(
    make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_env")
    host = make_host({"STRIPE_WEBHOOK_SECRET": None})
    host.add_user(1, stripe_customer_id="cus_test")

    response = post_event(host.client, subscription_event(), secret="whsec_from_env")

    assert response.status_code == 200
    assert host.user(1).plan == "pro"


def test_app_config_wins_over_the_environment(
    make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_env")
    monkeypatch.setenv("PRO_PLAN_NAME", "env_plan")
    host = make_host({"STRIPE_WEBHOOK_SECRET": "whsec_from_config", "PRO_PLAN_NAME": "gold"})
    host.add_user(1, stripe_customer_id="cus_test")

    refused = post_event(host.client, subscription_event(), secret="whsec_from_env")
    assert refused.status_code == 400
    assert host.events() == []

    accepted = post_event(host.client, subscription_event(), secret="whsec_from_config")
    assert accepted.status_code == 200
    assert host.user(1).plan == "gold"


def test_each_setting_falls_back_to_the_environment_on_its_own(
    make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRO_PLAN_NAME", "premium")
    host = make_host()  # the secret in app.config, the plan name only in the environment
    host.add_user(1, stripe_customer_id="cus_test")

    response = post_event(host.client, subscription_event())

    assert response.status_code == 200
    assert host.user(1).plan == "premium"


def test_webhook_body_limit_from_the_environment(
    make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_MAX_BYTES", "2048")
    host = make_host()
    host.add_user(1, stripe_customer_id="cus_test")

    response = post_event(host.client, subscription_event())

    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"
    assert host.events() == []


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("whsec_one,whsec_two", id="comma"),
        pytest.param(" whsec_one , whsec_two ,", id="comma-spaces"),
        pytest.param(["whsec_one", "whsec_two"], id="list"),
    ],
)
@pytest.mark.parametrize("secret", ["whsec_one", "whsec_two"])
def test_several_webhook_secrets_each_accept_events(value: Any, secret: str) -> None:
    app = new_app(STRIPE_WEBHOOK_SECRET=value)
    store = memory_store()
    StripeBilling(app, user_store=store)

    event = subscription_event()
    response = post_event(app.test_client(), event, secret=secret)
    refused = post_event(app.test_client(), subscription_event(), secret="whsec_three")

    assert_plan_granted(response, store, event)
    assert refused.status_code == 400


def test_several_webhook_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_one,whsec_two")
    app = new_app(STRIPE_WEBHOOK_SECRET=None)
    store = memory_store()
    StripeBilling(app, user_store=store)

    event = subscription_event()
    response = post_event(app.test_client(), event, secret="whsec_two")

    assert_plan_granted(response, store, event)


PLANS_TEXT = "price_team=team,price_business=business"
PLANS_JSON = '{"price_team": "team", "price_business": "business"}'


@pytest.mark.parametrize(
    ("source", "plans"),
    [
        pytest.param("config", {"price_team": "team", "price_business": "business"}, id="dict"),
        pytest.param("config", PLANS_JSON, id="json"),
        pytest.param("config", PLANS_TEXT, id="text"),
        pytest.param("config", " price_team = team , price_business=business ", id="text-spaces"),
        pytest.param("environment", PLANS_JSON, id="env-json"),
        pytest.param("environment", PLANS_TEXT, id="env-text"),
    ],
)
def test_billing_plans_map_the_subscription_price_to_a_plan(
    source: str, plans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source == "environment":
        monkeypatch.setenv("STRIPE_BILLING_PLANS", plans)
        app = new_app()
    else:
        app = new_app(STRIPE_BILLING_PLANS=plans)
    store = InMemoryUserStore(
        [
            BillingAccount(user_id="1", stripe_customer_id="cus_1"),
            BillingAccount(user_id="2", stripe_customer_id="cus_2"),
            BillingAccount(user_id="3", stripe_customer_id="cus_3"),
        ]
    )
    StripeBilling(app, user_store=store)
    client = app.test_client()

    post_event(client, subscription_event(customer="cus_1", price="price_team"))
    post_event(client, subscription_event(customer="cus_2", price="price_business"))
    post_event(client, subscription_event(customer="cus_3", price="price_unlisted"))

    assert [store.get(user_id).plan for user_id in ("1", "2", "3")] == [  # type: ignore[union-attr]
        "team",
        "business",
        "pro",
    ]


# No configuration at all


def test_app_without_any_stripe_configuration_starts_and_answers_503() -> None:
    script = textwrap.dedent(
        """
        import json
        from flask import Flask
        from flask_stripe_billing import BillingAccount, InMemoryUserStore, StripeBilling

        app = Flask(__name__)
        store = InMemoryUserStore([BillingAccount(user_id="1", stripe_customer_id="cus_test")])
        StripeBilling(app, user_store=store)
        response = app.test_client().post(
            "/stripe/webhook",
            data=json.dumps({"id": "evt_1", "object": "event"}),
            headers={"Stripe-Signature": "t=1,v1=abc"},
            content_type="application/json",
        )
        print(json.dumps({
            "status": response.status_code,
            "body": response.get_json(),
            "events": len(store.events),
        }))
        """
    )
    environ = {k: v for k, v in os.environ.items() if k not in CONFIG_NAMES}

    result = subprocess.run(
        [sys.executable, "-c", script],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["body"]["error"] == "external_service_error"
    assert answer["body"]["message"] == "Stripe billing is not configured"
    assert answer["body"]["details"]["service"] == "Stripe"
    assert answer["events"] == 0


def test_app_without_webhook_secret_answers_503_and_records_nothing() -> None:
    app = Flask(__name__)
    store = memory_store()
    StripeBilling(app, user_store=store)

    response = post_event(app.test_client(), subscription_event())

    assert response.status_code == 503
    assert response.get_json()["message"] == "Stripe billing is not configured"
    assert_untouched(store)


# Public names


def test_package_exports_the_public_names_of_the_design() -> None:
    design_names = {
        "StripeBilling",
        "UserStore",
        "BillingAccount",
        "SQLAlchemyUserStore",
        "InMemoryUserStore",
        "BillingMixin",
        "signals",
    }

    assert design_names <= set(flask_stripe_billing.__all__)
    for name in flask_stripe_billing.__all__:
        assert getattr(flask_stripe_billing, name) is not None
    for name in (
        "webhook_received",
        "plan_changed",
        "subscription_status_changed",
        "customer_not_found",
        "webhook_failed",
        "checkout_session_created",
    ):
        assert callable(getattr(signals, name).connect)


# SQLAlchemyUserStore


@pytest.fixture
def sql_app() -> Iterator[Callable[[SQLAlchemy], Flask]]:
    """An app over ``DATABASE_URL`` for a db the test built; its tables dropped afterwards."""
    made: list[tuple[Flask, SQLAlchemy]] = []

    def make(db: SQLAlchemy) -> Flask:
        app = new_app(SQLALCHEMY_DATABASE_URI=DATABASE_URL)
        db.init_app(app)
        made.append((app, db))
        with app.app_context():
            db.drop_all()
            db.create_all()
        return app

    yield make
    for app, db in made:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_sqlalchemy_store_adds_the_event_table_to_the_metadata(
    sql_app: Callable[[SQLAlchemy], Flask],
) -> None:
    db = SQLAlchemy()

    class User(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "fsb_metadata_users"
        id: Mapped[int] = mapped_column(primary_key=True)

    assert "stripe_billing_events" not in db.metadata.tables
    SQLAlchemyUserStore(db, User)
    assert "stripe_billing_events" in db.metadata.tables

    app = sql_app(db)  # db.create_all(), as the host runs it
    with app.app_context():
        tables = sa.inspect(db.engine).get_table_names()
    assert {"fsb_metadata_users", "stripe_billing_events"} <= set(tables)


MAPPED_COLUMNS = {
    "plan": "subscription_plan",
    "stripe_customer_id": "customer_ref",
    "stripe_subscription_id": "sub_ref",
    "subscription_status": "sub_status",
    "current_period_end": "renews_at",
    "updated_at": "billing_changed_at",
}


def mapped_model(db: SQLAlchemy) -> Any:
    """A host model whose billing columns have its own names, and no e-mail column."""

    class Account(db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "fsb_mapped_accounts"
        id: Mapped[int] = mapped_column(primary_key=True)
        subscription_plan: Mapped[str] = mapped_column(sa.String(50), default="free")
        customer_ref: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
        sub_ref: Mapped[str | None] = mapped_column(sa.String(255))
        sub_status: Mapped[str | None] = mapped_column(sa.String(50))
        renews_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
        billing_changed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
        # A version 1 watermark column: it may stay in the table, unmapped and unused.
        last_stripe_event: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    return Account


def test_sqlalchemy_store_with_mapped_column_names_applies_events(
    sql_app: Callable[[SQLAlchemy], Flask],
) -> None:
    db = SQLAlchemy()
    Account = mapped_model(db)
    billing = StripeBilling(user_store=SQLAlchemyUserStore(db, Account, columns=MAPPED_COLUMNS))
    app = sql_app(db)
    billing.init_app(app)
    with app.app_context():
        db.session.add(Account(id=5, customer_ref="cus_mapped"))
        db.session.commit()
    created = int(datetime.now(UTC).timestamp()) - 60

    client = app.test_client()
    activated = post_event(
        client,
        subscription_event(
            customer="cus_mapped", subscription="sub_mapped", period_end=1_900_000_000
        ),
    )
    with app.app_context():
        row = db.session.get(Account, 5)
        assert activated.status_code == 200
        assert (row.subscription_plan, row.sub_status, row.sub_ref, row.customer_ref) == (
            "pro",
            "active",
            "sub_mapped",
            "cus_mapped",
        )
        assert row.renews_at is not None
        assert row.renews_at.replace(tzinfo=UTC) == datetime.fromtimestamp(1_900_000_000, UTC)
        assert row.billing_changed_at is not None
        assert row.last_stripe_event is None  # the library no longer writes it
        records = db.metadata.tables["stripe_billing_subscriptions"]
        (record,) = db.session.execute(sa.select(records)).mappings().all()
        assert (record["id"], record["user_id"], record["status"]) == ("sub_mapped", "5", "active")

    deleted = post_event(
        client,
        subscription_event(
            "customer.subscription.deleted",
            status="canceled",
            customer="cus_mapped",
            subscription="sub_mapped",
            created=created + 120,
        ),
    )
    with app.app_context():
        row = db.session.get(Account, 5)
        assert deleted.status_code == 200
        assert (row.subscription_plan, row.sub_status) == ("free", "canceled")
        records = db.metadata.tables["stripe_billing_subscriptions"]
        statuses = db.session.execute(sa.select(records.c.id, records.c.status)).all()
        assert [tuple(r) for r in statuses] == [("sub_mapped", "canceled")]
        events = db.session.execute(sa.text("select status from stripe_billing_events")).all()
        assert sorted(status for (status,) in events) == ["processed", "processed"]


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        pytest.param({**MAPPED_COLUMNS, "plan": "tier"}, "tier", id="no-such-attribute"),
        pytest.param({**MAPPED_COLUMNS, "planz": "subscription_plan"}, "planz", id="no-such-field"),
        pytest.param({**MAPPED_COLUMNS, "plan": None}, "plan", id="required-field-unmapped"),
        pytest.param(
            {**MAPPED_COLUMNS, "last_event_at": "last_stripe_event"},
            "'last_event_at' is no longer a BillingAccount field: each subscription record "
            "keeps its own ordering watermark",
            id="version-1-watermark",
        ),
        pytest.param({}, "add BillingMixin or map it", id="not-mapped-at-all"),
    ],
)
def test_wrong_column_mapping_is_a_value_error_at_construction(
    columns: dict[str, Any], match: str
) -> None:
    db = SQLAlchemy()
    Account = mapped_model(db)

    with pytest.raises(ValueError, match=match):
        SQLAlchemyUserStore(db, Account, columns=columns)


def test_billing_mixin_model_without_email_column_works(
    sql_app: Callable[[SQLAlchemy], Flask],
) -> None:
    db = SQLAlchemy()

    class Member(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "fsb_members"
        id: Mapped[int] = mapped_column(primary_key=True)
        nickname: Mapped[str] = mapped_column(sa.String(50))

    store = SQLAlchemyUserStore(db, Member)
    app = sql_app(db)
    StripeBilling(app, user_store=store)
    with app.app_context():
        db.session.add(Member(id=3, nickname="tess", stripe_customer_id="cus_member"))
        db.session.commit()

    response = post_event(app.test_client(), subscription_event(customer="cus_member"))

    assert response.status_code == 200
    with app.app_context():
        row = db.session.get(Member, 3)
        assert (row.plan, row.stripe_subscription_status) == ("pro", "active")
        account = store.get("3")
        assert account is not None
        assert account.email is None
        assert account.plan == "pro"


def test_user_id_mapped_to_a_public_id_column_changes_that_user_only(
    sql_app: Callable[[SQLAlchemy], Flask],
) -> None:
    db = SQLAlchemy()

    class Person(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "fsb_people"
        id: Mapped[int] = mapped_column(primary_key=True)
        public_id: Mapped[int] = mapped_column(unique=True)

    store = SQLAlchemyUserStore(db, Person, columns={"user_id": "public_id"})
    app = sql_app(db)
    StripeBilling(app, user_store=store)
    with app.app_context():
        # public id 1 belongs to the row whose primary key is 2, and the other way round
        db.session.add_all([Person(id=1, public_id=2), Person(id=2, public_id=1)])
        db.session.commit()

    event = checkout_event(customer="cus_public", client_reference_id="1")
    response = post_event(app.test_client(), event)

    assert response.status_code == 200
    with app.app_context():
        chosen, other = db.session.get(Person, 2), db.session.get(Person, 1)
        assert (chosen.plan, chosen.stripe_customer_id) == ("pro", "cus_public")
        assert (other.plan, other.stripe_customer_id) == ("free", None)
        account = store.set_customer_id("2", "cus_other")
        assert (account.user_id, db.session.get(Person, 1).stripe_customer_id) == ("2", "cus_other")


# current_user_id defaults to Flask-Login


def portal_app(with_login_manager: bool) -> Flask:
    """No current_user_id given; user 1 has no Stripe customer yet (portal answers 404)."""
    app = new_app(
        SECRET_KEY="test",
        STRIPE_API_KEY="sk_test_portal",
        STRIPE_PORTAL_RETURN_URL="https://app.example.com/account",
    )
    if with_login_manager:
        from flask_login import LoginManager, UserMixin

        class LoginUser(UserMixin):
            def __init__(self, user_id: str) -> None:
                self.id = user_id

        login_manager = LoginManager(app)
        login_manager.user_loader(LoginUser)
    StripeBilling(app, user_store=InMemoryUserStore([BillingAccount(user_id="1")]))
    return app


def test_flask_login_user_is_the_default_current_user() -> None:
    client = portal_app(with_login_manager=True).test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1"

    response = client.get("/billing/portal")

    # Recognised as user 1, who has no Stripe customer yet: no Stripe call is made.
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_anonymous_flask_login_user_is_refused_401() -> None:
    response = portal_app(with_login_manager=True).test_client().get("/billing/portal")

    assert response.status_code == 401
    assert response.get_json()["error"] == "authentication_error"


def test_flask_login_installed_but_not_set_up_means_no_current_user() -> None:
    response = portal_app(with_login_manager=False).test_client().get("/billing/portal")

    assert response.status_code == 401
    assert response.get_json()["error"] == "authentication_error"


def test_a_column_without_time_zone_stores_utc_wall_time_whatever_the_session_zone() -> None:
    """An existing ``updated_at TIMESTAMP`` (no zone) must not be shifted by PostgreSQL."""
    db = SQLAlchemy()

    class Legacy(BillingMixin, db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "fsb_legacy_users"
        id: Mapped[int] = mapped_column(primary_key=True)
        legacy_updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=False))

    options = {}
    if DATABASE_URL.startswith("postgresql"):  # a server session far from UTC
        options = {"connect_args": {"options": "-c timezone=Asia/Tokyo"}}
    app = new_app(SQLALCHEMY_DATABASE_URI=DATABASE_URL, SQLALCHEMY_ENGINE_OPTIONS=options)
    db.init_app(app)
    store = SQLAlchemyUserStore(db, Legacy, columns={"updated_at": "legacy_updated_at"})
    StripeBilling(app, user_store=store)
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.session.add(Legacy(id=1, stripe_customer_id="cus_test"))
        db.session.commit()
    try:
        before = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        assert post_event(app.test_client(), subscription_event()).status_code == 200
        after = datetime.now(UTC).replace(tzinfo=None)
        with app.app_context():
            stored = db.session.execute(sa.select(Legacy.legacy_updated_at)).scalar_one()
            account = store.get("1")
        assert stored.tzinfo is None
        assert before <= stored <= after  # UTC wall time, not Tokyo's
        assert account is not None and account.updated_at is not None
        assert account.updated_at.tzinfo is not None
        assert account.updated_at.replace(tzinfo=None) == stored
    finally:
        with app.app_context():
            db.drop_all()
            db.engine.dispose()
