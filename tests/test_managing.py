"""Managing a subscription from Python (``billing.cancel / resume / change_plan /
preview_change / change_quantity``): the exact request to Stripe (mocked with responses,
stripe-python really runs), the account right after, and the webhook that follows."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from conftest import Host
from flask import Flask
from manage_support import (
    AFTER,
    API,
    API_KEY,
    CONFIG,
    CUSTOMER,
    ITEM,
    PERIOD_END,
    PREVIEW,
    SCHEDULE,
    SUB,
    answer,
    drop,
    form,
    http_date,
    managed_host,
    reads,
    subscription,
    swapped,
    writes,
)
from support import NOW, SECRET, envelope, post_event

from flask_stripe_billing import (
    BillingAccount,
    ChangePreview,
    InMemoryUserStore,
    PreviewLine,
    StripeBilling,
    signals,
)
from flask_stripe_billing.core.events import timestamp
from flask_stripe_billing.errors import ConflictError, StripeServiceError, ValidationError
from flask_stripe_billing.stripe_api import API_VERSION


@pytest.fixture
def managed() -> Iterator[Host]:
    host = managed_host()
    yield host
    drop(host)


def call(host: Host, method: str, *args: Any, **kwargs: Any) -> Any:
    with host.app.app_context():
        return getattr(host.billing, method)(*args, **kwargs)


def assert_stripe_call(
    request_call: Any, method: str, path: str, fields: dict[str, str], key_prefix: str | None
) -> None:
    """The request's method, path, form fields, API version, key and idempotency key."""
    request = request_call.request
    assert (request.method, request.path_url.split("?")[0]) == (method, f"/v1{path}")
    assert form(request_call) == fields
    assert request.headers["Stripe-Version"] == API_VERSION
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    if key_prefix is not None:
        key = request.headers["Idempotency-Key"]
        assert key.startswith(f"flask-stripe-billing-{key_prefix}-") and len(key) > 40


# Change plan now


def test_change_plan_now_swaps_the_item_price_and_applies_stripes_answer_at_once(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", swapped(), at=NOW)
    changed: list[dict[str, Any]] = []
    receiver = lambda sender, **kw: changed.append(kw)  # noqa: E731
    signals.plan_changed.connect(receiver)
    try:
        change = call(managed, "change_plan", 1, "small-annual")
    finally:
        signals.plan_changed.disconnect(receiver)

    assert_stripe_call(
        writes(stripe_api)[0],
        "POST",
        f"/subscriptions/{SUB}",
        {
            "items[0][id]": ITEM,
            "items[0][price]": "small-annual",
            "proration_behavior": "create_prorations",
        },
        "change-plan",
    )
    assert len(writes(stripe_api)) == 1
    assert (change.action, change.subscription_id) == ("change_plan", SUB)
    assert (change.before.plan, change.after.plan) == ("pro", "pro-annual")
    assert managed.user(1).plan == "pro-annual"
    assert managed.subscription(SUB)["price_ids"] == "small-annual"
    assert [(c["old_plan"], c["new_plan"]) for c in changed] == [("pro", "pro-annual")]


def test_change_plan_proration_comes_from_the_setting_or_the_call(
    stripe_api: responses.RequestsMock,
) -> None:
    host = managed_host({"STRIPE_PRORATION_BEHAVIOR": "always_invoice"})
    try:
        reads(stripe_api)
        answer(stripe_api, "POST", f"/subscriptions/{SUB}", swapped())
        call(host, "change_plan", 1, "small-annual")
        assert form(writes(stripe_api)[0])["proration_behavior"] == "always_invoice"

        with pytest.raises(ValidationError, match="proration_behavior"):
            call(host, "change_plan", 1, "small-annual", proration_behavior="sometimes")
        assert len(writes(stripe_api)) == 1
    finally:
        drop(host)


def test_an_unknown_proration_setting_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="STRIPE_PRORATION_BEHAVIOR"):
        managed_host({"STRIPE_PRORATION_BEHAVIOR": "later"})


# Change plan at the period end


def scheduled_schedule(**changes: Any) -> dict[str, Any]:
    """Stripe's schedule fixture as made from our subscription: one phase, running now."""
    schedule = copy.deepcopy(SCHEDULE)
    phase = schedule["phases"][0]
    phase.update(start_date=NOW - 86400, end_date=PERIOD_END)
    phase["items"][0]["price"] = "small-monthly"
    schedule.update(
        customer=CUSTOMER,
        subscription=SUB,
        status="active",
        current_phase={"start_date": NOW - 86400, "end_date": PERIOD_END},
        **changes,
    )
    return schedule


def test_change_plan_at_period_end_makes_a_schedule_with_a_next_phase_on_the_new_price(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    schedule = scheduled_schedule()
    answer(stripe_api, "POST", "/subscription_schedules", schedule)
    updated = {**schedule, "subscription": subscription(schedule=schedule["id"])}
    answer(stripe_api, "POST", f"/subscription_schedules/{schedule['id']}", updated, at=NOW)

    change = call(managed, "change_plan", 1, "small-annual", at_period_end=True)

    create, update = writes(stripe_api)
    assert_stripe_call(
        create, "POST", "/subscription_schedules", {"from_subscription": SUB}, "schedule"
    )
    assert_stripe_call(
        update,
        "POST",
        f"/subscription_schedules/{schedule['id']}",
        {
            "end_behavior": "release",
            "phases[0][items][0][price]": "small-monthly",
            "phases[0][items][0][quantity]": "1",
            "phases[0][start_date]": str(NOW - 86400),
            "phases[0][end_date]": str(PERIOD_END),
            "phases[1][items][0][price]": "small-annual",
            "phases[1][items][0][quantity]": "1",
            "phases[1][proration_behavior]": "none",
            "expand[0]": "subscription",
        },
        "schedule-change",
    )
    assert change.scheduled_price_id == "small-annual"
    assert change.schedule_id == schedule["id"]
    assert change.effective_at == timestamp(PERIOD_END)
    assert managed.user(1).plan == "pro"  # until the period end


def test_change_plan_at_period_end_reuses_the_schedule_the_subscription_has(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    schedule = scheduled_schedule()
    reads(stripe_api, subscription(schedule=schedule["id"]))
    answer(stripe_api, "GET", f"/subscription_schedules/{schedule['id']}", schedule)
    updated = {**schedule, "subscription": subscription(schedule=schedule["id"])}
    answer(stripe_api, "POST", f"/subscription_schedules/{schedule['id']}", updated)

    call(managed, "change_plan", 1, "small-annual", at_period_end=True)

    (update,) = writes(stripe_api)
    assert update.request.path_url == f"/v1/subscription_schedules/{schedule['id']}"


def test_the_current_price_at_period_end_undoes_a_scheduled_change(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    schedule = scheduled_schedule()
    reads(stripe_api, subscription(schedule=schedule["id"]))
    released = {**schedule, "status": "released", "subscription": None}
    released["released_subscription"] = SUB
    answer(stripe_api, "POST", f"/subscription_schedules/{schedule['id']}/release", released)

    change = call(managed, "change_plan", 1, "small-monthly", at_period_end=True)

    (release,) = writes(stripe_api)
    assert_stripe_call(
        release, "POST", f"/subscription_schedules/{schedule['id']}/release", {}, "release"
    )
    assert (change.action, change.schedule_id, change.scheduled_price_id) == (
        "keep_plan",
        schedule["id"],
        None,
    )
    assert change.after.plan == "pro"


def test_the_current_price_at_period_end_without_a_schedule_is_a_conflict(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    with pytest.raises(ConflictError, match="on this price already"):
        call(managed, "change_plan", 1, "small-monthly", at_period_end=True)
    assert writes(stripe_api) == []


def test_a_change_now_is_refused_while_a_change_is_scheduled(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api, subscription(schedule="sub_sched_pending"))
    for method, args in (("change_plan", ("small-annual",)), ("change_quantity", (3,))):
        with pytest.raises(ConflictError, match="scheduled"):
            call(managed, method, 1, *args)
    with pytest.raises(ConflictError, match="scheduled"):
        call(managed, "cancel", 1)
    assert writes(stripe_api) == []


# Preview


def test_preview_change_asks_stripe_for_the_invoice_and_changes_nothing(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    answer(stripe_api, "POST", "/invoices/create_preview", PREVIEW)

    preview = call(managed, "preview_change", 1, "small-annual")

    (sent,) = [c for c in stripe_api.calls if c.request.method == "POST"]
    assert_stripe_call(
        sent,
        "POST",
        "/invoices/create_preview",
        {
            "customer": CUSTOMER,
            "subscription": SUB,
            "subscription_details[items][0][id]": ITEM,
            "subscription_details[items][0][price]": "small-annual",
            "subscription_details[proration_behavior]": "create_prorations",
        },
        None,
    )
    line = PREVIEW["lines"]["data"][0]
    assert preview == ChangePreview(
        subscription_id=SUB,
        price_id="small-annual",
        when="now",
        amount_due=PREVIEW["amount_due"],
        currency="usd",
        subtotal=PREVIEW["subtotal"],
        total=PREVIEW["total"],
        lines=(PreviewLine(line["description"], line["amount"], proration=True),),
    )
    assert writes(stripe_api) == []
    assert managed.user(1).plan == "pro"


def test_preview_at_period_end_previews_without_prorations(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    answer(stripe_api, "POST", "/invoices/create_preview", PREVIEW)

    preview = call(managed, "preview_change", 1, "small-annual", at_period_end=True)

    (sent,) = [c for c in stripe_api.calls if c.request.method == "POST"]
    assert form(sent)["subscription_details[proration_behavior]"] == "none"
    assert preview.when == "period_end"


# Cancel, resume, quantity


def test_cancel_at_period_end_keeps_the_plan_and_marks_the_account(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    ending = subscription(cancel_at_period_end=True, cancel_at=PERIOD_END)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", ending, at=NOW)

    change = call(managed, "cancel", 1)

    (sent,) = writes(stripe_api)
    assert_stripe_call(
        sent, "POST", f"/subscriptions/{SUB}", {"cancel_at_period_end": "true"}, "cancel"
    )
    assert change.effective_at == timestamp(PERIOD_END)
    user = managed.user(1)
    assert (user.plan, user.cancel_at_period_end) == ("pro", True)


def test_cancel_now_ends_the_subscription_and_the_plan(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    ended = subscription(status="canceled", ended_at=NOW, canceled_at=NOW)
    answer(stripe_api, "DELETE", f"/subscriptions/{SUB}", ended, at=NOW)

    change = call(managed, "cancel", 1, at_period_end=False)

    (sent,) = writes(stripe_api)
    assert_stripe_call(sent, "DELETE", f"/subscriptions/{SUB}", {}, "cancel-now")
    assert (change.action, change.after.plan) == ("cancel_now", "free")
    assert managed.user(1).stripe_subscription_status == "canceled"
    assert managed.subscription(SUB)["status"] == "canceled"


def test_resume_undoes_a_pending_cancel(managed: Host, stripe_api: responses.RequestsMock) -> None:
    reads(stripe_api, subscription(cancel_at_period_end=True, cancel_at=PERIOD_END))
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(), at=NOW)

    change = call(managed, "resume", 1)

    (sent,) = writes(stripe_api)
    assert_stripe_call(
        sent, "POST", f"/subscriptions/{SUB}", {"cancel_at_period_end": "false"}, "resume"
    )
    assert change.after.cancel_at_period_end is False


def test_resume_clears_a_set_cancel_at(managed: Host, stripe_api: responses.RequestsMock) -> None:
    reads(stripe_api, subscription(cancel_at=PERIOD_END))
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription())

    call(managed, "resume", 1)

    assert form(writes(stripe_api)[0]) == {"cancel_at": ""}


def test_change_quantity_sets_the_items_seats(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    seats = subscription(quantity=5)
    seats["items"]["data"][0]["quantity"] = 5
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", seats, at=NOW)

    change = call(managed, "change_quantity", 1, 5)

    assert_stripe_call(
        writes(stripe_api)[0],
        "POST",
        f"/subscriptions/{SUB}",
        {
            "items[0][id]": ITEM,
            "items[0][quantity]": "5",
            "proration_behavior": "create_prorations",
        },
        "change-quantity",
    )
    assert change.after.subscription_quantity == 5
    assert managed.user(1).subscription_quantity == 5


# What the state does not allow: 409, 400, and nothing sent


@pytest.mark.parametrize(
    ("current", "method", "args", "message"),
    [
        ({}, "resume", (), "nothing to resume"),
        ({"cancel_at_period_end": True}, "cancel", (), "already set to end"),
        ({}, "change_plan", ("small-monthly",), "on this price already"),
        ({}, "change_quantity", (1,), "this quantity already"),
        ({"status": "canceled"}, "cancel", (), "has ended"),
        ({"status": "canceled"}, "change_plan", ("small-annual",), "has ended"),
        ({"status": "incomplete"}, "change_plan", ("small-annual",), "incomplete"),
        ({"customer": "cus_someone_else"}, "cancel", (), "another Stripe customer"),
    ],
)
def test_a_change_the_state_does_not_allow_is_a_conflict_and_sends_nothing(
    managed: Host,
    stripe_api: responses.RequestsMock,
    current: dict[str, Any],
    method: str,
    args: tuple[Any, ...],
    message: str,
) -> None:
    reads(stripe_api, subscription(**current))
    before = managed.subscription(SUB)

    with pytest.raises(ConflictError, match=message):
        call(managed, method, 1, *args)

    assert writes(stripe_api) == []
    assert managed.subscription(SUB) == before


def test_a_user_without_a_subscription_is_a_conflict_without_calling_stripe(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    for method, args in (("cancel", ()), ("resume", ()), ("change_plan", ("small-annual",))):
        with pytest.raises(ConflictError, match="No subscription"):
            call(managed, method, 2, *args)
    assert list(stripe_api.calls) == []
    with pytest.raises(LookupError):
        call(managed, "cancel", 99)


@pytest.mark.parametrize("price", ["price_not_ours", None, 3])
def test_only_configured_prices_are_accepted(
    managed: Host, stripe_api: responses.RequestsMock, price: Any
) -> None:
    reads(stripe_api)
    with pytest.raises(ValidationError, match="configured prices"):
        call(managed, "change_plan", 1, price)
    assert writes(stripe_api) == []


@pytest.mark.parametrize("quantity", [0, -1, 11, True, 2.5, "3"])
def test_a_quantity_must_be_a_whole_number_within_the_seat_bounds(
    managed: Host, stripe_api: responses.RequestsMock, quantity: Any
) -> None:
    reads(stripe_api)
    with pytest.raises(ValidationError, match="quantity must be") as refused:
        call(managed, "change_quantity", 1, quantity)
    assert refused.value.details == {"field": "quantity", "min": 1, "max": 10}
    assert writes(stripe_api) == []


# Stripe fails: 502, nothing applied


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500, "json": {"error": {"type": "api_error", "message": "boom"}}},
        {"status": 400, "json": {"error": {"type": "invalid_request_error", "message": "no"}}},
        {"body": requests.exceptions.ReadTimeout("timed out")},
        {"body": requests.exceptions.ConnectTimeout("timed out")},
    ],
)
def test_when_stripe_fails_nothing_is_applied(
    managed: Host, stripe_api: responses.RequestsMock, failure: dict[str, Any]
) -> None:
    reads(stripe_api)
    stripe_api.add("POST", f"https://api.stripe.com/v1/subscriptions/{SUB}", **failure)
    record, user = managed.subscription(SUB), managed.user(1)

    with pytest.raises(StripeServiceError) as raised:
        call(managed, "change_plan", 1, "small-annual")

    assert API_KEY not in raised.value.message
    assert managed.subscription(SUB) == record
    assert (managed.user(1).plan, managed.user(1).updated_at) == (user.plan, user.updated_at)


def test_a_failed_schedule_update_leaves_the_account_as_it_was(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    schedule = scheduled_schedule()
    answer(stripe_api, "POST", "/subscription_schedules", schedule)
    stripe_api.add(
        "POST", f"https://api.stripe.com/v1/subscription_schedules/{schedule['id']}", status=500
    )
    record = managed.subscription(SUB)

    with pytest.raises(StripeServiceError):
        call(managed, "change_plan", 1, "small-annual", at_period_end=True)

    assert managed.subscription(SUB) == record
    assert managed.user(1).plan == "pro"


# The webhook that follows the call


def swap_now(host: Host, stripe_api: responses.RequestsMock, at: int) -> None:
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", swapped(), at=at)
    call(host, "change_plan", 1, "small-annual")


def webhook(host: Host, obj: dict[str, Any], created: int) -> str:
    event = envelope(
        "customer.subscription.updated", obj, created=created, api_version="2025-10-29.clover"
    )
    assert post_event(host.client, event).status_code == 200
    return str(host.events()[-1]["status"])


def test_the_webhook_of_the_change_is_stale_or_the_same_never_a_double_apply(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    swap_now(managed, stripe_api, at=NOW)
    record = managed.subscription(SUB)
    updated_at = managed.user(1).updated_at

    assert webhook(managed, copy.deepcopy(AFTER), created=NOW - 1) == "stale"
    assert webhook(managed, copy.deepcopy(AFTER), created=NOW) == "processed"

    assert managed.subscription(SUB) == record
    assert managed.user(1).plan == "pro-annual"
    assert managed.user(1).updated_at == updated_at


def test_a_late_webhook_from_before_the_change_never_rolls_it_back(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    swap_now(managed, stripe_api, at=NOW)

    assert webhook(managed, subscription(), created=NOW - 5) == "stale"

    assert managed.user(1).plan == "pro-annual"
    assert managed.subscription(SUB)["price_ids"] == "small-annual"


def test_a_later_change_at_stripe_still_applies_after_the_call(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    swap_now(managed, stripe_api, at=NOW)

    assert webhook(managed, subscription(), created=NOW + 60) == "processed"

    assert managed.user(1).plan == "pro"


def test_a_webhook_processed_while_the_call_runs_is_not_applied_twice(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    """Stripe's webhook of the change arrives (same second) before the call applies its
    answer: the answer then changes nothing more, and plan_changed is sent once."""
    reads(stripe_api)
    statuses: list[str] = []

    def stripe_answers(request: Any) -> tuple[int, dict[str, str], str]:
        statuses.append(webhook(managed, copy.deepcopy(AFTER), created=NOW))
        return 200, {"Date": http_date(NOW)}, json.dumps(swapped())

    stripe_api.add_callback("POST", f"{API}/subscriptions/{SUB}", callback=stripe_answers)
    changed: list[dict[str, Any]] = []
    receiver = lambda sender, **kw: changed.append(kw)  # noqa: E731
    signals.plan_changed.connect(receiver)
    try:
        change = call(managed, "change_plan", 1, "small-annual")
    finally:
        signals.plan_changed.disconnect(receiver)

    assert statuses == ["processed"]
    assert (change.before.plan, change.after.plan) == ("pro", "pro-annual")
    assert [(c["old_plan"], c["new_plan"]) for c in changed] == [("pro", "pro-annual")]
    assert managed.subscription(SUB)["price_ids"] == "small-annual"


def test_the_in_memory_store_is_managed_the_same_way(stripe_api: responses.RequestsMock) -> None:
    store = InMemoryUserStore([BillingAccount(user_id="1", stripe_customer_id=CUSTOMER)])
    app = Flask(__name__)
    app.config.update(STRIPE_WEBHOOK_SECRET=SECRET, **CONFIG)
    billing = StripeBilling(app, user_store=store)
    subscribed = envelope(
        "customer.subscription.updated",
        subscription(),
        created=NOW - 60,
        api_version="2025-10-29.clover",
    )
    assert post_event(app.test_client(), subscribed).status_code == 200
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", swapped(), at=NOW)

    with app.app_context():
        change = billing.change_plan("1", "small-annual")

    assert change.after.plan == "pro-annual"
    account = store.get("1")
    assert account is not None and account.plan == "pro-annual"


def test_each_change_logs_one_line_with_its_action(
    managed: Host, stripe_api: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", swapped(), at=NOW)

    with caplog.at_level("INFO", logger="flask_stripe_billing"):
        call(managed, "change_plan", 1, "small-annual")

    (record,) = [r for r in caplog.records if r.getMessage() == "Stripe subscription changed"]
    assert (record.action, record.user_id, record.subscription_id, record.status) == (
        "change_plan",
        "1",
        SUB,
        "processed",
    )
    assert API_KEY not in caplog.text
