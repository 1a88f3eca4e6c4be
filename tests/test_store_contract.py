"""The store contract is checked once, when the extension is set up on an app: a custom store
that lacks something gets one error naming each missing method or log, the release that
added it and the upgrade step; optional parts stay optional."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from support import SECRET, post_event, subscription_event

from flask_stripe_billing import (
    AccountListing,
    BillingAccount,
    EntitlementLog,
    EventLog,
    InMemoryUserStore,
    StoreContractError,
    StripeBilling,
    SubscriptionLog,
    TableInspection,
    UserStore,
)
from flask_stripe_billing.testing import build_event, get_account

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"

EVENT_LOG_METHODS = (
    "transaction",
    "record_event",
    "finish_event",
    "get_event",
    "list_events",
    "delete_events",
    "count_events",
)
SUBSCRIPTION_LOG_METHODS = ("subscriptions_of", "save_subscription")
ENTITLEMENT_LOG_METHODS = ("lock_entitlements", "save_entitlements", "entitlements_of")


def new_app() -> Flask:
    app = Flask(__name__)
    app.config.update(TESTING=True, STRIPE_WEBHOOK_SECRET=SECRET)
    return app


class CustomStore:
    """A host's own store, over InMemoryUserStore, lacking the methods named in ``lacks``."""

    lacks: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.inner = InMemoryUserStore([BillingAccount(user_id="1", stripe_customer_id="cus_test")])

    def __getattr__(self, name: str) -> Any:
        if name in self.lacks:
            raise AttributeError(name)
        return getattr(self.inner, name)


class SQLBillingStore(CustomStore):
    """Written from an earlier docs/custom-store.md: everything but ``count_events``."""

    lacks = frozenset({"count_events"})


class Release01Store(CustomStore):
    """A store of the 0.1 contract: accounts and the event log, no subscription records."""

    lacks = frozenset({*SUBSCRIPTION_LOG_METHODS, *ENTITLEMENT_LOG_METHODS, "count_events"})


class NoEntitlementsStore(CustomStore):
    """Accounts, the event log and subscription records, no entitlements (optional)."""

    lacks = frozenset(ENTITLEMENT_LOG_METHODS)


class HalfEntitlementsStore(CustomStore):
    """Entitlements kept in part: a method is missing, not the optional part."""

    lacks = frozenset({"entitlements_of"})


class AccountsOnly(CustomStore):
    """The host's accounts only (``UserStore``)."""

    lacks = frozenset({*EVENT_LOG_METHODS, *SUBSCRIPTION_LOG_METHODS, *ENTITLEMENT_LOG_METHODS})


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def changelog_section(anchor: str) -> str:
    """The section of CHANGELOG.md whose heading has this anchor."""
    text = CHANGELOG.read_text()
    headings = list(re.finditer(r"^(#+) (.+)$", text, flags=re.MULTILINE))
    for index, heading in enumerate(headings):
        if github_anchor(heading.group(2)) == anchor:
            end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
            return text[heading.end() : end]
    raise AssertionError(f"CHANGELOG.md has no heading with anchor {anchor}")


def test_store_lacking_count_events_fails_at_init_app_naming_exactly_it() -> None:
    billing = StripeBilling(user_store=SQLBillingStore())
    app = new_app()

    with pytest.raises(StoreContractError) as raised:
        billing.init_app(app)

    error = raised.value
    assert error.missing == ("EventLog.count_events",)
    assert str(error) == (
        "SQLBillingStore does not keep the whole store contract of flask-stripe-billing "
        "(see CHANGELOG.md#upgrading-a-custom-store and docs/custom-store.md):\n"
        "- SQLBillingStore lacks EventLog.count_events (added in Unreleased (after 0.1.0), "
        '"Retention that ends"; upgrade step 3 in CHANGELOG.md#upgrading-a-custom-store)'
    )
    assert isinstance(error, TypeError)
    assert "stripe_billing" not in app.extensions
    assert "/stripe/webhook" not in {rule.rule for rule in app.url_map.iter_rules()}


def test_store_lacking_the_subscription_log_fails_naming_it_and_its_methods() -> None:
    store = CustomStore()
    store.lacks = frozenset(SUBSCRIPTION_LOG_METHODS)

    with pytest.raises(StoreContractError) as raised:
        StripeBilling(new_app(), user_store=store)

    assert raised.value.missing == ("SubscriptionLog",)
    (line,) = str(raised.value).splitlines()[1:]
    assert line == (
        "- CustomStore keeps no subscription records; pass subscription_log=... or add "
        "SubscriptionLog's methods subscriptions_of, save_subscription (SubscriptionLog added "
        'in Unreleased (after 0.1.0), "Each Stripe subscription is its own record"; upgrade '
        "step 2 in CHANGELOG.md#upgrading-a-custom-store)"
    )


def test_a_store_of_the_first_release_gets_one_error_naming_everything_it_lacks() -> None:
    with pytest.raises(StoreContractError) as raised:
        StripeBilling(new_app(), user_store=Release01Store())

    assert raised.value.missing == ("EventLog.count_events", "SubscriptionLog")
    message = str(raised.value)
    assert "Release01Store lacks EventLog.count_events" in message
    assert "keeps no subscription records; pass subscription_log=..." in message
    assert "EntitlementLog" not in message  # optional


def test_accounts_only_store_names_the_event_log_and_the_subscription_log() -> None:
    with pytest.raises(StoreContractError) as raised:
        StripeBilling(new_app(), user_store=AccountsOnly())

    assert raised.value.missing == ("EventLog", "SubscriptionLog")
    assert "AccountsOnly keeps no event log; pass event_log=... or add EventLog's methods " + (
        ", ".join(EVENT_LOG_METHODS)
    ) in str(raised.value)


def test_separate_logs_complete_an_accounts_only_store() -> None:
    logs = InMemoryUserStore()
    app = new_app()

    StripeBilling(app, user_store=AccountsOnly(), event_log=logs, subscription_log=logs)
    response = post_event(app.test_client(), subscription_event(customer="cus_test"))

    assert response.status_code == 200
    assert get_account(app, "1").plan == "pro"
    [record] = logs.events
    assert (record.status, record.user_id) == ("processed", "1")


def test_a_given_log_lacking_a_method_is_named_with_its_own_class() -> None:
    class OldLog(CustomStore):
        lacks = frozenset({"count_events"})

    with pytest.raises(StoreContractError) as raised:
        StripeBilling(new_app(), user_store=InMemoryUserStore(), event_log=OldLog())

    assert raised.value.missing == ("EventLog.count_events",)
    assert "OldLog lacks EventLog.count_events" in str(raised.value)


def test_registering_the_blueprint_checks_the_store_too() -> None:
    billing = StripeBilling(user_store=SQLBillingStore())
    app = new_app()

    with pytest.raises(StoreContractError, match="count_events"):
        app.register_blueprint(billing.blueprint, url_prefix="/api")

    assert "stripe_billing" not in app.extensions


def test_store_without_entitlements_works_and_ignores_summaries() -> None:
    store = NoEntitlementsStore()
    app = new_app()
    StripeBilling(app, user_store=store)
    client = app.test_client()

    paid = post_event(client, subscription_event(customer="cus_test"))
    summary = build_event(
        "entitlements.active_entitlement_summary.updated",
        customer="cus_test",
        features=["export"],
        event_id="evt_summary",
    )
    ignored = post_event(client, summary)

    assert (paid.status_code, ignored.status_code) == (200, 200)
    account = get_account(app, "1")
    assert (account.plan, account.features) == ("pro", frozenset())
    record = store.inner.get_event("evt_summary")
    assert (record.status, record.error) == ("ignored", "the store keeps no entitlements")


def test_entitlements_kept_in_part_name_the_missing_method() -> None:
    with pytest.raises(StoreContractError) as raised:
        StripeBilling(new_app(), user_store=HalfEntitlementsStore())

    assert raised.value.missing == ("EntitlementLog.entitlements_of",)
    assert (
        'lacks EntitlementLog.entitlements_of (added in Unreleased (after 0.1.0), "Stripe '
        'Entitlements"; upgrade step 4' in str(raised.value)
    )


def test_a_complete_custom_store_passes_and_processes_events() -> None:
    store = CustomStore()
    app = new_app()

    StripeBilling(app, user_store=store)
    response = post_event(app.test_client(), subscription_event(customer="cus_test"))

    assert response.status_code == 200
    assert get_account(app, "1").plan == "pro"
    assert [(r.status, r.user_id) for r in store.inner.events] == [("processed", "1")]
    assert [r.id for r in store.inner.subscriptions] == ["sub_test"]


def test_missing_user_store_is_a_store_contract_error() -> None:
    with pytest.raises(StoreContractError, match="StripeBilling needs a user_store") as raised:
        StripeBilling(new_app())

    assert raised.value.missing == ("UserStore",)


def test_the_upgrade_steps_the_errors_name_are_in_the_changelog() -> None:
    with pytest.raises(StoreContractError) as raised:
        StripeBilling(new_app(), user_store=Release01Store())
    anchors = set(re.findall(r"CHANGELOG\.md#([\w-]+)", str(raised.value)))
    assert anchors == {"upgrading-a-custom-store"}

    section = changelog_section(anchors.pop())

    steps = dict(re.findall(r"^(\d)\. \*\*(.+?)\*\*", section, flags=re.MULTILINE))
    assert list(steps) == ["1", "2", "3", "4", "5", "6"]
    assert "SubscriptionLog" in steps["2"]
    assert "count_events" in steps["3"]
    assert "EntitlementLog" in steps["4"]
    assert "UsageLog" in steps["5"]
    assert "PurchaseLog" in steps["6"]


# The options, handled once


def test_init_app_options_win_over_the_constructors_per_app() -> None:
    first_store, second_store = CustomStore(), CustomStore()
    billing = StripeBilling(user_store=first_store)
    first, second = new_app(), new_app()

    billing.init_app(first)
    billing.init_app(second, user_store=second_store)
    post_event(second.test_client(), subscription_event(customer="cus_test"))

    assert get_account(second, "1").plan == "pro"
    assert get_account(first, "1").plan == "free"
    assert first.extensions["stripe_billing"].user_store is first_store
    assert second.extensions["stripe_billing"].user_store is second_store
    assert billing.user_store is first_store  # the constructor's options are not changed


def test_an_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected options: user_stor"):
        StripeBilling(user_stor=InMemoryUserStore())  # type: ignore[call-arg]


# flask billing check asks the contract's TableInspection, whatever the store's class


class InspectedStore(CustomStore):
    """A custom store over a database that can say which of its tables are missing."""

    missing = frozenset({"billing_subscriptions"})

    def library_tables(self) -> dict[str, str]:
        return {
            "events": "billing_events",
            "subscriptions": "billing_subscriptions",
            "entitlements": "billing_entitlements",
        }

    def missing_tables(self) -> frozenset[str]:
        return self.missing

    def create_tables_hint(self) -> str:
        return "run migrations/0002.sql"


def check_lines(store: object) -> tuple[int, list[str]]:
    app = new_app()
    StripeBilling(app, user_store=store)
    result = app.test_cli_runner().invoke(args=["billing", "check"])
    return result.exit_code, [" ".join(line.split()) for line in result.output.splitlines()]


def test_check_names_a_custom_stores_missing_table_with_its_own_hint() -> None:
    exit_code, lines = check_lines(InspectedStore())

    assert exit_code == 1
    assert "ok event log table billing_events exists" in lines
    assert (
        "missing subscription records table billing_subscriptions does not exist: run "
        "migrations/0002.sql (subscription events fail until then)"
    ) in lines
    assert not any("billing_entitlements" in line for line in lines)


def test_check_names_a_custom_stores_missing_event_table() -> None:
    store = InspectedStore()
    store.missing = frozenset({"billing_events"})

    exit_code, lines = check_lines(store)

    assert exit_code == 1
    assert (
        "missing event log table billing_events does not exist: run migrations/0002.sql "
        "(the webhook answers 503 until then)"
    ) in lines


def test_check_reads_from_a_custom_log_that_cannot_inspect_its_tables() -> None:
    exit_code, lines = check_lines(CustomStore())

    assert exit_code == 0
    assert "ok event log CustomStore answers" in lines


def test_check_says_the_database_is_unreachable_when_the_tables_cannot_be_inspected() -> None:
    class Unreachable(InspectedStore):
        def missing_tables(self) -> frozenset[str]:
            raise ConnectionError("connection refused")

    exit_code, lines = check_lines(Unreachable())

    assert exit_code == 1
    assert "failed event log database unreachable: ConnectionError: connection refused" in lines
    assert not any("subscription records" in line for line in lines)


def test_the_stores_page_prints_each_protocol_with_every_method() -> None:
    """docs/stores.md's protocol block: each class holds exactly the protocol's methods
    (``count_events`` once stood outside ``EventLog``)."""
    page = (CHANGELOG.parent / "docs" / "stores.md").read_text()
    block = page[page.index("## The protocols") :]
    code = block[block.index("```python\n") + len("```python\n") : block.index("\n```\n")]
    printed = {
        node.name: [item.name for item in node.body if isinstance(item, ast.FunctionDef)]
        for node in ast.parse(code).body
        if isinstance(node, ast.ClassDef)
    }

    assert all(isinstance(node, ast.ClassDef) for node in ast.parse(code).body)
    for protocol in (
        UserStore,
        SubscriptionLog,
        EventLog,
        EntitlementLog,
        AccountListing,
        TableInspection,
    ):
        methods = [name for name, value in vars(protocol).items() if inspect.isfunction(value)]
        assert printed[protocol.__name__] == [m for m in methods if not m.startswith("_")]
