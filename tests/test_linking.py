"""Linking a Stripe customer: an event never moves an account to another customer.

A Payment Link lets the payer choose ``client_reference_id``, so a paid Checkout
for an unknown customer may name any account. Only an account without a
customer is linked by an event; otherwise the event waits, ``unmatched`` with
its reason, until an operator links by hand and replays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conftest import Host
from support import checkout_event, post_event, subscription_event

from flask_stripe_billing.testing import get_subscriptions, record_signals


def billing(host: Host, *args: str) -> Any:
    return host.app.test_cli_runner().invoke(args=["billing", *args])


def paid_checkout_for_cus_x() -> dict[str, Any]:
    return checkout_event(
        customer="cus_x",
        subscription="sub_x",
        client_reference_id="1",
        metadata={"user_id": "1"},
        event_id="evt_checkout_cus_x",
    )


def test_event_for_unknown_customer_links_an_account_without_customer(
    make_host: Callable[..., Host],
) -> None:
    host = make_host()
    host.add_user(1)

    response = post_event(host.client, paid_checkout_for_cus_x())

    assert response.status_code == 200
    user = host.user(1)
    assert (user.stripe_customer_id, user.plan, user.stripe_subscription_id) == (
        "cus_x",
        "pro",
        "sub_x",
    )
    assert [row["status"] for row in host.events()] == ["processed"]


def test_account_linked_to_another_customer_keeps_it_and_the_event_waits_unmatched(
    make_host: Callable[..., Host],
) -> None:
    host = make_host()
    host.add_user(1, stripe_customer_id="cus_b")

    with record_signals() as sent:
        response = post_event(host.client, paid_checkout_for_cus_x())

    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    user = host.user(1)
    assert (user.stripe_customer_id, user.plan, user.stripe_subscription_id) == (
        "cus_b",
        "free",
        None,
    )
    (row,) = host.events()
    assert row["status"] == "unmatched"
    assert get_subscriptions(host.app, 1) == []
    assert "account 1 is linked to customer cus_b, not cus_x" in row["error"]
    (not_found,) = sent["customer_not_found"]
    assert not_found["customer_id"] == "cus_x"
    assert not_found["reason"] == row["error"]
    assert sent["plan_changed"] == []


def test_link_then_replay_applies_what_waited(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.add_user(1, stripe_customer_id="cus_b")
    post_event(host.client, paid_checkout_for_cus_x())
    later = subscription_event(
        "customer.subscription.created",
        customer="cus_x",
        subscription="sub_x",
        status="active",
        event_id="evt_sub_x_created",
    )
    post_event(host.client, later)
    assert [row["status"] for row in host.events()] == ["unmatched", "unmatched"]

    linked = billing(host, "link", "1", "cus_x")

    assert linked.exit_code == 0, linked.output
    assert "Linked user 1 to customer cus_x (was cus_b)." in linked.output
    assert "2 unmatched events of cus_x wait" in linked.output
    assert host.user(1).plan == "free"  # linking alone applies nothing

    replayed = billing(host, "replay", "--all")

    assert replayed.exit_code == 0, replayed.output
    user = host.user(1)
    assert (user.stripe_customer_id, user.plan, user.stripe_subscription_status) == (
        "cus_x",
        "pro",
        "active",
    )
    assert {row["status"] for row in host.events()} == {"processed"}
    (record,) = get_subscriptions(host.app, 1)
    assert (record.id, record.customer_id, record.status) == ("sub_x", "cus_x", "active")
    assert record.last_event_at is not None  # the subscription's own event applied


def test_link_refuses_a_customer_held_by_another_account(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.add_user(1, stripe_customer_id="cus_b")
    host.add_user(2, stripe_customer_id="cus_x")

    result = billing(host, "link", "1", "cus_x")

    assert result.exit_code == 1
    assert "Customer cus_x is linked to user 2; nothing was linked." in result.output
    assert host.user(1).stripe_customer_id == "cus_b"


def test_link_of_an_unknown_user_exits_2(make_host: Callable[..., Host]) -> None:
    host = make_host()

    result = billing(host, "link", "7", "cus_x")

    assert result.exit_code == 2
    assert "No user 7; nothing was linked." in result.output
