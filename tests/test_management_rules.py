"""The pure rules of subscription changes: which item, which phases, which fields.
No app, no Stripe; objects from Stripe's own fixtures."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from support import load

from flask_stripe_billing import Settings
from flask_stripe_billing.core import changes
from flask_stripe_billing.core.events import read_subscription
from flask_stripe_billing.errors import ConflictError

BEFORE = load(
    "api-objects/pay-rails-vcr__2025-10-29.clover__subscription.active.before_price_swap.json"
)
SCHEDULE = load("stripe-openapi/subscription_schedule.json")
SETTINGS = Settings(price_pro_monthly="small-monthly", price_pro_yearly="small-annual")


def phase(start: int, end: int, *items: tuple[Any, int]) -> dict[str, Any]:
    """A phase of Stripe's schedule fixture with these (price, quantity) items."""
    made = copy.deepcopy(SCHEDULE["phases"][0])
    template = made["items"][0]
    made.update(
        start_date=start,
        end_date=end,
        items=[{**template, "price": price, "quantity": quantity} for price, quantity in items],
    )
    return made


def test_the_next_phase_swaps_only_the_changed_price_and_keeps_the_other_items() -> None:
    schedule = copy.deepcopy(SCHEDULE)
    schedule["phases"] = [
        phase(100, 200, ("small-monthly", 3), ("price_addon", 1)),
    ]
    schedule["current_phase"] = {"start_date": 100, "end_date": 200}

    params = changes.schedule_params(schedule, "small-monthly", "small-annual", Settings())

    assert params == {
        "end_behavior": "release",
        "phases": [
            {
                "items": [
                    {"price": "small-monthly", "quantity": 3},
                    {"price": "price_addon", "quantity": 1},
                ],
                "start_date": 100,
                "end_date": 200,
            },
            {
                "items": [
                    {"price": "small-annual", "quantity": 3},
                    {"price": "price_addon", "quantity": 1},
                ],
                "proration_behavior": "none",
            },
        ],
        "expand": ["subscription"],
    }


def test_a_second_change_replaces_the_scheduled_one_from_the_current_phase() -> None:
    schedule = copy.deepcopy(SCHEDULE)
    expanded_price = {"id": "small-monthly", "object": "price"}
    schedule["phases"] = [
        phase(100, 200, ("small-monthly", 1)),
        phase(200, 300, ("price_basic", 1)),
    ]
    schedule["phases"][0]["items"][0]["price"] = expanded_price
    schedule["current_phase"] = {"start_date": 100, "end_date": 200}

    params = changes.schedule_params(schedule, "small-monthly", "small-annual", Settings())

    first, second = params["phases"]
    assert (first["start_date"], first["end_date"]) == (100, 200)
    assert first["items"] == [{"price": "small-monthly", "quantity": 1}]
    assert second["items"] == [{"price": "small-annual", "quantity": 1}]


def test_a_schedule_without_a_current_phase_uses_its_first_and_one_without_phases_is_refused() -> (
    None
):
    schedule = copy.deepcopy(SCHEDULE)  # Stripe's fixture: not started, current_phase null
    price = schedule["phases"][0]["items"][0]["price"]

    params = changes.schedule_params(schedule, price, "small-annual", Settings())

    assert params["phases"][0]["start_date"] == schedule["phases"][0]["start_date"]
    schedule["phases"] = []
    with pytest.raises(ConflictError, match="no phase"):
        changes.schedule_params(schedule, price, "small-annual", Settings())


def test_the_changed_item_is_the_one_on_a_configured_price() -> None:
    subscription = copy.deepcopy(BEFORE)
    addon = copy.deepcopy(subscription["items"]["data"][0])
    addon["id"] = "si_addon"
    addon["price"]["id"] = "price_addon"
    subscription["items"]["data"].insert(0, addon)

    assert changes.changed_item(subscription, SETTINGS)["id"] == BEFORE["items"]["data"][0]["id"]
    subscription["items"]["data"] = [addon]
    assert changes.changed_item(subscription, SETTINGS)["id"] == "si_addon"
    subscription["items"]["data"] = []
    with pytest.raises(ConflictError, match="no items"):
        changes.changed_item(subscription, SETTINGS)


def test_resume_clears_what_set_the_end() -> None:
    at_period_end = read_subscription({**BEFORE, "cancel_at_period_end": True})
    at_a_date = read_subscription({**BEFORE, "cancel_at": 1_800_000_000})

    assert changes.resume_params(at_period_end) == {"cancel_at_period_end": False}
    assert changes.resume_params(at_a_date) == {"cancel_at": ""}
    assert changes.is_ending(at_a_date)


def test_idempotency_keys_are_new_for_each_change() -> None:
    keys = {changes.idempotency_key("cancel") for _ in range(100)}
    assert len(keys) == 100
    assert all(key.startswith("flask-stripe-billing-cancel-") for key in keys)
