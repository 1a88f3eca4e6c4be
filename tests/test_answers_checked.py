"""Every Stripe answer is checked before it is applied: readable and storable by the rules the
snapshot webhook uses, and the object asked for (same id, same customer). Otherwise the
management routes answer 502 JSON and a thin notification is recorded ``failed`` with the
reason (``replay`` retries it); nothing is applied. Stripe's API mocked with responses."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses
from conftest import Host
from manage_support import (
    API,
    CUSTOMER,
    SUB,
    SUBSCRIBED_AT,
    answer,
    drop,
    managed_host,
    reads,
    subscription,
    writes,
)
from support import NOW, envelope, post_event
from thin_support import THIN_SECRET, notification, subscription_object, thin_config

ROUTES_ON = {"STRIPE_BILLING_MANAGEMENT_ROUTES": "1"}
#: Each route with a body it accepts.
ROUTES = {
    "cancel": {"at_period_end": True},
    "resume": {},
    "change-plan": {"price_id": "small-annual"},
    "preview-change": {"price_id": "small-annual"},
    "quantity": {"quantity": 3},
}


def huge_created() -> dict[str, Any]:
    return subscription(created=10**20)


def huge_quantity() -> dict[str, Any]:
    obj = subscription()
    obj["items"]["data"][0]["quantity"] = 10**30
    return obj


def no_id() -> dict[str, Any]:
    obj = subscription()
    del obj["id"]
    return obj


#: Stripe 200 answers that are no readable subscription.
UNREADABLE: dict[str, Callable[[], Any]] = {
    "empty": dict,
    "list": lambda: [subscription()],
    "no-id": no_id,
    "created-1e20": huge_created,
    "quantity-1e30": huge_quantity,
}


@pytest.fixture
def managed() -> Iterator[Host]:
    host = managed_host(ROUTES_ON)
    yield host
    drop(host)


def post(host: Host, route: str, body: Any) -> Any:
    return host.client.post(f"/billing/subscription/{route}", json=body, headers={"X-User": "1"})


def billing_of(host: Host, user_id: int) -> tuple[Any, ...]:
    user = host.user(user_id)
    return (
        user.plan,
        user.stripe_subscription_status,
        user.stripe_subscription_id,
        user.subscription_quantity,
        user.cancel_at_period_end,
    )


def assert_bad_gateway(response: Any) -> dict[str, Any]:
    assert response.status_code == 502, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert body["error"] == "external_service_error"
    assert body["details"]["service"] == "Stripe"
    return body


# Management routes


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("unreadable", UNREADABLE)
def test_an_unreadable_read_answers_502_json_from_every_route_and_changes_nothing(
    managed: Host, stripe_api: responses.RequestsMock, route: str, unreadable: str
) -> None:
    before = billing_of(managed, 1)
    records = managed.subscriptions()
    stripe_api.get(f"{API}/subscriptions/{SUB}", json=UNREADABLE[unreadable]())

    response = post(managed, route, ROUTES[route])

    assert_bad_gateway(response)
    assert writes(stripe_api) == []  # nothing asked of Stripe on an answer it cannot read
    assert billing_of(managed, 1) == before
    assert managed.subscriptions() == records


@pytest.mark.parametrize(
    ("route", "method", "unreadable"),
    [
        ("cancel", "POST", "created-1e20"),
        ("quantity", "POST", "quantity-1e30"),
        ("resume", "POST", "empty"),
        ("change-plan", "POST", "no-id"),
        ("quantity", "POST", "list"),
    ],
)
def test_an_unreadable_change_answer_is_502_json_and_nothing_is_applied(
    managed: Host, stripe_api: responses.RequestsMock, route: str, method: str, unreadable: str
) -> None:
    before = billing_of(managed, 1)
    records = managed.subscriptions()
    reads(stripe_api, subscription(cancel_at_period_end=route == "resume"))
    stripe_api.add(method, f"{API}/subscriptions/{SUB}", json=UNREADABLE[unreadable]())

    response = post(managed, route, ROUTES[route])

    assert_bad_gateway(response)
    assert billing_of(managed, 1) == before
    assert managed.subscriptions() == records


def give_user_2_sub_2(host: Host) -> None:
    """User 2 pays too: customer ``cus_2``, subscription ``sub_2``."""
    with host.app.app_context():
        user = host.db.session.get(host.User, 2)
        user.stripe_customer_id = "cus_2"
        host.db.session.commit()
    other = subscription(id="sub_2", customer="cus_2")
    event = envelope(
        "customer.subscription.updated",
        other,
        created=SUBSCRIBED_AT,
        api_version="2025-10-29.clover",
    )
    assert post_event(host.client, event).status_code == 200
    assert billing_of(host, 2)[:3] == ("pro", "active", "sub_2")


def test_a_seat_change_answered_with_another_customers_subscription_touches_no_one(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    give_user_2_sub_2(managed)
    before = (billing_of(managed, 1), billing_of(managed, 2))
    reads(stripe_api)
    stranger = subscription(id="sub_2", customer="cus_2", status="canceled", ended_at=NOW)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", stranger, at=NOW)

    response = post(managed, "quantity", {"quantity": 3})

    body = assert_bad_gateway(response)
    assert f"sub_2, not {SUB}" in body["message"]
    assert (billing_of(managed, 1), billing_of(managed, 2)) == before
    assert managed.subscription("sub_2")["status"] == "active"


def test_a_change_answered_with_the_same_id_of_another_customer_is_502(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    before = billing_of(managed, 1)
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(customer="cus_2"), at=NOW)

    response = post(managed, "quantity", {"quantity": 3})

    body = assert_bad_gateway(response)
    assert f"belongs to customer cus_2, not {CUSTOMER}" in body["message"]
    assert billing_of(managed, 1) == before


def test_a_read_answered_with_another_subscription_is_502_and_asks_stripe_nothing(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api, subscription(id="sub_2"))

    response = post(managed, "cancel", {"at_period_end": False})

    assert_bad_gateway(response)
    assert writes(stripe_api) == []


# Thin notifications


@pytest.fixture
def thin_host(make_host: Callable[..., Host]) -> Host:
    host = make_host(thin_config(STRIPE_API_MAX_RETRIES="0"))
    host.add_user(1, stripe_customer_id="cus_test")
    return host


def post_thin(host: Host, body: dict[str, Any]) -> Any:
    return post_event(host.client, body, secret=THIN_SECRET, path="/stripe/thin-webhook")


def row_of(host: Host, event_id: str) -> dict[str, Any]:
    (row,) = [row for row in host.events() if row["id"] == event_id]
    return row


def thin_no_id() -> dict[str, Any]:
    obj = subscription_object()
    del obj["id"]
    return obj


def thin_huge_created() -> dict[str, Any]:
    return {**subscription_object(), "created": 10**20}


def thin_huge_quantity() -> dict[str, Any]:
    obj = subscription_object()
    obj["items"]["data"][0]["quantity"] = 10**30
    return obj


#: An answer, the status it leaves the notification in (``received``: the answer is no
#: object, as when the fetch fails), and the reason recorded.
THIN_UNREADABLE: dict[str, tuple[Callable[[], Any], str, str]] = {
    "no-id": (thin_no_id, "failed", "not a subscription with an id"),
    "list": (lambda: [subscription_object()], "received", "not an object"),
    "empty": (dict, "failed", "not a subscription with an id"),
    "created-1e20": (thin_huge_created, "failed", "created is not a Unix time"),
    "quantity-1e30": (thin_huge_quantity, "failed", "quantity does not fit in 64 bits"),
}


@pytest.mark.parametrize("unreadable", THIN_UNREADABLE)
def test_an_unreadable_fetched_object_records_the_notification_failed_and_replay_retries_it(
    thin_host: Host, stripe_api: responses.RequestsMock, unreadable: str
) -> None:
    make, status, reason = THIN_UNREADABLE[unreadable]
    fetch = stripe_api.get(f"{API}/subscriptions/sub_test", json=make())

    response = post_thin(thin_host, notification(event_id="evt_thin_bad"))

    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    assert len(fetch.calls) == 1
    row = row_of(thin_host, "evt_thin_bad")
    assert row["status"] == status
    assert "subscription sub_test: " in row["error"]
    assert reason in row["error"]
    assert thin_host.user(1).plan == "free"
    assert thin_host.subscriptions() == []

    stripe_api.replace(responses.GET, fetch.url, json=subscription_object(status="active"))
    result = thin_host.app.test_cli_runner().invoke(args=["billing", "replay", "--all"])

    assert result.exit_code == 0, result.output
    assert f"evt_thin_bad v1.customer.subscription.updated: {status} → processed" in result.output
    assert row_of(thin_host, "evt_thin_bad")["status"] == "processed"
    assert thin_host.user(1).plan == "pro"


def test_stripes_next_delivery_of_a_failed_notification_fetches_again(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    fetch = stripe_api.get(f"{API}/subscriptions/sub_test", json={})
    body = notification(event_id="evt_thin_again")
    assert post_thin(thin_host, body).status_code == 200
    assert row_of(thin_host, "evt_thin_again")["status"] == "failed"
    stripe_api.replace(responses.GET, fetch.url, json=subscription_object(status="active"))

    assert post_thin(thin_host, body).status_code == 200

    assert row_of(thin_host, "evt_thin_again")["status"] == "processed"
    assert thin_host.user(1).plan == "pro"


def test_a_thin_fetch_answered_with_another_subscription_touches_no_one(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    thin_host.add_user(2, stripe_customer_id="cus_2")
    paying = copy.deepcopy(subscription_object(subscription="sub_2", customer="cus_2"))
    post_event(thin_host.client, envelope("customer.subscription.updated", paying, created=NOW))
    assert thin_host.user(2).plan == "pro"
    ended = subscription_object(subscription="sub_2", customer="cus_2", status="canceled")
    stripe_api.get(f"{API}/subscriptions/sub_1", json=ended)

    response = post_thin(thin_host, notification(related_id="sub_1", event_id="evt_thin_sub_1"))

    assert response.status_code == 200
    row = row_of(thin_host, "evt_thin_sub_1")
    assert row["status"] == "failed"
    assert "it answered with sub_2, not sub_1" in row["error"]
    user = thin_host.user(2)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    assert thin_host.subscription("sub_2")["status"] == "active"


def test_a_preview_answered_with_a_list_is_502_json(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    stripe_api.post(f"{API}/invoices/create_preview", json=[{"object": "invoice"}])

    response = post(managed, "preview-change", {"price_id": "small-annual"})

    assert_bad_gateway(response)
