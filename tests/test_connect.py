"""Connect and Accounts v2: an event from a connected account is never applied as the
platform's own unless the app opts in (``STRIPE_CONNECT_ACCOUNTS``), and an object that
names its customer by ``customer_account`` is matched by it only when the app links
accounts that way (``STRIPE_MATCH_CUSTOMER_ACCOUNT``); otherwise it waits ``unmatched``
with a reason that names ``customer_account``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import responses
from conftest import Host
from support import checkout_event, load_object, post_event, subscription_event
from thin_support import notification, serve, subscription_object, thin_config

from flask_stripe_billing.config import Settings
from flask_stripe_billing.core.rules import foreign_account_reason

THIN = "/stripe/thin-webhook"
#: The dahlia-layout subscription Stripe's test-mode API answered (it has ``customer_account``).
DAHLIA_SUBSCRIPTION = "api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json"
Received = dict[str, list[dict[str, Any]]]


def from_connected_account(
    event: dict[str, Any], account: str = "acct_connected"
) -> dict[str, Any]:
    """The event as a Connect endpoint receives it from a connected account."""
    return {**event, "account": account}


def rows(host: Host) -> list[tuple[str, str, str | None]]:
    return [(r["id"], r["status"], r["error"]) for r in host.events()]


def accounts_v2_subscription_event(
    *, customer: str | None, customer_account: str, status: str = "active", **kwargs: Any
) -> dict[str, Any]:
    """A dahlia subscription event whose object names an Accounts v2 ``customer_account``."""
    event = subscription_event(status=status, layout="basil", **kwargs)
    obj = load_object(DAHLIA_SUBSCRIPTION)
    obj.update(
        id=event["data"]["object"]["id"],
        status=status,
        customer=customer,
        customer_account=customer_account,
    )
    event["data"]["object"] = obj
    event["api_version"] = "2026-03-25.dahlia"
    return event


def test_an_event_from_a_connected_account_is_ignored_with_the_reason(
    host: Host, received: Received
) -> None:
    event = from_connected_account(subscription_event(event_id="evt_connected"))

    response = post_event(host.client, event)

    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_id) == ("free", None)
    [(event_id, status, reason)] = rows(host)
    assert (event_id, status) == ("evt_connected", "ignored")
    assert reason is not None
    assert "connected account acct_connected" in reason
    assert "STRIPE_CONNECT_ACCOUNTS" in reason
    assert host.subscriptions() == []
    assert "plan_changed" not in received
    [seen] = received["webhook_received"]
    assert seen["status"] == "ignored"


def test_an_ignored_connected_event_stays_ignored_when_delivered_again(host: Host) -> None:
    event = from_connected_account(subscription_event(event_id="evt_connected"))
    post_event(host.client, event)

    post_event(host.client, event)

    assert [status for _, status, _ in rows(host)] == ["ignored"]
    assert host.user(1).plan == "free"


@pytest.mark.parametrize("allowed", ["acct_connected", "acct_other, acct_connected", "*"])
def test_events_of_the_connected_accounts_the_app_lists_are_applied(
    make_host: Callable[..., Host], allowed: str
) -> None:
    host = make_host({"STRIPE_CONNECT_ACCOUNTS": allowed})
    host.add_user(1, stripe_customer_id="cus_test")

    post_event(host.client, from_connected_account(subscription_event()))

    assert host.user(1).plan == "pro"
    assert [status for _, status, _ in rows(host)] == ["processed"]


def test_a_connected_account_the_app_does_not_list_is_still_ignored(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"STRIPE_CONNECT_ACCOUNTS": "acct_mine"})
    host.add_user(1, stripe_customer_id="cus_test")

    post_event(host.client, from_connected_account(subscription_event(), "acct_stranger"))

    assert host.user(1).plan == "free"
    [(_, status, reason)] = rows(host)
    assert status == "ignored"
    assert reason is not None and "acct_stranger" in reason


def test_an_ignored_connected_event_asks_stripe_nothing_in_refetch_mode(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_REFETCH_SUBSCRIPTIONS": True, "STRIPE_API_KEY": "sk_test_x"})
    host.add_user(1, stripe_customer_id="cus_test")

    post_event(host.client, from_connected_account(subscription_event()))

    assert len(stripe_api.calls) == 0
    assert [status for _, status, _ in rows(host)] == ["ignored"]


def test_a_thin_notification_in_a_connected_accounts_context_is_ignored_without_a_fetch(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host(thin_config())
    host.add_user(1, stripe_customer_id="cus_test")
    serve(stripe_api, subscription_object(status="active"))

    response = post_event(
        host.client,
        notification(event_id="evt_thin_connected", context="acct_connected"),
        secret=thin_config()["STRIPE_THIN_WEBHOOK_SECRET"],
        path=THIN,
    )

    assert response.status_code == 200
    assert len(stripe_api.calls) == 0
    assert host.user(1).plan == "free"
    [(event_id, status, reason)] = rows(host)
    assert (event_id, status) == ("evt_thin_connected", "ignored")
    assert reason is not None and "connected account acct_connected" in reason


def test_a_thin_notification_of_a_listed_connected_account_is_applied(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host(thin_config(STRIPE_CONNECT_ACCOUNTS="acct_connected"))
    host.add_user(1, stripe_customer_id="cus_test")
    fetch = serve(stripe_api, subscription_object(status="active"))

    post_event(
        host.client,
        notification(context="acct_connected"),
        secret=thin_config()["STRIPE_THIN_WEBHOOK_SECRET"],
        path=THIN,
    )

    assert fetch.calls[0].request.headers["Stripe-Context"] == "acct_connected"
    assert host.user(1).plan == "pro"


def test_connect_accounts_setting_refuses_what_is_not_an_account_id() -> None:
    with pytest.raises(ValueError, match="STRIPE_CONNECT_ACCOUNTS"):
        Settings.from_config({"STRIPE_CONNECT_ACCOUNTS": "cus_123"}, environ={})
    settings = Settings.from_config({"STRIPE_CONNECT_ACCOUNTS": "acct_a,acct_b"}, environ={})
    assert settings.connect_accounts == frozenset({"acct_a", "acct_b"})
    assert Settings.from_config({}, environ={}).connect_accounts == frozenset()


def test_a_subscription_named_only_by_customer_account_waits_unmatched_naming_it(
    make_host: Callable[..., Host], received: Received
) -> None:
    host = make_host()
    host.add_user(1, stripe_customer_id="acct_customer_1")  # the app did not opt in
    event = accounts_v2_subscription_event(
        customer=None, customer_account="acct_customer_1", user_id="1", event_id="evt_v2"
    )

    response = post_event(host.client, event)

    assert response.status_code == 200
    assert host.user(1).plan == "free"
    [(_, status, reason)] = rows(host)
    assert status == "unmatched"
    assert reason is not None
    assert "customer_account acct_customer_1" in reason
    assert "STRIPE_MATCH_CUSTOMER_ACCOUNT" in reason
    [missing] = received["customer_not_found"]
    assert "customer_account" in missing["reason"]
    listed = host.app.test_cli_runner().invoke(args=["billing", "events"])
    assert listed.exit_code == 0
    assert "customer_account" in listed.output


def test_a_payment_link_checkout_of_an_accounts_v2_customer_grants_nothing_unlinked(
    make_host: Callable[..., Host],
) -> None:
    host = make_host()
    host.add_user(2)
    event = checkout_event(customer=None, client_reference_id="2", subscription="sub_v2")
    event["data"]["object"]["customer_account"] = "acct_customer_2"

    post_event(host.client, event)

    user = host.user(2)
    assert (user.plan, user.stripe_customer_id, user.stripe_subscription_id) == ("free", None, None)
    [(_, status, reason)] = rows(host)
    assert status == "unmatched"
    assert reason is not None and "customer_account acct_customer_2" in reason


def test_an_unknown_customer_beside_a_customer_account_says_both(
    make_host: Callable[..., Host],
) -> None:
    host = make_host()
    event = accounts_v2_subscription_event(customer="cus_unknown", customer_account="acct_c")

    post_event(host.client, event)

    [(_, status, reason)] = rows(host)
    assert status == "unmatched"
    assert reason is not None
    assert "customer cus_unknown" in reason and "customer_account is acct_c" in reason


def test_with_customer_account_matching_an_account_linked_to_it_is_applied(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"STRIPE_MATCH_CUSTOMER_ACCOUNT": True})
    host.add_user(1, stripe_customer_id="acct_customer_1")
    event = accounts_v2_subscription_event(
        customer="cus_beside", customer_account="acct_customer_1", subscription="sub_v2"
    )

    post_event(host.client, event)

    user = host.user(1)
    assert (user.plan, user.stripe_subscription_id) == ("pro", "sub_v2")
    assert host.subscription("sub_v2")["customer_id"] == "acct_customer_1"
    assert [(r["status"], r["customer_id"]) for r in host.events()] == [
        ("processed", "acct_customer_1")
    ]


def test_with_customer_account_matching_a_checkout_links_the_account_it_names(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"STRIPE_MATCH_CUSTOMER_ACCOUNT": True})
    host.add_user(2)
    event = checkout_event(customer=None, client_reference_id="2", subscription="sub_v2")
    event["data"]["object"]["customer_account"] = "acct_customer_2"

    post_event(host.client, event)

    user = host.user(2)
    assert (user.plan, user.stripe_customer_id, user.stripe_subscription_id) == (
        "pro",
        "acct_customer_2",
        "sub_v2",
    )


def test_with_customer_account_matching_an_unknown_one_is_named_in_the_reason(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"STRIPE_MATCH_CUSTOMER_ACCOUNT": True})
    event = accounts_v2_subscription_event(customer=None, customer_account="acct_nobody")

    post_event(host.client, event)

    [(_, status, reason)] = rows(host)
    assert (status, reason) == ("unmatched", "no account is linked to customer_account acct_nobody")


def test_a_customer_account_over_the_id_length_is_refused(host: Host) -> None:
    event = accounts_v2_subscription_event(customer=None, customer_account="acct_" + "x" * 300)

    response = post_event(host.client, event)

    assert response.status_code == 400
    assert host.events() == []


def test_an_unmatched_customer_account_event_applies_on_replay_once_matching_is_on(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    database = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'billing.db'}"}
    before = make_host(database)
    before.add_user(1)
    event = accounts_v2_subscription_event(
        customer=None, customer_account="acct_customer_1", subscription="sub_v2"
    )
    post_event(before.client, event)
    assert [r["status"] for r in before.events()] == ["unmatched"]
    after = make_host({**database, "STRIPE_MATCH_CUSTOMER_ACCOUNT": True}, create_tables=False)
    cli = after.app.test_cli_runner()

    linked = cli.invoke(args=["billing", "link", "1", "acct_customer_1"])
    replayed = cli.invoke(args=["billing", "replay", "--all"])

    assert linked.exit_code == 0, linked.output
    assert replayed.exit_code == 0, replayed.output
    user = after.user(1)
    assert (user.stripe_customer_id, user.plan, user.stripe_subscription_id) == (
        "acct_customer_1",
        "pro",
        "sub_v2",
    )
    assert [r["status"] for r in after.events()] == ["processed"]


@pytest.mark.parametrize(
    ("account", "listed", "applied"),
    [
        (None, "", True),  # the platform's own event
        ("acct_a", "", False),
        ("acct_a", "acct_a", True),
        ("acct_a", "acct_b", False),
        ("acct_a", "*", True),
    ],
)
def test_which_accounts_events_apply(account: str | None, listed: str, applied: bool) -> None:
    settings = Settings.from_config({"STRIPE_CONNECT_ACCOUNTS": listed}, environ={})

    reason = foreign_account_reason(account, settings)

    assert (reason is None) == applied
    if not applied:
        assert reason is not None and f"connected account {account}" in reason
