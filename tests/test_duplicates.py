"""No double subscriptions: a second live paid subscription to the app's plans is found in the
transaction of the event that makes it live, signalled once, and (opted in) cancelled at
Stripe with a prorated refund of its payment, once."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import responses
from conftest import Host
from manage_support import API, API_KEY, BEFORE, CUSTOMER, answer, form
from support import NOW, checkout_event, envelope, load, post_event
from test_rules import record as rules_record

from flask_stripe_billing import Settings
from flask_stripe_billing.core.events import timestamp
from flask_stripe_billing.core.rules import found_duplicate
from flask_stripe_billing.testing import record_signals

PRICE = BEFORE["items"]["data"][0]["price"]["id"]
START = BEFORE["items"]["data"][0]["current_period_start"]
END = BEFORE["items"]["data"][0]["current_period_end"]
PAID = BEFORE["latest_invoice"]["amount_paid"]
INTENT = BEFORE["latest_invoice"]["payments"]["data"][0]["payment"]["payment_intent"]
CONFIG = {
    "STRIPE_API_KEY": API_KEY,
    "STRIPE_API_MAX_RETRIES": "0",
    "STRIPE_PRICE_PRO_MONTHLY": PRICE,
}
OPT_IN = {**CONFIG, "STRIPE_BILLING_DUPLICATES": "cancel_newest_and_refund"}
INCOMPLETE = load("api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.incomplete.json")


def subscription(sub_id: str, *, created: int, status: str = "active") -> dict[str, Any]:
    """Stripe's answer for the recorded subscription, as another subscription of the user."""
    obj = copy.deepcopy(BEFORE)
    obj.update(id=sub_id, customer=CUSTOMER, status=status, created=created)
    obj["latest_invoice"] = obj["latest_invoice"]["id"]  # events carry it unexpanded
    return obj


def event(obj: dict[str, Any], event_type: str, created: int) -> dict[str, Any]:
    return envelope(event_type, obj, created=created, api_version="2025-10-29.clover")


def cancelled(sub_id: str, canceled_at: int) -> dict[str, Any]:
    """What ``DELETE /v1/subscriptions/{id}`` answers: canceled, its invoice expanded."""
    obj = copy.deepcopy(BEFORE)
    obj.update(id=sub_id, customer=CUSTOMER, status="canceled", canceled_at=canceled_at)
    obj.update(ended_at=canceled_at)
    return obj


def notes(host: Host) -> list[str]:
    """What the event log notes of duplicates."""
    return [row["error"] for row in host.events() if "duplicate" in (row["error"] or "")]


def mock_cancel(stripe_api: responses.RequestsMock, sub_id: str, canceled_at: int) -> None:
    body = cancelled(sub_id, canceled_at)
    answer(stripe_api, "DELETE", f"/subscriptions/{sub_id}", body, at=NOW)
    refund = {"id": "re_test_dup", "object": "refund", "currency": "usd", "status": "succeeded"}
    answer(stripe_api, "POST", "/refunds", refund, at=NOW)


@pytest.fixture
def shop(make_host: Callable[..., Host]) -> Callable[[dict[str, Any]], Host]:
    def make(config: dict[str, Any]) -> Host:
        host = make_host(config)
        host.add_user(1, stripe_customer_id=CUSTOMER)
        return host

    return make


def two_tabs(created_first: int, created_second: int) -> list[dict[str, Any]]:
    """Two Checkouts paid from two tabs: each session's event and its subscription's."""
    deliveries = []
    for sub_id, created in (("sub_tab_one", created_first), ("sub_tab_two", created_second)):
        session = checkout_event(
            customer=CUSTOMER,
            subscription=sub_id,
            metadata={"user_id": "1", "price_id": PRICE},
            created=created + 1,
        )
        deliveries.append(session)
        deliveries.append(
            event(subscription(sub_id, created=created), "customer.subscription.created", created)
        )
    return deliveries


def test_two_tabs_signal_one_duplicate_and_cancel_nothing_by_default(
    shop: Callable[[dict[str, Any]], Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(CONFIG)
    with record_signals() as sent:
        for delivery in two_tabs(NOW - 100, NOW - 50):
            assert post_event(host.client, delivery).status_code == 200

    [notice] = sent["duplicate_subscription"]
    assert (notice["user_id"], notice["kept_subscription_id"]) == ("1", "sub_tab_one")
    assert notice["duplicate_subscription_id"] == "sub_tab_two"
    assert list(stripe_api.calls) == []
    assert host.user(1).plan == "pro"


def test_two_tabs_opted_in_cancel_the_newer_once_with_a_prorated_refund(
    shop: Callable[[dict[str, Any]], Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(OPT_IN)
    canceled_at = START + (END - START) // 4  # a quarter of the period used
    mock_cancel(stripe_api, "sub_tab_two", canceled_at)
    deliveries = two_tabs(NOW - 100, NOW - 50)
    with record_signals() as sent:
        for delivery in [*deliveries, *deliveries]:  # every event delivered twice
            assert post_event(host.client, delivery).status_code == 200

    assert len(sent["duplicate_subscription"]) == 1
    [cancel] = [c for c in stripe_api.calls if c.request.method == "DELETE"]
    assert cancel.request.url.startswith(f"{API}/subscriptions/sub_tab_two")
    assert "prorate=false" in cancel.request.url and "invoice_now=false" in cancel.request.url
    key = "flask-stripe-billing-duplicate-cancel-sub_tab_two"
    assert cancel.request.headers["Idempotency-Key"] == key
    [refund] = [c for c in stripe_api.calls if c.request.url == f"{API}/refunds"]
    assert form(refund)["payment_intent"] == INTENT
    assert form(refund)["amount"] == str(PAID * 3 // 4)
    assert form(refund)["reason"] == "duplicate"
    key = "flask-stripe-billing-duplicate-refund-sub_tab_two"
    assert refund.request.headers["Idempotency-Key"] == key
    assert host.subscription("sub_tab_two")["status"] == "canceled"
    assert host.user(1).stripe_subscription_id == "sub_tab_one"
    assert host.user(1).plan == "pro"
    assert notes(host) == [
        "duplicate subscription sub_tab_two (of sub_tab_one) cancelled at Stripe; "
        f"refunded {PAID * 3 // 4} usd (re_test_dup)"
    ]


def test_retry_after_incomplete_that_is_paid_late_is_one_duplicate(
    shop: Callable[[dict[str, Any]], Host], stripe_api: responses.RequestsMock
) -> None:
    """An incomplete first try, a second Checkout that pays, then the first try paid after
    all (its invoice's link): the newer (the retry) is the duplicate."""
    host = shop(OPT_IN)
    mock_cancel(stripe_api, "sub_retry", NOW)
    first = copy.deepcopy(INCOMPLETE)
    first.update(id="sub_first_try", customer=CUSTOMER, created=NOW - 300)
    for item in first["items"]["data"]:
        item["price"]["id"] = PRICE
    paid_late = copy.deepcopy(first)
    paid_late["status"] = "active"
    deliveries = [
        envelope("customer.subscription.created", first, created=NOW - 300),
        event(
            subscription("sub_retry", created=NOW - 200), "customer.subscription.created", NOW - 200
        ),
        envelope("customer.subscription.updated", paid_late, created=NOW - 10),
    ]
    with record_signals() as sent:
        for delivery in deliveries:
            assert post_event(host.client, delivery).status_code == 200
        assert post_event(host.client, deliveries[-1]).status_code == 200  # Stripe retries

    [notice] = sent["duplicate_subscription"]
    assert notice["kept_subscription_id"] == "sub_first_try"
    assert notice["duplicate_subscription_id"] == "sub_retry"
    assert len([c for c in stripe_api.calls if c.request.method == "DELETE"]) == 1
    assert host.subscription("sub_retry")["status"] == "canceled"
    assert host.user(1).stripe_subscription_id == "sub_first_try"


def test_an_incomplete_retry_that_expires_is_no_duplicate(
    shop: Callable[[dict[str, Any]], Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(OPT_IN)
    first = copy.deepcopy(INCOMPLETE)
    first.update(id="sub_first_try", customer=CUSTOMER, created=NOW - 300)
    for item in first["items"]["data"]:
        item["price"]["id"] = PRICE
    with record_signals() as sent:
        post_event(host.client, envelope("customer.subscription.created", first, created=NOW - 300))
        retry = subscription("sub_retry", created=NOW - 200)
        post_event(host.client, event(retry, "customer.subscription.created", NOW - 200))

    assert sent["duplicate_subscription"] == []
    assert list(stripe_api.calls) == []


def test_an_old_subscription_set_to_end_beside_a_new_one_is_no_duplicate(
    shop: Callable[[dict[str, Any]], Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(OPT_IN)
    old = subscription("sub_old", created=NOW - 900)
    old["cancel_at_period_end"] = True
    with record_signals() as sent:
        post_event(host.client, event(old, "customer.subscription.updated", NOW - 100))
        new = subscription("sub_new", created=NOW - 50)
        post_event(host.client, event(new, "customer.subscription.created", NOW - 50))

    assert sent["duplicate_subscription"] == []
    assert list(stripe_api.calls) == []


def test_a_subscription_to_a_price_the_app_does_not_configure_is_no_duplicate(
    shop: Callable[[dict[str, Any]], Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(OPT_IN)
    addon = subscription("sub_addon", created=NOW - 50)
    addon["items"]["data"][0]["price"]["id"] = "price_storage_addon"
    with record_signals() as sent:
        post_event(
            host.client,
            event(
                subscription("sub_plan", created=NOW - 90),
                "customer.subscription.created",
                NOW - 90,
            ),
        )
        post_event(host.client, event(addon, "customer.subscription.created", NOW - 50))

    assert sent["duplicate_subscription"] == []
    assert list(stripe_api.calls) == []


def test_a_cancel_stripe_refuses_is_noted_on_the_event_for_a_hand_cancel(
    shop: Callable[[dict[str, Any]], Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(OPT_IN)
    stripe_api.add(
        "DELETE",
        f"{API}/subscriptions/sub_tab_two",
        status=500,
        json={"error": {"type": "api_error", "message": "down"}},
    )
    with record_signals() as sent:
        for delivery in two_tabs(NOW - 100, NOW - 50):
            assert post_event(host.client, delivery).status_code == 200

    assert len(sent["duplicate_subscription"]) == 1
    assert [c.request.url for c in stripe_api.calls if c.request.url.endswith("/refunds")] == []
    [note] = notes(host)
    assert note.startswith("duplicate subscription sub_tab_two (of sub_tab_one) could not be")
    assert note.endswith("cancel it by hand")
    assert host.subscription("sub_tab_two")["status"] == "active"


def test_a_trialing_duplicate_is_cancelled_with_nothing_to_refund(
    shop: Callable[[dict[str, Any]], Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(OPT_IN)
    answer_body = cancelled("sub_tab_two", START + 1000)
    answer_body["latest_invoice"].update(amount_paid=0, status="paid")
    answer(stripe_api, "DELETE", "/subscriptions/sub_tab_two", answer_body, at=NOW)
    with record_signals():
        for delivery in two_tabs(NOW - 100, NOW - 50):
            post_event(host.client, delivery)

    assert [c.request.method for c in stripe_api.calls] == ["DELETE"]
    [note] = notes(host)
    assert note.endswith("cancelled at Stripe; nothing paid to refund")


def test_duplicates_setting_refuses_an_unknown_choice(
    make_host: Callable[..., Host],
) -> None:
    with pytest.raises(ValueError, match="STRIPE_BILLING_DUPLICATES"):
        make_host({**CONFIG, "STRIPE_BILLING_DUPLICATES": "cancel_both"})


# The rule itself, pure: the records before and after one event → the pair it finds.

PLANS = Settings(price_pro_monthly="price_pro")
OLDER, NEWER = NOW - 300, NOW - 100


def plan_record(sub_id: str, status: str = "active", *, at: int, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "price_ids": ("price_pro",),
        "created": timestamp(at),
        **fields,
    }
    return rules_record(sub_id, status, **values)


@pytest.mark.parametrize(
    ("before", "after", "others", "found"),
    [
        # two tabs: the newer becomes live beside the older
        (
            None,
            plan_record("sub_b", at=NEWER),
            [plan_record("sub_a", at=OLDER)],
            ("sub_a", "sub_b"),
        ),
        # an old incomplete try paid late beside the retry: the retry is the duplicate
        (
            plan_record("sub_a", "incomplete", at=OLDER),
            plan_record("sub_a", at=OLDER),
            [plan_record("sub_b", at=NEWER)],
            ("sub_a", "sub_b"),
        ),
        # already live before the event: found when it became live, not again
        (
            plan_record("sub_b", at=NEWER),
            plan_record("sub_b", at=NEWER, quantity=2),
            [plan_record("sub_a", at=OLDER)],
            None,
        ),
        # the other one is set to end (an upgrade by a new Checkout)
        (
            None,
            plan_record("sub_b", at=NEWER),
            [plan_record("sub_a", at=OLDER, cancel_at_period_end=True)],
            None,
        ),
        # the other one is past_due (a new Checkout replaces it): not paid, not judged
        (None, plan_record("sub_b", at=NEWER), [plan_record("sub_a", "past_due", at=OLDER)], None),
        # a trialing second subscription will charge too
        (
            None,
            plan_record("sub_b", "trialing", at=NEWER),
            [plan_record("sub_a", at=OLDER)],
            ("sub_a", "sub_b"),
        ),
        # an add-on on a price the app does not configure
        (
            None,
            plan_record("sub_b", at=NEWER, price_ids=("price_addon",)),
            [plan_record("sub_a", at=OLDER)],
            None,
        ),
        # alone
        (None, plan_record("sub_b", at=NEWER), [], None),
    ],
    ids=[
        "two tabs",
        "incomplete paid late",
        "already live",
        "ending",
        "past_due",
        "trialing",
        "add-on",
        "alone",
    ],
)
def test_the_duplicate_rule(before: Any, after: Any, others: list[Any], found: Any) -> None:
    assert found_duplicate(before, after, [*others, after], PLANS) == found
