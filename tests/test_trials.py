"""Trials at Checkout: days per price, cardless trials, one trial per account, trial end stored.

Stripe's HTTP API is mocked with responses; the trial's end comes from a real
``trialing`` subscription returned by Stripe's test-mode API.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from conftest import Host
from flask import request
from support import load_object, post_event, subscription_event
from test_checkout import API, CONFIG, CUSTOMER, SESSION, as_user, form, stripe_calls, subscribe

from flask_stripe_billing.state import get_state
from flask_stripe_billing.testing import record_signals

TRIALING = "api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json"


@pytest.fixture
def trial_shop(make_host: Callable[..., Host]) -> Callable[..., Host]:
    """A host with Checkout configured, user 1 without a customer, and ``config`` added."""

    def make(**config: Any) -> Host:
        made = make_host(
            {**CONFIG, **config}, current_user_id=lambda: request.headers.get("X-User")
        )
        made.add_user(1, email="ada@example.com")
        return made

    return make


def checkout_form(
    host: Host, stripe_api: Any, body: dict[str, Any], user: str = "1"
) -> dict[str, str]:
    """POST the JSON checkout for ``user``; the form fields Stripe received for the session."""
    stripe_api.add(responses.POST, f"{API}/customers", json=CUSTOMER)
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)
    answer = host.client.post("/billing/checkout-session", json=body, headers=as_user(user))
    assert answer.status_code == 200, answer.json
    return form(stripe_calls(stripe_api, "/checkout/sessions")[-1])


def trial_fields(sent: dict[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in sent.items()
        if "trial" in key or key == "payment_method_collection"
    }


def test_trial_days_for_every_price_are_sent_as_trial_period_days(
    trial_shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = trial_shop(STRIPE_TRIAL_DAYS="14")

    sent = checkout_form(host, stripe_api, {"interval": "yearly"})

    assert trial_fields(sent) == {"subscription_data[trial_period_days]": "14"}
    assert sent["subscription_data[metadata][user_id]"] == "1"  # still linked to the user
    assert sent["line_items[0][price]"] == "price_yearly"


def test_trial_days_per_price_give_a_trial_only_to_the_prices_named(
    trial_shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = trial_shop(STRIPE_TRIAL_DAYS={"price_yearly": 30})
    host.add_user(2, email="bo@example.com", stripe_customer_id="cus_bo")

    yearly = checkout_form(host, stripe_api, {"interval": "yearly"})
    monthly = checkout_form(host, stripe_api, {"interval": "monthly"}, user="2")

    assert trial_fields(yearly) == {"subscription_data[trial_period_days]": "30"}
    assert trial_fields(monthly) == {}


def test_a_cardless_trial_asks_for_no_card_and_cancels_without_one_by_default(
    trial_shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = trial_shop(STRIPE_TRIAL_DAYS=7, STRIPE_TRIAL_WITHOUT_CARD="true")

    sent = checkout_form(host, stripe_api, {})

    assert trial_fields(sent) == {
        "subscription_data[trial_period_days]": "7",
        "payment_method_collection": "if_required",
        "subscription_data[trial_settings][end_behavior][missing_payment_method]": "cancel",
    }


def test_what_a_cardless_trial_does_at_its_end_is_configurable(
    trial_shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = trial_shop(
        STRIPE_TRIAL_DAYS="price_monthly=10",
        STRIPE_TRIAL_WITHOUT_CARD=True,
        STRIPE_TRIAL_END_BEHAVIOR="pause",
    )

    sent = checkout_form(host, stripe_api, {"interval": "monthly"})

    assert sent["subscription_data[trial_period_days]"] == "10"
    assert sent["subscription_data[trial_settings][end_behavior][missing_payment_method]"] == (
        "pause"
    )


def test_without_trial_days_a_cardless_setting_sends_nothing(
    trial_shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = trial_shop(STRIPE_TRIAL_WITHOUT_CARD=True)

    assert trial_fields(checkout_form(host, stripe_api, {})) == {}


@pytest.mark.parametrize("status", ["canceled", "incomplete_expired", "past_due"])
def test_an_account_that_had_a_subscription_gets_no_second_trial(
    trial_shop: Callable[..., Host], stripe_api: Any, status: str
) -> None:
    host = trial_shop(STRIPE_TRIAL_DAYS=14, STRIPE_TRIAL_WITHOUT_CARD=True)
    subscribe(host, 2, "cus_former", "sub_old", status)

    sent = checkout_form(host, stripe_api, {}, user="2")

    assert trial_fields(sent) == {}
    assert sent["customer"] == "cus_former"


def test_a_trialing_subscription_stores_its_trial_end_and_the_account_is_on_trial(
    trial_shop: Callable[..., Host], stripe_api: Any
) -> None:
    """Checkout with a trial, then Stripe's real ``trialing`` subscription as its webhook."""
    host = trial_shop(STRIPE_TRIAL_DAYS=15)
    checkout_form(host, stripe_api, {})
    subscription = load_object(TRIALING)
    subscription.update(customer=CUSTOMER["id"], metadata={"user_id": "1"})
    event = subscription_event("customer.subscription.created", layout="dahlia")
    event["data"]["object"] = subscription

    with record_signals() as sent:
        answer = post_event(host.client, event)

    assert answer.status_code == 200
    user = host.user(1)
    trial_end = datetime.fromtimestamp(subscription["trial_end"], UTC)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "trialing")
    assert user.trial_end.replace(tzinfo=UTC) == trial_end
    assert host.subscription(subscription["id"])["trial_end"].replace(tzinfo=UTC) == trial_end
    with host.app.app_context():
        stored = get_state().user_store.get("1")
    assert stored is not None
    assert stored.on_trial(trial_end - timedelta(days=1))
    assert not stored.on_trial(trial_end + timedelta(seconds=1))
    assert stored.seats == 1
    assert [c["new_plan"] for c in sent["plan_changed"]] == ["pro"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "from 1 to 730"),
        (731, "from 1 to 730"),
        ("two weeks", "whole number of days"),
        ({"price_monthly": 0}, "STRIPE_TRIAL_DAYS['price_monthly'] must be from 1 to 730"),
        ("price_monthly=", "price_id=days"),
        ("[14]", "whole number of days"),
    ],
)
def test_trial_days_stripe_would_refuse_are_refused_at_set_up(
    trial_shop: Callable[..., Host], value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        trial_shop(STRIPE_TRIAL_DAYS=value)


def test_an_unknown_trial_end_behavior_is_refused_at_set_up(
    trial_shop: Callable[..., Host],
) -> None:
    with pytest.raises(ValueError, match="STRIPE_TRIAL_END_BEHAVIOR must be one of"):
        trial_shop(STRIPE_TRIAL_END_BEHAVIOR="charge")


def test_check_shows_the_trial_and_seat_settings(make_host: Callable[..., Host]) -> None:
    host = make_host(
        {
            "STRIPE_TRIAL_DAYS": '{"price_yearly": 30}',
            "STRIPE_TRIAL_WITHOUT_CARD": "1",
            "STRIPE_SEATS_MAX": "50",
        }
    )

    output = host.app.test_cli_runner().invoke(args=["billing", "check"]).output
    lines = [" ".join(line.split()) for line in output.splitlines()]

    assert "set STRIPE_TRIAL_DAYS price_yearly: 30" in lines
    assert "set STRIPE_TRIAL_WITHOUT_CARD true (at the end without a card: cancel)" in lines
    assert "set STRIPE_SEATS_MIN/MAX 1 to 50" in lines


def test_check_says_checkout_gives_no_trial_and_one_seat_by_default(host: Host) -> None:
    output = host.app.test_cli_runner().invoke(args=["billing", "check"]).output
    lines = [" ".join(line.split()) for line in output.splitlines()]

    assert "default STRIPE_TRIAL_DAYS none: Checkout gives no trial" in lines
    assert "default STRIPE_TRIAL_WITHOUT_CARD false: a trial asks for a card" in lines
    assert "default STRIPE_SEATS_MIN/MAX 1 to 1: Checkout sells one seat" in lines
