"""The public testing helpers: event templates, build_event, signing, posting, assertions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
from conftest import Host
from flask import Flask
from stripe.entitlements import ActiveEntitlement, ActiveEntitlementSummary
from support import FIXTURES, SECRET, load, load_object

from flask_stripe_billing import BillingAccount, InMemoryUserStore, StripeBilling
from flask_stripe_billing.core.entitlements import SUMMARY_EVENT
from flask_stripe_billing.core.events import parse_event
from flask_stripe_billing.core.templates import TEMPLATE_EVENT_TYPES
from flask_stripe_billing.pipeline.intake import verify_signature
from flask_stripe_billing.testing import (
    assert_plan,
    assert_subscription_status,
    build_event,
    get_account,
    post_stripe_event,
    record_signals,
    sign_payload,
    webhook_path,
)

TEMPLATES = resources.files("flask_stripe_billing.core") / "event_templates"
#: The real payload each template was copied from (event_templates/README.md).
SOURCES = {
    ("current", "customer.subscription"): (
        "api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json"
    ),
    ("current", "checkout.session"): (
        "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json"
    ),
    ("legacy", "customer.subscription"): (
        "events/stripe-ruby-mock__customer.subscription.created.json"
    ),
    ("legacy", "checkout.session"): "events/stripe-ruby-mock__checkout.session.completed.json",
    ("current", "invoice"): (
        "api-objects/pay-rails-vcr__2026-03-25.dahlia__invoice.paid.subscription_create.connect_direct.json"
    ),
    ("legacy", "invoice"): "events/stripe-ruby-mock__invoice.payment_failed.json",
    ("current", "checkout.session.payment_mode"): (
        "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_payment.open.json"
    ),
    ("legacy", "checkout.session.payment_mode"): (
        "events/stripe-ruby-mock__checkout.session.completed.json"
    ),
    ("current", "charge"): "stripe-openapi/charge.json",
    ("legacy", "charge"): "events/pay-rails__charge.refunded.DATA_ONLY.json",
    ("current", "refund"): "stripe-openapi/refund.json",
    ("legacy", "refund"): "events/stripe-ruby-mock__charge.refund.updated.json",
    ("current", "charge.dispute"): "stripe-openapi/dispute.json",
    ("legacy", "charge.dispute"): "events/stripe-ruby-mock__charge.dispute.closed.json",
}
#: The kind of object each template type carries (the key of its source above).
PURCHASE_KINDS = {
    "charge.refunded": "charge",
    "refund.created": "refund",
    "refund.updated": "refund",
    "refund.failed": "refund",
    "charge.dispute.created": "charge.dispute",
    "charge.dispute.updated": "charge.dispute",
    "charge.dispute.closed": "charge.dispute",
}
PAYMENT_MODE_TYPES = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
)
LAYOUTS = ("current", "legacy")


def keys(value: Any) -> set[str]:
    """Every key path of a JSON value (list items collapsed), to compare shapes."""
    paths: set[str] = set()

    def walk(item: Any, prefix: str) -> None:
        if isinstance(item, dict):
            for key, child in item.items():
                paths.add(f"{prefix}{key}")
                walk(child, f"{prefix}{key}.")
        elif isinstance(item, list):
            for child in item:
                walk(child, f"{prefix}[].")

    walk(value, "")
    return paths


# templates


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("event_type", [t for t in TEMPLATE_EVENT_TYPES if t != SUMMARY_EVENT])
def test_each_template_keeps_the_shape_of_the_real_payload(layout: str, event_type: str) -> None:
    template = json.loads((TEMPLATES / layout / f"{event_type}.json").read_text())
    kind = event_type.split(".")[0] if event_type.startswith("invoice.") else event_type
    kind = PURCHASE_KINDS.get(event_type) or kind.rsplit(".", 1)[0]
    source = load_object(SOURCES[(layout, kind)])

    obj = template["data"]["object"]
    assert template["object"] == "event"
    assert template["type"] == event_type
    if event_type in PURCHASE_KINDS:
        # Stripe's own objects, or old ones with the fields Stripe added to every version
        # since (``object`` on pay-rails' charge, ``payment_intent`` on the 2018 dispute).
        source.pop("metadata", None)  # the source app's own (an order id) was dropped
        assert keys(source) <= keys(obj)
        assert obj["payment_intent"] == "pi_placeholder"
    elif layout == "current" and obj["object"] == "invoice":
        assert keys(source) <= keys(obj)
        assert obj["parent"]["subscription_details"]["subscription"] == "sub_placeholder"
    elif layout == "current":
        # As an event carries it: the invoice as an id, not expanded.
        assert obj["latest_invoice" if "latest_invoice" in obj else "invoice"] == "in_placeholder"
        source.pop("latest_invoice", None)
        assert keys(source) <= keys(obj)
    else:
        assert keys(obj) == keys(source)
    assert "placeholder" in obj["id"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("event_type", PAYMENT_MODE_TYPES)
def test_each_payment_mode_template_keeps_the_shape_of_the_real_session(
    layout: str, event_type: str
) -> None:
    name = f"{event_type}.payment_mode.json"
    template = json.loads((TEMPLATES / layout / name).read_text())
    source = load_object(SOURCES[(layout, "checkout.session.payment_mode")])

    obj = template["data"]["object"]
    assert (template["type"], obj["mode"], obj["status"]) == (event_type, "payment", "complete")
    assert obj["payment_intent"] == "pi_placeholder"
    assert keys(source) <= keys(obj)
    assert "placeholder" in obj["id"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_summary_template_has_the_fields_of_stripes_summary_object(layout: str) -> None:
    """No real delivery is among the fixtures: the fields are those Stripe's API reference
    and stripe-python's ``ActiveEntitlementSummary`` / ``ActiveEntitlement`` declare."""
    template = json.loads((TEMPLATES / layout / f"{SUMMARY_EVENT}.json").read_text())
    obj = template["data"]["object"]
    summary_fields = set(ActiveEntitlementSummary.__annotations__) - {"OBJECT_NAME"}
    entitlement_fields = {"id", "object", "feature", "livemode", "lookup_key"}

    assert template["type"] == SUMMARY_EVENT
    assert set(obj) == summary_fields
    assert obj["object"] == ActiveEntitlementSummary.OBJECT_NAME
    assert set(obj["entitlements"]) == {"object", "data", "has_more", "url"}
    assert set(obj["entitlements"]["data"][0]) == entitlement_fields
    assert entitlement_fields - {"object"} <= set(ActiveEntitlement.__annotations__)


def test_the_layouts_differ_where_stripe_moved_the_period() -> None:
    current = build_event("customer.subscription.updated")["data"]["object"]
    legacy = build_event("customer.subscription.updated", api_layout="legacy")["data"]["object"]

    assert "current_period_end" not in current
    assert {"current_period_start", "current_period_end"} <= current["items"]["data"][0].keys()
    assert {"current_period_start", "current_period_end"} <= legacy.keys()
    assert "current_period_end" not in legacy["items"]["data"][0]


def test_the_templates_ship_with_their_licence_note() -> None:
    readme = (TEMPLATES / "README.md").read_text()

    assert "MIT" in readme
    assert "Jason Charnes" in readme
    assert "Gilbert" in readme


# build_event


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("event_type", TEMPLATE_EVENT_TYPES)
def test_build_event_gives_an_event_the_package_reads(layout: str, event_type: str) -> None:
    event = build_event(event_type, user_id=7, api_layout=layout)  # type: ignore[arg-type]

    parsed = parse_event(json.loads(json.dumps(event)))
    assert parsed.type == event_type
    assert parsed.id.startswith("evt_test_")
    if parsed.dispute is not None:  # a dispute names no customer
        assert (parsed.dispute.payment_intent_id, parsed.dispute.charge_id) == (
            "pi_test",
            "ch_test",
        )
        status = {"created": "needs_response", "updated": "under_review", "closed": "lost"}
        assert parsed.dispute.status == status[event_type.rsplit(".", 1)[1]]
        return
    if parsed.refund is not None:
        assert (parsed.refund.id, parsed.refund.payment_intent_id) == ("re_test", "pi_test")
        assert parsed.refund.status == ("failed" if event_type == "refund.failed" else "succeeded")
        # a refund names its customer only since 2025 (the legacy one names none)
        assert parsed.customer_id == ("cus_test" if layout == "current" else None)
        return
    assert parsed.customer_id == "cus_test"
    if parsed.charge is not None:
        assert (parsed.charge.id, parsed.charge.payment_intent_id) == ("ch_test", "pi_test")
        assert parsed.charge.refunded
        assert parsed.charge.amount_refunded == parsed.charge.amount
    elif parsed.invoice is not None:
        assert parsed.invoice.subscription_id == "sub_test"
        assert parsed.invoice.customer_id == "cus_test"
        assert parsed.invoice.hosted_invoice_url is not None
        assert parsed.invoice.created is not None
        assert timedelta(0) <= parsed.created - parsed.invoice.created <= timedelta(seconds=5)
    elif parsed.entitlements is not None:
        assert parsed.entitlements.customer_id == "cus_test"
        assert parsed.entitlements.features == frozenset()
        assert not parsed.entitlements.truncated
    elif parsed.subscription is not None:
        statuses = {"deleted": "canceled", "trial_will_end": "trialing"}
        status = statuses.get(event_type.rsplit(".", 1)[1], "active")
        assert parsed.subscription.id == "sub_test"
        assert parsed.subscription.status == status
        assert parsed.subscription.price_ids == ("price_test",)
        assert parsed.subscription.user_id == "7"
        assert parsed.subscription.current_period_end is not None
    else:
        session = parsed.checkout_session
        assert session is not None
        paid = "unpaid" if event_type.endswith("_failed") else "paid"
        assert (session.mode, session.payment_status) == ("subscription", paid)
        assert (session.subscription_id, session.user_id) == ("sub_test", "7")
        assert session.price_id == "price_test"


def test_build_event_gives_each_event_its_own_id() -> None:
    ids = {build_event("customer.subscription.updated")["id"] for _ in range(20)}

    assert len(ids) == 20
    assert build_event("customer.subscription.updated", event_id="evt_mine")["id"] == "evt_mine"


def test_build_event_moves_the_objects_times_with_the_event() -> None:
    created = int(datetime(2030, 1, 15, tzinfo=UTC).timestamp())

    event = build_event("customer.subscription.created", created=created)

    subscription = event["data"]["object"]
    item = subscription["items"]["data"][0]
    assert event["created"] == subscription["created"] == item["current_period_start"] == created
    assert item["current_period_end"] == created + 30 * 86400
    assert subscription["start_date"] == subscription["billing_cycle_anchor"] == created
    as_datetime = build_event("customer.subscription.created", created=datetime(2030, 1, 15))
    assert abs(as_datetime["created"] - created) <= 24 * 3600


def test_build_event_trialing_and_canceled_fill_their_dates() -> None:
    trialing = build_event(
        "customer.subscription.created", status="trialing", created=1_900_000_000
    )
    canceled = build_event(
        "customer.subscription.updated", status="canceled", created=1_900_000_000
    )
    ending = build_event("customer.subscription.updated", cancel_at_period_end=True)

    trial = trialing["data"]["object"]
    assert (trial["trial_start"], trial["trial_end"]) == (
        1_900_000_000,
        trial["items"]["data"][0]["current_period_end"],
    )
    ended = canceled["data"]["object"]
    assert ended["canceled_at"] == ended["ended_at"] == 1_900_000_000
    cancel = ending["data"]["object"]
    assert cancel["cancel_at_period_end"] is True
    assert cancel["cancel_at"] == cancel["items"]["data"][0]["current_period_end"]
    assert parse_event(ending).subscription.cancel_at_period_end is True  # type: ignore[union-attr]


def test_build_event_checkout_facts() -> None:
    event = build_event(
        "checkout.session.completed",
        customer=None,
        user_id="7",
        client_reference_id="ref-7",
        payment_status="unpaid",
        price="price_gold",
    )

    session = event["data"]["object"]
    assert session["customer"] is None
    assert session["client_reference_id"] == "ref-7"
    assert session["metadata"] == {"user_id": "7", "price_id": "price_gold"}
    assert (session["status"], session["payment_status"]) == ("complete", "unpaid")


def test_build_event_does_not_share_objects_between_calls() -> None:
    first = build_event("customer.subscription.updated")
    first["data"]["object"]["items"]["data"][0]["price"]["id"] = "changed"

    second = build_event("customer.subscription.updated")

    assert second["data"]["object"]["items"]["data"][0]["price"]["id"] == "price_test"


@pytest.mark.parametrize(
    ("event_type", "options", "message"),
    [
        ("invoice.upcoming", {}, "no template for 'invoice.upcoming'; the types with one are"),
        ("invoice.paid", {"status": "paid"}, "status is not an invoice's"),
        ("customer.subscription.updated", {"payment_status": "paid"}, "payment_status is a"),
        ("customer.subscription.updated", {"client_reference_id": "1"}, "client_reference_id"),
        ("customer.subscription.updated", {"subscription": None}, "needs a subscription id"),
        ("checkout.session.completed", {"status": "active"}, "give payment_status instead"),
        ("checkout.session.completed", {"api_layout": "2019"}, "api_layout must be one of"),
    ],
)
def test_build_event_says_what_is_wrong(
    event_type: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_event(event_type, **options)


# sign_payload


def test_sign_payload_matches_the_reference_vectors() -> None:
    vectors = load("signature_vectors.json")

    for vector in vectors:
        if "payload_file" in vector:
            body = (FIXTURES / vector["payload_file"]).read_bytes()
        else:
            body = vector["payload_literal"].encode()
        header = sign_payload(body, vector["secret"], vector["timestamp"])
        assert header == f"t={vector['timestamp']},v1={vector['expected_v1']}"
        assert sign_payload(body.decode(), vector["secret"], vector["timestamp"]) == header


def test_sign_payload_is_accepted_by_the_webhooks_verification() -> None:
    body = json.dumps(build_event("customer.subscription.created")).encode()

    header = sign_payload(body, SECRET)

    assert verify_signature(body, header, (SECRET,), 300) == body.decode()


# post_stripe_event


def test_post_stripe_event_uses_the_apps_secret_and_webhook(host: Host) -> None:
    response = post_stripe_event(host.client, build_event("customer.subscription.created"))

    assert (response.status_code, response.get_json()) == (200, {"received": True})
    assert host.user(1).plan == "pro"


def test_post_stripe_event_finds_the_webhook_under_a_url_prefix(
    make_host: Callable[..., Host],
) -> None:
    host = make_host(url_prefix="/api", config={"STRIPE_WEBHOOK_SECRET": f"whsec_new,{SECRET}"})
    host.add_user(1, stripe_customer_id="cus_test")

    response = post_stripe_event(host.client, build_event("customer.subscription.created"))

    assert webhook_path(host.app) == "/api/stripe/webhook"
    assert response.status_code == 200
    assert host.user(1).plan == "pro"


def test_post_stripe_event_with_another_secret_is_refused(host: Host) -> None:
    event = build_event("customer.subscription.created")

    response = post_stripe_event(host.client, event, secret="whsec_other")

    assert response.status_code == 400
    assert host.user(1).plan == "free"


def test_post_stripe_event_sends_bytes_as_they_are(host: Host) -> None:
    body = b'{"not": "an event"}'

    response = post_stripe_event(host.client, body, path="/stripe/webhook")

    assert response.status_code == 400
    assert response.get_json()["message"] == "Webhook error: body is not a Stripe event"


def test_post_stripe_event_without_a_secret_says_how_to_set_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    app = Flask(__name__)
    StripeBilling(app, user_store=InMemoryUserStore())

    with pytest.raises(RuntimeError, match="STRIPE_WEBHOOK_SECRET is not set on this app"):
        post_stripe_event(app.test_client(), build_event("customer.subscription.created"))


def test_webhook_path_without_the_blueprint() -> None:
    with pytest.raises(RuntimeError, match="blueprint is not registered"):
        webhook_path(Flask(__name__))


# assertions


def test_assert_plan_and_status_read_through_the_apps_store(host: Host) -> None:
    post_stripe_event(host.client, build_event("customer.subscription.created", status="trialing"))

    account = assert_plan(host.app, 1, "pro")
    assert assert_subscription_status(host.app, "1", "trialing") == account
    assert account.stripe_subscription_id == "sub_test"
    assert get_account(host.app, 2) is None


def test_assert_plan_failure_says_what_the_account_holds(host: Host) -> None:
    with pytest.raises(AssertionError) as failure:
        assert_plan(host.app, 1, "pro")

    assert str(failure.value) == (
        "user 1 has plan 'free', expected 'pro' "
        "(plan free, status none, customer cus_test, subscription none)"
    )
    with pytest.raises(AssertionError, match=r"^no user 9 in SQLAlchemyUserStore$"):
        assert_plan(host.app, 9, "pro")


def test_assertions_take_a_store_too() -> None:
    store = InMemoryUserStore(
        [BillingAccount(user_id="1", plan="pro", subscription_status="past_due")]
    )

    assert_plan(store, "1", "pro")
    with pytest.raises(
        AssertionError, match="has subscription status 'past_due', expected 'active'"
    ):
        assert_subscription_status(store, 1, "active")
    with pytest.raises(AssertionError, match="no user '2' in InMemoryUserStore"):
        assert_subscription_status(store, "2", None)


# record_signals


def test_record_signals_records_what_the_webhook_sends(host: Host) -> None:
    with record_signals() as sent:
        post_stripe_event(host.client, build_event("customer.subscription.created"))

    assert [(c["old_plan"], c["new_plan"], c["user_id"]) for c in sent["plan_changed"]] == [
        ("free", "pro", "1")
    ]
    assert sent["plan_changed"][0]["sender"] is host.app
    assert [c["status"] for c in sent["webhook_received"]] == ["processed"]
    assert sent["customer_not_found"] == []
    with pytest.raises(KeyError, match="no signal 'plan_change'; the signals are"):
        sent["plan_change"]

    post_stripe_event(host.client, build_event("customer.subscription.deleted"))
    assert len(sent["plan_changed"]) == 1  # not recording any more
