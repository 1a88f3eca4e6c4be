"""Parsing Stripe's payloads, in every layout the fixtures hold, into typed facts."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from support import checkout_event, envelope, load, load_object, subscription_event

from flask_stripe_billing.core.events import parse_event
from flask_stripe_billing.errors import EventParseError

UTC = UTC


def wrapped(event_type: str, fixture: str, **options: Any) -> dict[str, Any]:
    """The Stripe object of a fixture file as ``data.object`` of an event."""
    return envelope(event_type, load_object(fixture), **options)


# Subscriptions


@pytest.mark.parametrize(
    ("fixture", "sub_id", "customer", "status", "price", "period_end"),
    [
        pytest.param(
            "events/stripe-ruby-mock__customer.subscription.created.json",
            "sub_000000000000000000000000",
            "cus_00000000000000",
            "active",
            "price_000000000000000000000000",
            datetime(2022, 4, 26, 18, 41, 50, tzinfo=UTC),
            id="2020-created",
        ),
        pytest.param(
            "events/stripe-ruby-mock__customer.subscription.updated.json",
            "sub_000000000000000000000000",
            "cus_00000000000000",
            "active",
            "price_000000000000000000000000",
            datetime(2022, 4, 26, 18, 41, 45, tzinfo=UTC),
            id="2020-updated",
        ),
        pytest.param(
            "events/stripe-ruby-mock__customer.subscription.deleted.json",
            "sub_000000000000000000000000",
            "cus_00000000000000",
            "canceled",
            "price_000000000000000000000000",
            datetime(2022, 4, 26, 18, 41, 36, tzinfo=UTC),
            id="2020-deleted",
        ),
    ],
)
def test_full_2020_subscription_events_are_read_from_the_subscription(
    fixture: str,
    sub_id: str,
    customer: str,
    status: str,
    price: str,
    period_end: datetime,
) -> None:
    payload = load(fixture)
    event = parse_event(payload)

    assert event.id == "evt_000000000000000000000000"
    assert event.type == payload["type"]
    assert event.created == datetime.fromtimestamp(payload["created"], UTC)
    assert event.api_version == "2020-08-27"
    assert event.livemode is False
    assert event.customer_id == customer
    assert event.checkout_session is None
    subscription = event.subscription
    assert subscription is not None
    assert subscription.id == sub_id
    assert subscription.customer_id == customer
    assert subscription.status == status
    assert subscription.price_ids == (price,)
    assert subscription.current_period_end == period_end
    assert subscription.cancel_at_period_end is False
    assert subscription.user_id is None
    assert event.data is payload


def test_2020_period_end_comes_from_the_subscription_itself() -> None:
    payload = load("events/stripe-ruby-mock__customer.subscription.updated.json")
    obj = payload["data"]["object"]
    assert obj["current_period_end"] == 1650998505
    assert all("current_period_end" not in item for item in obj["items"]["data"])

    subscription = parse_event(payload).subscription

    assert subscription is not None
    assert subscription.current_period_end == datetime(2022, 4, 26, 18, 41, 45, tzinfo=UTC)


def test_basil_subscription_event_takes_period_end_from_its_items() -> None:
    fixture = "events/pay-rails__customer.subscription.updated.DATA_ONLY.json"
    obj = load_object(fixture)
    assert "current_period_end" not in obj
    assert obj["items"]["data"][0]["current_period_end"] == 1488987924

    event = parse_event(envelope("customer.subscription.updated", obj))

    assert event.customer_id == "cus_00000000000000"
    subscription = event.subscription
    assert subscription is not None
    assert subscription.id == "sub_00000000000000"
    assert subscription.status == "canceled"
    assert subscription.price_ids == ("FFBEGINNER_00000000000000",)
    assert subscription.current_period_end == datetime(2017, 3, 8, 15, 45, 24, tzinfo=UTC)
    assert subscription.cancel_at_period_end is False
    assert subscription.user_id is None


def test_pay_rails_deleted_subscription_is_read() -> None:
    event = parse_event(
        wrapped(
            "customer.subscription.deleted",
            "events/pay-rails__customer.subscription.deleted.DATA_ONLY.json",
        )
    )

    subscription = event.subscription
    assert subscription is not None
    assert subscription.id == "sub_00000000000000"
    assert subscription.status == "canceled"
    assert subscription.customer_id == "cus_00000000000000"
    assert subscription.current_period_end == datetime(2017, 3, 8, 15, 45, 24, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fixture", "sub_id", "customer", "status", "price", "period_end"),
    [
        pytest.param(
            "api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json",
            "sub_1TGnFJKXBGcbgpbZqZC2HAM0",
            "cus_UFHolUcKiEPpti",
            "trialing",
            "small-monthly",
            datetime(2026, 4, 14, 21, 21, 17, tzinfo=UTC),
            id="dahlia-trialing",
        ),
        pytest.param(
            "api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.incomplete.json",
            "sub_1TGnF3KXBGcbgpbZ9Jnx79C5",
            "cus_UFHo6401omwF5E",
            "incomplete",
            "small-monthly",
            datetime(2026, 4, 30, 21, 21, 1, tzinfo=UTC),
            id="dahlia-incomplete",
        ),
        pytest.param(
            "api-objects/pay-rails-vcr__2025-10-29.clover__subscription.active.before_price_swap.json",
            "sub_1SRzpzKXBGcbgpbZdGbiyyMi",
            "cus_TOnQXxIJoBFbC5",
            "active",
            "small-monthly",
            datetime(2025, 12, 10, 18, 29, 11, tzinfo=UTC),
            id="clover-before-swap",
        ),
        pytest.param(
            "api-objects/pay-rails-vcr__2025-10-29.clover__subscription.active.after_price_swap.json",
            "sub_1SRzpzKXBGcbgpbZdGbiyyMi",
            "cus_TOnQXxIJoBFbC5",
            "active",
            "small-annual",
            datetime(2026, 11, 10, 18, 29, 11, tzinfo=UTC),
            id="clover-after-swap",
        ),
    ],
)
def test_current_api_subscriptions_are_read_from_their_items(
    fixture: str,
    sub_id: str,
    customer: str,
    status: str,
    price: str,
    period_end: datetime,
) -> None:
    obj = load_object(fixture)
    assert "current_period_end" not in obj

    event = parse_event(envelope("customer.subscription.updated", obj, api_version="2026-03-25"))

    assert event.api_version == "2026-03-25"
    assert event.customer_id == customer
    subscription = event.subscription
    assert subscription is not None
    assert subscription.id == sub_id
    assert subscription.customer_id == customer
    assert subscription.status == status
    assert subscription.price_ids == (price,)
    assert subscription.current_period_end == period_end
    assert subscription.cancel_at_period_end is False


def test_period_end_of_several_items_is_the_latest() -> None:
    obj = load_object("api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json")
    second = copy.deepcopy(obj["items"]["data"][0])
    second["id"] = "si_second"
    second["price"]["id"] = "price_addon"
    second["current_period_end"] = 1776201677 + 86400
    obj["items"]["data"].append(second)

    subscription = parse_event(envelope("customer.subscription.updated", obj)).subscription

    assert subscription is not None
    assert subscription.price_ids == ("small-monthly", "price_addon")
    assert subscription.current_period_end == datetime(2026, 4, 15, 21, 21, 17, tzinfo=UTC)


@pytest.mark.parametrize("layout", ["2020", "basil", "dahlia"])
def test_builder_facts_reach_the_parsed_subscription(layout: str) -> None:
    payload = subscription_event(
        status="past_due",
        customer="cus_other",
        subscription="sub_other",
        price="price_team",
        period_end=1_900_000_000,
        cancel_at_period_end=True,
        user_id="42",
        layout=layout,
        created=1_800_000_000,
    )

    event = parse_event(payload)

    assert event.created == datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    assert event.customer_id == "cus_other"
    subscription = event.subscription
    assert subscription is not None
    assert subscription.id == "sub_other"
    assert subscription.customer_id == "cus_other"
    assert subscription.status == "past_due"
    assert subscription.price_ids == ("price_team",)
    assert subscription.current_period_end == datetime(2030, 3, 17, 17, 46, 40, tzinfo=UTC)
    assert subscription.cancel_at_period_end is True
    assert subscription.user_id == "42"


def test_subscription_without_items_or_period_has_no_prices_and_no_period_end() -> None:
    payload = subscription_event(layout="dahlia")
    payload["data"]["object"]["items"]["data"] = []

    subscription = parse_event(payload).subscription

    assert subscription is not None
    assert subscription.price_ids == ()
    assert subscription.current_period_end is None


def test_very_old_item_with_plan_but_no_price_uses_the_plan_id() -> None:
    payload = subscription_event(layout="2020")
    item = payload["data"]["object"]["items"]["data"][0]
    item["price"] = None

    subscription = parse_event(payload).subscription

    assert subscription is not None
    assert subscription.price_ids == ("price_000000000000000000000000",)


def test_expanded_customer_object_on_a_subscription_gives_its_id() -> None:
    payload = subscription_event(layout="dahlia")
    customer = load_object("api-objects/pay-rails-vcr__2026-03-25.dahlia__customer.json")
    payload["data"]["object"]["customer"] = customer

    event = parse_event(payload)

    assert event.customer_id == "cus_UFHpx9wyRhqhy7"
    assert event.subscription is not None
    assert event.subscription.customer_id == "cus_UFHpx9wyRhqhy7"


# Checkout sessions


def test_pay_rails_subscription_checkout_is_read() -> None:
    event = parse_event(
        wrapped(
            "checkout.session.completed",
            "events/pay-rails__checkout.session.completed.DATA_ONLY.json",
        )
    )

    assert event.customer_id == "cus_M5wW9RPFk9xNZ5"
    assert event.subscription is None
    session = event.checkout_session
    assert session is not None
    assert session.id == "cs_test_a1UejXx8ebIdTzFolicVypUAZpOBVkoQKDbaarXoPlPVtj8p0zujPEEhjT"
    assert session.mode == "subscription"
    assert session.payment_status == "paid"
    assert session.customer_id == "cus_M5wW9RPFk9xNZ5"
    assert session.subscription_id == "sub_1LNkeSKXBGcbgpbZ7jMqOPSi"
    assert session.user_id is None
    assert session.price_id is None


def test_2020_payment_mode_checkout_is_read() -> None:
    payload = load("events/stripe-ruby-mock__checkout.session.completed.json")

    event = parse_event(payload)

    assert event.type == "checkout.session.completed"
    assert event.customer_id == "cus_00000000000000"
    session = event.checkout_session
    assert session is not None
    assert session.mode == "payment"
    assert session.payment_status == "paid"
    assert session.subscription_id is None


def test_setup_mode_checkout_without_customer_is_read() -> None:
    payload = load("events/stripe-ruby-mock__checkout.session.completed.setup_mode.json")

    event = parse_event(payload)

    assert event.api_version is None
    assert event.customer_id is None
    session = event.checkout_session
    assert session is not None
    assert session.id == "cs_00000000000000"
    assert session.mode == "setup"
    assert session.payment_status == "no_payment_required"
    assert session.customer_id is None
    assert session.subscription_id is None


@pytest.mark.parametrize(
    ("fixture", "mode", "payment_status", "customer"),
    [
        (
            "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json",
            "subscription",
            "unpaid",
            "cus_UFHpx9wyRhqhy7",
        ),
        (
            "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_payment.open.json",
            "payment",
            "unpaid",
            "cus_UFHpBbwhH1LAIi",
        ),
        (
            "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_setup.open.json",
            "setup",
            "no_payment_required",
            "cus_UFHxZJzXeBmqOm",
        ),
    ],
    ids=["subscription", "payment", "setup"],
)
def test_dahlia_checkout_sessions_are_read(
    fixture: str, mode: str, payment_status: str, customer: str
) -> None:
    event = parse_event(wrapped("checkout.session.completed", fixture, api_version="2026-03-25"))

    assert event.customer_id == customer
    session = event.checkout_session
    assert session is not None
    assert session.mode == mode
    assert session.payment_status == payment_status
    assert session.customer_id == customer
    assert session.subscription_id is None


@pytest.mark.parametrize("layout", ["2020", "basil", "dahlia"])
def test_checkout_client_reference_id_names_the_user(layout: str) -> None:
    payload = checkout_event(
        client_reference_id="7",
        metadata={"user_id": "8", "price_id": "price_team"},
        customer="cus_new",
        subscription="sub_new",
        payment_status="no_payment_required",
        layout=layout,
    )

    session = parse_event(payload).checkout_session

    assert session is not None
    assert session.user_id == "7"
    assert session.price_id == "price_team"
    assert session.customer_id == "cus_new"
    assert session.subscription_id == "sub_new"
    assert session.mode == "subscription"
    assert session.payment_status == "no_payment_required"


@pytest.mark.parametrize("layout", ["2020", "basil", "dahlia"])
def test_checkout_metadata_user_id_names_the_user_without_reference(layout: str) -> None:
    payload = checkout_event(metadata={"user_id": "8"}, layout=layout)

    session = parse_event(payload).checkout_session

    assert session is not None
    assert session.user_id == "8"
    assert session.price_id is None


def test_checkout_with_expanded_customer_and_subscription_gives_their_ids() -> None:
    payload = checkout_event(layout="dahlia")
    obj = payload["data"]["object"]
    obj["customer"] = load_object("api-objects/pay-rails-vcr__2026-03-25.dahlia__customer.json")
    obj["subscription"] = load_object(
        "api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json"
    )

    event = parse_event(payload)

    assert event.customer_id == "cus_UFHpx9wyRhqhy7"
    session = event.checkout_session
    assert session is not None
    assert session.customer_id == "cus_UFHpx9wyRhqhy7"
    assert session.subscription_id == "sub_1TGnFJKXBGcbgpbZqZC2HAM0"


# Other objects


def test_2020_invoice_event_gives_its_customer() -> None:
    event = parse_event(load("events/stripe-ruby-mock__invoice.payment_failed.json"))

    assert event.type == "invoice.payment_failed"
    assert event.customer_id == "cus_00000000000000"
    assert event.subscription is None
    assert event.checkout_session is None


@pytest.mark.parametrize(
    ("fixture", "customer"),
    [
        ("events/pay-rails__invoice.payment_failed.DATA_ONLY.json", "cus_1234"),
        (
            "api-objects/pay-rails-vcr__2026-03-25.dahlia__invoice.paid.subscription_create.connect_direct.json",
            "cus_UFHo2KvRlTvzR0",
        ),
    ],
    ids=["basil-payment-failed", "dahlia-paid"],
)
def test_current_invoice_events_give_their_customer(fixture: str, customer: str) -> None:
    event = parse_event(wrapped("invoice.paid", fixture))

    assert event.customer_id == customer
    assert event.subscription is None
    assert event.checkout_session is None


# Invoices: both layouts


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def test_2020_invoice_gives_its_facts_with_the_subscription_at_the_top() -> None:
    payload = load("events/stripe-ruby-mock__invoice.payment_failed.json")
    payload["data"]["object"]["subscription"] = "sub_old_layout"

    invoice = parse_event(payload).invoice

    assert invoice is not None
    assert invoice.id == "in_000000000000000000000000"
    assert invoice.customer_id == "cus_00000000000000"
    assert invoice.subscription_id == "sub_old_layout"
    assert (invoice.number, invoice.status) == ("C93E45D7-0001", "open")
    assert invoice.created == at(1648320007)
    assert (invoice.amount_due, invoice.amount_paid, invoice.currency) == (2000, 0, "usd")
    assert (invoice.attempt_count, invoice.next_payment_attempt) == (1, None)
    assert invoice.hosted_invoice_url is not None
    assert invoice.hosted_invoice_url.startswith("https://invoice.stripe.com/i/acct_")
    assert invoice.invoice_pdf is not None
    assert invoice.invoice_pdf.endswith("/pdf?s=ap")


def test_2020_invoice_of_no_subscription_says_so() -> None:
    invoice = parse_event(load("events/stripe-ruby-mock__invoice.payment_failed.json")).invoice

    assert invoice is not None
    assert invoice.subscription_id is None


def test_basil_invoice_names_its_subscription_in_its_parent() -> None:
    fixture = "events/pay-rails__invoice.payment_failed.DATA_ONLY.json"
    obj = load_object(fixture)
    assert "subscription" not in obj  # gone from the top since 2025-03-31

    invoice = parse_event(wrapped("invoice.payment_failed", fixture)).invoice

    assert invoice is not None
    assert (invoice.id, invoice.customer_id, invoice.subscription_id) == (
        "in_1234",
        "cus_1234",
        "sub_1234",
    )
    assert (invoice.amount_due, invoice.amount_paid, invoice.currency) == (24900, 0, "usd")
    assert invoice.attempt_count == 1
    assert invoice.next_payment_attempt == at(1745552783)
    assert invoice.number == "F612594F-0002"


def test_dahlia_paid_invoice_gives_its_receipt_facts() -> None:
    invoice = parse_event(
        wrapped(
            "invoice.paid",
            "api-objects/pay-rails-vcr__2026-03-25.dahlia__invoice.paid.subscription_create.connect_direct.json",
        )
    ).invoice

    assert invoice is not None
    assert invoice.subscription_id == "sub_1TGnErQK2ZHS99RkHpVN5MOi"
    assert (invoice.status, invoice.amount_paid, invoice.currency) == ("paid", 1000, "usd")
    assert invoice.created == at(1774905649)
    assert invoice.invoice_pdf is not None
    assert invoice.invoice_pdf.startswith("https://pay.stripe.com/invoice/acct_1ISuLNQK2ZHS99Rk/")


def test_openapi_invoice_reads_the_parent_even_when_its_type_is_quote_details() -> None:
    invoice = parse_event(wrapped("invoice.paid", "stripe-openapi/invoice.json")).invoice

    assert invoice is not None
    assert invoice.subscription_id == "subscription"  # Stripe's generated value
    assert (invoice.number, invoice.hosted_invoice_url, invoice.invoice_pdf) == (None, None, None)
    assert invoice.next_payment_attempt == at(1234567890)


def test_an_invoice_with_an_expanded_subscription_gives_its_id() -> None:
    obj = load_object("events/pay-rails__invoice.payment_failed.DATA_ONLY.json")
    obj["parent"]["subscription_details"]["subscription"] = {"id": "sub_1234", "object": "sub"}

    invoice = parse_event(envelope("invoice.payment_failed", obj)).invoice

    assert invoice is not None
    assert invoice.subscription_id == "sub_1234"


def test_only_invoice_objects_give_invoice_facts() -> None:
    assert parse_event(subscription_event()).invoice is None
    assert parse_event(checkout_event()).invoice is None


def test_customer_event_gives_the_customer_itself() -> None:
    event = parse_event(
        wrapped("customer.updated", "api-objects/pay-rails-vcr__2026-03-25.dahlia__customer.json")
    )

    assert event.customer_id == "cus_UFHpx9wyRhqhy7"


def test_livemode_event_says_so() -> None:
    payload = subscription_event()
    payload["livemode"] = True

    assert parse_event(payload).livemode is True


# Errors


def thin_event() -> dict[str, Any]:
    """A v2 "thin" event: the 2020 envelope reshaped the way v2 events look."""
    payload = load("events/stripe-ruby-mock__customer.subscription.updated.json")
    del payload["data"]
    payload.update(
        object="v2.core.event",
        created="2025-04-01T12:00:00.000Z",
        related_object={
            "id": "sub_000000000000000000000000",
            "type": "subscription",
            "url": "/v1/subscriptions/sub_000000000000000000000000",
        },
    )
    return payload


def without(key: str) -> dict[str, Any]:
    payload = subscription_event()
    del payload[key]
    return payload


def with_fields(**fields: Any) -> dict[str, Any]:
    payload = subscription_event()
    payload.update(fields)
    return payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param([subscription_event()], "not a JSON object", id="list"),
        pytest.param("evt_123", "not a JSON object", id="string"),
        pytest.param(None, "not a JSON object", id="null"),
        pytest.param(
            load_object("events/stripe-ruby-mock__customer.subscription.updated.json"),
            "not a Stripe event",
            id="bare-subscription",
        ),
        pytest.param(without("object"), "not a Stripe event", id="no-object"),
        pytest.param(thin_event(), "this is a thin event notification", id="thin-v2-event"),
        pytest.param(without("id"), "no id", id="no-id"),
        pytest.param(with_fields(id=""), "no id", id="empty-id"),
        pytest.param(without("type"), "no type", id="no-type"),
        pytest.param(with_fields(type=None), "no type", id="null-type"),
        pytest.param(without("created"), "no creation time", id="no-created"),
        pytest.param(with_fields(created="1648320106"), "no creation time", id="created-str"),
        pytest.param(with_fields(created=1648320106.5), "no creation time", id="created-float"),
        pytest.param(with_fields(created=True), "no creation time", id="created-bool"),
        pytest.param(without("data"), "no data.object", id="no-data"),
        pytest.param(with_fields(data={}), "no data.object", id="no-data-object"),
        pytest.param(
            with_fields(data={"object": "sub_000000000000000000000000"}),
            "no data.object",
            id="data-object-not-object",
        ),
    ],
)
def test_payload_that_is_no_stripe_event_is_refused(payload: Any, message: str) -> None:
    with pytest.raises(EventParseError, match=re.escape(message)):
        parse_event(payload)


def test_subscription_without_id_is_refused() -> None:
    payload = subscription_event()
    del payload["data"]["object"]["id"]

    with pytest.raises(EventParseError, match="subscription object has no id"):
        parse_event(payload)
