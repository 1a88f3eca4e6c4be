"""Metered prices next to licensed ones (STRIPE_BILLING_METERED_PRICES): Checkout's line
items, ``change_plan`` moving the metered items, and the records showing them. Stripe's
HTTP API mocked with responses; the exact request bodies are asserted."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from conftest import Host
from flask import request
from manage_support import (
    AFTER,
    BEFORE,
    CUSTOMER,
    ITEM,
    PERIOD_END,
    SCHEDULE,
    SUB,
    answer,
    drop,
    managed_host,
    reads,
    writes,
)
from manage_support import (
    form as manage_form,
)
from support import NOW, checkout_event, envelope, load, post_event

from flask_stripe_billing import Settings
from flask_stripe_billing.core.events import read_subscription

API_KEY = "sk_test_51MeteredKey00000000000000"
API = "https://api.stripe.com/v1"
METERED = {"pro": ["metered-monthly"], "pro-annual": ["metered-annual"]}
CHECKOUT_CONFIG = {
    "STRIPE_API_KEY": API_KEY,
    "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
    "STRIPE_PRICE_PRO_YEARLY": "price_yearly",
    "STRIPE_SUCCESS_URL": "https://app.example.com/billing/success",
    "STRIPE_CANCEL_URL": "https://app.example.com/pricing",
    "STRIPE_BILLING_METERED_PRICES": {"pro": ["price_metered_api"]},
}
CUSTOMER_OBJECT = load("stripe-openapi/customer.json")
SESSION = load(
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json"
)
METERED_ITEM = "si_metered_1"


def metered_item(price: str, item_id: str = METERED_ITEM) -> dict[str, Any]:
    """The subscription's licensed item made a metered one: another price, usage billed
    from a meter, no quantity (Stripe keeps none on a metered item)."""
    item = copy.deepcopy(BEFORE["items"]["data"][0])
    item["id"] = item_id
    item["price"].update(id=price, nickname="API calls", unit_amount=1)
    item["price"]["recurring"].update(usage_type="metered", meter="mtr_test_1")
    item["plan"] = {**item["plan"], "id": price, "usage_type": "metered"}
    del item["quantity"]
    return item


def with_items(subscription: dict[str, Any], *items: dict[str, Any]) -> dict[str, Any]:
    """The subscription with ``items`` after its own."""
    obj = copy.deepcopy(subscription)
    obj["items"]["data"].extend(copy.deepcopy(list(items)))
    return obj


def session_form(stripe_api: responses.RequestsMock) -> dict[str, str]:
    [call] = [c for c in stripe_api.calls if c.request.url == f"{API}/checkout/sessions"]
    return {key: value[0] for key, value in parse_qs(call.request.body).items()}


@pytest.fixture
def shop(make_host: Callable[..., Host]) -> Callable[..., Host]:
    def make(**config: Any) -> Host:
        made = make_host(
            {**CHECKOUT_CONFIG, **config}, current_user_id=lambda: request.headers.get("X-User")
        )
        made.add_user(1, email="ada@example.com")
        return made

    return make


def checkout(host: Host, stripe_api: responses.RequestsMock, body: dict[str, Any]) -> Any:
    stripe_api.post(f"{API}/customers", json=CUSTOMER_OBJECT)
    stripe_api.post(f"{API}/checkout/sessions", json=SESSION)
    return host.client.post("/billing/checkout-session", json=body, headers={"X-User": "1"})


# Checkout


def test_checkout_adds_the_plans_metered_prices_without_a_quantity(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    response = checkout(shop(), stripe_api, {})

    assert response.status_code == 200
    assert session_form(stripe_api) == {
        "mode": "subscription",
        "customer": CUSTOMER_OBJECT["id"],
        "line_items[0][price]": "price_monthly",
        "line_items[0][quantity]": "1",
        "line_items[1][price]": "price_metered_api",
        "success_url": CHECKOUT_CONFIG["STRIPE_SUCCESS_URL"],
        "cancel_url": CHECKOUT_CONFIG["STRIPE_CANCEL_URL"],
        "client_reference_id": "1",
        "metadata[user_id]": "1",
        "metadata[price_id]": "price_monthly",
        "subscription_data[metadata][user_id]": "1",
        "allow_promotion_codes": "false",
    }


def test_metered_prices_listed_for_a_licensed_price_win_over_its_plans(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    metered = {"pro": ["price_metered_api"], "price_yearly": ["price_metered_api_yearly", "x"]}
    host = shop(STRIPE_BILLING_METERED_PRICES=json.dumps(metered))

    checkout(host, stripe_api, {"interval": "yearly"})

    sent = session_form(stripe_api)
    lines = {key: value for key, value in sent.items() if key.startswith("line_items")}
    assert lines == {
        "line_items[0][price]": "price_yearly",
        "line_items[0][quantity]": "1",
        "line_items[1][price]": "price_metered_api_yearly",
        "line_items[2][price]": "x",
    }


def test_a_plan_without_metered_prices_has_its_one_line(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = shop(STRIPE_BILLING_PLANS={"price_monthly": "basic"})

    checkout(host, stripe_api, {})

    lines = [key for key in session_form(stripe_api) if key.startswith("line_items")]
    assert lines == ["line_items[0][price]", "line_items[0][quantity]"]


def test_a_metered_price_is_not_one_a_client_may_check_out_alone(
    shop: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    response = checkout(shop(), stripe_api, {"price_id": "price_metered_api"})

    assert response.status_code == 400
    assert response.json is not None
    assert response.json["details"] == {"field": "price_id"}
    assert len(stripe_api.calls) == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('["price_metered_api"]', "must map plan names to lists of metered prices"),
        ({"pro": "price_metered_api"}, r"\['pro'\] must be a list of price ids"),
    ],
)
def test_metered_prices_that_are_not_plan_lists_are_a_configuration_error(
    value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_config({"STRIPE_BILLING_METERED_PRICES": value}, environ={})


# The records


def test_the_checkout_record_shows_the_metered_prices_of_its_plan(
    shop: Callable[..., Host],
) -> None:
    host = shop()
    host.add_user(2, stripe_customer_id="cus_test")
    event = checkout_event(metadata={"user_id": "2", "price_id": "price_monthly"})

    assert post_event(host.client, event).status_code == 200

    record = host.subscription("sub_test")
    assert (record["price_ids"], record["plan"]) == ("price_monthly price_metered_api", "pro")


def test_a_subscription_with_a_metered_item_records_both_prices_and_the_licensed_seats(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"STRIPE_BILLING_PLANS": {"small-monthly": "pro"}, "STRIPE_SEATS_MAX": "9"})
    host.add_user(1, stripe_customer_id=CUSTOMER)
    obj = copy.deepcopy(BEFORE)
    obj["quantity"] = None  # as Stripe answers for a subscription of several items
    obj["items"]["data"][0]["quantity"] = 3
    obj["items"]["data"].insert(0, metered_item("metered-monthly"))  # the metered item first
    event = envelope("customer.subscription.updated", obj, api_version="2025-10-29.clover")

    assert post_event(host.client, event).status_code == 200

    record = host.subscription(SUB)
    assert record["price_ids"] == "metered-monthly small-monthly"
    assert (record["plan"], record["quantity"]) == ("pro", 3)
    assert host.user(1).plan == "pro"


# change_plan


@pytest.fixture
def managed() -> Iterator[Host]:
    host = managed_host({"STRIPE_BILLING_METERED_PRICES": METERED})
    yield host
    drop(host)


def call(host: Host, method: str, *args: Any, **kwargs: Any) -> Any:
    with host.app.app_context():
        return getattr(host.billing, method)(*args, **kwargs)


def test_change_plan_now_moves_the_metered_items_to_the_new_plans(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api, with_items(BEFORE, metered_item("metered-monthly")))
    after = with_items(AFTER, metered_item("metered-annual", "si_metered_2"))
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", after, at=NOW)

    change = call(managed, "change_plan", 1, "small-annual")

    [update] = writes(stripe_api)
    assert update.request.url == f"{API}/subscriptions/{SUB}"
    assert manage_form(update) == {
        "items[0][id]": ITEM,
        "items[0][price]": "small-annual",
        "items[1][id]": METERED_ITEM,
        "items[1][deleted]": "true",
        "items[2][price]": "metered-annual",
        "proration_behavior": "create_prorations",
    }
    assert change.after.plan == "pro-annual"
    assert managed.subscription(SUB)["price_ids"] == "small-annual metered-annual"


def test_change_plan_adds_metered_items_a_subscription_lacks_and_keeps_one_it_has(
    stripe_api: responses.RequestsMock,
) -> None:
    both = {"pro": ["metered-shared"], "pro-annual": ["metered-shared", "metered-annual"]}
    host = managed_host({"STRIPE_BILLING_METERED_PRICES": both})
    try:
        reads(stripe_api, with_items(BEFORE, metered_item("metered-shared")))
        answer(stripe_api, "POST", f"/subscriptions/{SUB}", AFTER)

        call(host, "change_plan", 1, "small-annual")

        assert manage_form(writes(stripe_api)[0]) == {
            "items[0][id]": ITEM,
            "items[0][price]": "small-annual",
            "items[1][price]": "metered-annual",
            "proration_behavior": "create_prorations",
        }
    finally:
        drop(host)


def test_change_plan_leaves_items_on_prices_the_settings_do_not_name(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api, with_items(BEFORE, metered_item("someone-elses-addon", "si_addon")))
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", AFTER)

    call(managed, "change_plan", 1, "small-annual")

    assert manage_form(writes(stripe_api)[0]) == {
        "items[0][id]": ITEM,
        "items[0][price]": "small-annual",
        "items[1][price]": "metered-annual",
        "proration_behavior": "create_prorations",
    }


def test_change_plan_at_period_end_puts_the_new_plans_metered_prices_in_the_next_phase(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api, with_items(BEFORE, metered_item("metered-monthly")))
    schedule = copy.deepcopy(SCHEDULE)
    licensed = copy.deepcopy(schedule["phases"][0]["items"][0])
    licensed.update(price="small-monthly", quantity=1)
    metered = {**copy.deepcopy(licensed), "price": "metered-monthly"}
    del metered["quantity"]
    schedule["phases"][0].update(start_date=NOW - 86400, end_date=PERIOD_END)
    schedule["phases"][0]["items"] = [licensed, metered]
    schedule.update(customer=CUSTOMER, subscription=SUB, current_phase=None)
    answer(stripe_api, "POST", "/subscription_schedules", schedule)
    updated = {**schedule, "subscription": with_items(BEFORE, metered_item("metered-monthly"))}
    answer(stripe_api, "POST", f"/subscription_schedules/{schedule['id']}", updated)

    call(managed, "change_plan", 1, "small-annual", at_period_end=True)

    _, update = writes(stripe_api)
    phases = {k: v for k, v in manage_form(update).items() if k.startswith("phases")}
    assert phases == {
        "phases[0][items][0][price]": "small-monthly",
        "phases[0][items][0][quantity]": "1",
        "phases[0][items][1][price]": "metered-monthly",
        "phases[0][start_date]": str(NOW - 86400),
        "phases[0][end_date]": str(PERIOD_END),
        "phases[1][items][0][price]": "small-annual",
        "phases[1][items][0][quantity]": "1",
        "phases[1][items][1][price]": "metered-annual",
        "phases[1][proration_behavior]": "none",
    }


def test_preview_change_previews_the_metered_items_moved_too(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api, with_items(BEFORE, metered_item("metered-monthly")))
    preview = load("stripe-openapi/invoice.json")
    answer(stripe_api, "POST", "/invoices/create_preview", preview)

    call(managed, "preview_change", 1, "small-annual")

    [sent] = [c for c in stripe_api.calls if "create_preview" in c.request.url]
    details = {k: v for k, v in manage_form(sent).items() if k.startswith("subscription_details")}
    assert details == {
        "subscription_details[items][0][id]": ITEM,
        "subscription_details[items][0][price]": "small-annual",
        "subscription_details[items][1][id]": METERED_ITEM,
        "subscription_details[items][1][deleted]": "true",
        "subscription_details[items][2][price]": "metered-annual",
        "subscription_details[proration_behavior]": "create_prorations",
    }


def test_a_metered_item_has_no_seats_so_the_licensed_items_count() -> None:
    obj = with_items(BEFORE, metered_item("metered-monthly"))
    obj["quantity"] = None  # as Stripe answers for a subscription of several items
    obj["items"]["data"][0]["quantity"] = 4
    obj["items"]["data"].reverse()

    assert read_subscription(obj).quantity == 4
