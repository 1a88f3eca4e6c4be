"""The optional JSON routes under /billing/subscription/ and the operator commands
``flask billing cancel / resume / change-plan``; Stripe's API mocked with responses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses
from conftest import Host
from flask import Flask
from manage_support import (
    PERIOD_END,
    PREVIEW,
    SUB,
    answer,
    drop,
    form,
    managed_host,
    reads,
    subscription,
    swapped,
    writes,
)
from support import NOW

ROUTES_ON = {"STRIPE_BILLING_MANAGEMENT_ROUTES": "1"}
ROUTES = ("cancel", "resume", "change-plan", "preview-change", "quantity")


@pytest.fixture
def managed() -> Iterator[Host]:
    host = managed_host(ROUTES_ON)
    yield host
    drop(host)


def post(host: Host, route: str, body: Any = None, *, user: str | None = "1") -> Any:
    headers = {"X-User": user} if user else {}
    return host.client.post(f"/billing/subscription/{route}", json=body or {}, headers=headers)


# Routes


@pytest.mark.parametrize("route", ROUTES)
def test_routes_are_off_by_default_404(route: str, stripe_api: responses.RequestsMock) -> None:
    host = managed_host()
    try:
        response = post(host, route)
        assert response.status_code == 404
        assert response.get_json()["error"] == "not_found"
        assert "STRIPE_BILLING_MANAGEMENT_ROUTES" in response.get_json()["message"]
        assert list(stripe_api.calls) == []
    finally:
        drop(host)


@pytest.mark.parametrize("route", ROUTES)
def test_routes_need_a_signed_in_user_401(
    managed: Host, route: str, stripe_api: responses.RequestsMock
) -> None:
    response = post(managed, route, user=None)
    assert response.status_code == 401
    assert response.get_json()["error"] == "authentication_error"
    assert list(stripe_api.calls) == []


@pytest.mark.parametrize("route", ROUTES)
def test_routes_take_only_a_json_body_as_the_checkout_route_does(
    managed: Host, route: str, stripe_api: responses.RequestsMock
) -> None:
    form_post = managed.client.post(
        f"/billing/subscription/{route}", data={"at_period_end": "false"}, headers={"X-User": "1"}
    )
    not_object = managed.client.post(
        f"/billing/subscription/{route}", json=[1], headers={"X-User": "1"}
    )
    wrong_method = managed.client.get(f"/billing/subscription/{route}", headers={"X-User": "1"})

    assert (form_post.status_code, form_post.get_json()["error"]) == (400, "validation_error")
    assert (not_object.status_code, not_object.get_json()["error"]) == (400, "validation_error")
    assert (wrong_method.status_code, wrong_method.headers["Allow"]) == (405, "POST")
    assert writes(stripe_api) == []


def test_cancel_route_cancels_at_period_end_and_answers_the_account(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    ending = subscription(cancel_at_period_end=True, cancel_at=PERIOD_END)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", ending, at=NOW)

    response = post(managed, "cancel", {"at_period_end": True})

    assert response.status_code == 200
    body = response.get_json()
    assert (body["action"], body["subscription_id"]) == ("cancel", SUB)
    assert body["account"]["cancel_at_period_end"] is True
    assert body["account"]["plan"] == "pro"
    assert body["effective_at"].startswith("20")
    assert form(writes(stripe_api)[0]) == {"cancel_at_period_end": "true"}
    assert managed.user(1).cancel_at_period_end is True


def test_cancel_route_at_period_end_false_ends_now(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    ended = subscription(status="canceled", ended_at=NOW)
    answer(stripe_api, "DELETE", f"/subscriptions/{SUB}", ended, at=NOW)

    response = post(managed, "cancel", {"at_period_end": False})

    assert response.status_code == 200
    assert response.get_json()["account"]["plan"] == "free"
    assert managed.user(1).plan == "free"


def test_cancel_route_refuses_a_non_boolean(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    response = post(managed, "cancel", {"at_period_end": "yes"})
    assert response.status_code == 400
    assert response.get_json()["details"] == {"field": "at_period_end"}


def test_resume_route_without_a_pending_cancel_is_409(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)

    response = post(managed, "resume")

    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "conflict"
    assert body["details"] == {"subscription": SUB, "cancel_at_period_end": False}
    assert writes(stripe_api) == []


def test_resume_route_undoes_the_cancel(managed: Host, stripe_api: responses.RequestsMock) -> None:
    reads(stripe_api, subscription(cancel_at_period_end=True))
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(), at=NOW)

    response = post(managed, "resume")

    assert response.status_code == 200
    assert response.get_json()["account"]["cancel_at_period_end"] is False


def test_change_plan_route_takes_an_interval(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", swapped(), at=NOW)

    response = post(managed, "change-plan", {"interval": "yearly", "when": "now"})

    assert response.status_code == 200
    assert response.get_json()["account"]["plan"] == "pro-annual"
    assert form(writes(stripe_api)[0])["items[0][price]"] == "small-annual"
    assert managed.user(1).plan == "pro-annual"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"price_id": "small-monthly"}, 409, "conflict"),
        ({"price_id": "price_not_ours"}, 400, "validation_error"),
        ({"interval": "weekly"}, 400, "validation_error"),
        ({"price_id": "small-annual", "when": "tomorrow"}, 400, "validation_error"),
    ],
)
def test_change_plan_route_errors(
    managed: Host,
    stripe_api: responses.RequestsMock,
    body: dict[str, Any],
    status: int,
    error: str,
) -> None:
    reads(stripe_api)
    response = post(managed, "change-plan", body)
    assert (response.status_code, response.get_json()["error"]) == (status, error)
    assert set(response.get_json()) == {"error", "message", "details"}
    assert writes(stripe_api) == []


def test_change_plan_route_502_leaves_the_account(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    stripe_api.add("POST", f"https://api.stripe.com/v1/subscriptions/{SUB}", status=503)
    record = managed.subscription(SUB)

    response = post(managed, "change-plan", {"price_id": "small-annual"})

    assert response.status_code == 502
    assert response.get_json()["error"] == "external_service_error"
    assert response.get_json()["details"]["service"] == "Stripe"
    assert managed.subscription(SUB) == record
    assert managed.user(1).plan == "pro"


def test_preview_route_answers_stripes_preview(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    answer(stripe_api, "POST", "/invoices/create_preview", PREVIEW)

    response = post(managed, "preview-change", {"price_id": "small-annual", "when": "period_end"})

    assert response.status_code == 200
    body = response.get_json()
    assert (body["amount_due"], body["currency"], body["when"]) == (
        PREVIEW["amount_due"],
        "usd",
        "period_end",
    )
    assert body["lines"][0]["proration"] is True
    assert writes(stripe_api) == []


def test_quantity_route(managed: Host, stripe_api: responses.RequestsMock) -> None:
    reads(stripe_api)
    seats = subscription(quantity=4)  # this API version still mirrors the item's quantity
    seats["items"]["data"][0]["quantity"] = 4
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", seats, at=NOW)

    response = post(managed, "quantity", {"quantity": 4})
    refused = post(managed, "quantity", {"quantity": "4"})

    assert response.status_code == 200
    assert response.get_json()["account"]["quantity"] == 4
    assert refused.status_code == 400
    assert managed.user(1).subscription_quantity == 4


def test_a_user_without_a_subscription_gets_409(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    response = post(managed, "cancel", user="2")
    assert response.status_code == 409
    assert response.get_json()["error"] == "conflict"
    assert list(stripe_api.calls) == []


# flask billing cancel / resume / change-plan


def cli(host: Host, *args: str) -> Any:
    return host.app.test_cli_runner().invoke(args=["billing", *args])


def test_cancel_dry_run_changes_nothing_at_stripe(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)

    result = cli(managed, "cancel", "1", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "before: user 1, plan pro, status active" in result.output
    assert f"Dry run: {SUB} would end at the period end; nothing was changed." in result.output
    assert writes(stripe_api) == []
    assert managed.user(1).cancel_at_period_end is False


def test_cancel_command_prints_before_and_after(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    ended = subscription(status="canceled", ended_at=NOW)
    answer(stripe_api, "DELETE", f"/subscriptions/{SUB}", ended, at=NOW)

    result = cli(managed, "cancel", "1", "--now")

    assert result.exit_code == 0, result.output
    assert "before: user 1, plan pro, status active" in result.output
    assert "after:  user 1, plan free, status canceled" in result.output
    assert len(writes(stripe_api)) == 1


def test_resume_command_refuses_without_a_pending_cancel(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)

    dry = cli(managed, "resume", "1", "--dry-run")
    real = cli(managed, "resume", "1")

    for result in (dry, real):
        assert result.exit_code == 1
        assert "nothing to resume" in result.output
    assert writes(stripe_api) == []


def test_resume_command(managed: Host, stripe_api: responses.RequestsMock) -> None:
    reads(stripe_api, subscription(cancel_at_period_end=True))
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(), at=NOW)

    result = cli(managed, "resume", "1")

    assert result.exit_code == 0, result.output
    assert "after:  user 1, plan pro, status active" in result.output
    assert form(writes(stripe_api)[0]) == {"cancel_at_period_end": "false"}


def test_change_plan_dry_run_shows_the_preview_and_changes_nothing(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)
    answer(stripe_api, "POST", "/invoices/create_preview", PREVIEW)

    result = cli(managed, "change-plan", "1", "small-annual", "--dry-run")

    assert result.exit_code == 0, result.output
    assert f"{SUB} would move to small-annual now" in result.output
    assert "Stripe's preview invoice: 10.00 USD due (1 line). Nothing was changed." in (
        " ".join(result.output.split())
    )
    assert writes(stripe_api) == []
    assert managed.user(1).plan == "pro"


def test_change_plan_command(managed: Host, stripe_api: responses.RequestsMock) -> None:
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", swapped(), at=NOW)

    result = cli(managed, "change-plan", "1", "small-annual")

    assert result.exit_code == 0, result.output
    assert "after:  user 1, plan pro-annual" in result.output
    assert managed.user(1).plan == "pro-annual"


def test_commands_name_an_unknown_user_and_an_unconfigured_price(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    reads(stripe_api)

    unknown = cli(managed, "cancel", "99")
    bad_price = cli(managed, "change-plan", "1", "price_not_ours")

    assert (unknown.exit_code, "No such user" in unknown.output) == (2, True)
    assert (bad_price.exit_code, "configured prices" in bad_price.output) == (1, True)
    assert writes(stripe_api) == []


def test_commands_without_an_api_key_say_so(stripe_api: responses.RequestsMock) -> None:
    host = managed_host({"STRIPE_API_KEY": ""})
    try:
        result = cli(host, "cancel", "1")
        assert result.exit_code == 1
        assert "STRIPE_API_KEY is not set" in result.output
    finally:
        drop(host)


def test_csrf_protect_guards_the_routes_as_it_guards_checkout(
    stripe_api: responses.RequestsMock,
) -> None:
    from flask_wtf.csrf import CSRFProtect, generate_csrf

    def set_up(app: Flask) -> None:
        CSRFProtect(app)  # after the extension, as apps often do
        app.add_url_rule("/token", view_func=generate_csrf)

    config = {**ROUTES_ON, "WTF_CSRF_ENABLED": True, "SECRET_KEY": "test", "TESTING": False}
    host = managed_host(config, set_up)
    try:
        reads(stripe_api, subscription(cancel_at_period_end=True))
        answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(), at=NOW)
        client = host.client

        refused = client.post("/billing/subscription/resume", json={}, headers={"X-User": "1"})
        token = client.get("/token").get_data(as_text=True)
        allowed = client.post(
            "/billing/subscription/resume",
            json={},
            headers={"X-User": "1", "X-CSRFToken": token},
        )

        assert (refused.status_code, b"CSRF" in refused.data) == (400, True)
        assert allowed.status_code == 200, allowed.get_json()
        assert len(writes(stripe_api)) == 1
    finally:
        drop(host)


def test_routes_without_an_api_key_answer_503(stripe_api: responses.RequestsMock) -> None:
    host = managed_host({**ROUTES_ON, "STRIPE_API_KEY": ""})
    try:
        response = post(host, "cancel")
        assert response.status_code == 503
        assert response.get_json()["details"] == {
            "service": "Stripe",
            "missing": ["STRIPE_API_KEY"],
        }
    finally:
        drop(host)
