"""Management for server-rendered apps: the form routes under /billing/manage/ (HTML and
JSON callers, anonymous and signed in, with and without CSRFProtect) and their buttons;
Stripe's API mocked with responses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from conftest import Host
from flask import Flask, render_template_string
from flask_wtf.csrf import CSRFProtect
from manage_support import (
    API,
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
from test_buttons import forms_of

ON = {"STRIPE_BILLING_MANAGEMENT_ROUTES": "1", "SECRET_KEY": "test"}
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"Accept": "application/json"}
ROUTES = ("cancel", "resume", "change-plan", "seats")


@pytest.fixture
def managed() -> Iterator[Host]:
    host = managed_host(ON)
    yield host
    drop(host)


def submit(
    client: Any,
    route: str,
    data: dict[str, str] | None = None,
    *,
    user: str | None = "1",
    headers: dict[str, str] | None = None,
) -> Any:
    """A browser submitting the form of ``route`` from /settings on this site."""
    sent = {**SAME_ORIGIN, **HTML, **(headers or {})}
    if user is not None:
        sent["X-User"] = user
    fields = {"next": "/settings", **(data or {})}
    return client.post(f"/billing/manage/{route}", data=fields, headers=sent)


def flashes(client: Any) -> list[tuple[str, str]]:
    """The flash messages waiting for the next page (category, message)."""
    with client.session_transaction() as session:
        return list(session.get("_flashes", []))


# Signed in, HTML: the change, a 303 back, a flash


def test_cancel_form_cancels_at_period_end_and_goes_back_with_a_flash(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    client = managed.client
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(cancel_at_period_end=True))

    response = submit(client, "cancel")

    assert (response.status_code, response.headers["Location"]) == (303, "/settings")
    ((category, message),) = flashes(client)
    assert category == "success"
    assert re.fullmatch(r"Your subscription is cancelled; it ends on \d+ \w+ \d{4}\.", message)
    assert form(writes(stripe_api)[0]) == {"cancel_at_period_end": "true"}
    assert managed.user(1).cancel_at_period_end is True
    assert managed.user(1).plan == "pro"


def test_cancel_form_at_period_end_false_ends_now(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    client = managed.client
    reads(stripe_api)
    ended = subscription(status="canceled", ended_at=NOW)
    answer(stripe_api, "DELETE", f"/subscriptions/{SUB}", ended, at=NOW)

    response = submit(client, "cancel", {"at_period_end": "false"})

    assert response.status_code == 303
    assert flashes(client) == [("success", "Your subscription has ended.")]
    assert managed.user(1).plan == "free"


def test_resume_form_undoes_the_cancel(managed: Host, stripe_api: responses.RequestsMock) -> None:
    client = managed.client
    reads(stripe_api, subscription(cancel_at_period_end=True))
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(), at=NOW)

    response = submit(client, "resume")

    assert response.status_code == 303
    assert flashes(client) == [("success", "Your subscription is resumed; it renews as before.")]
    assert form(writes(stripe_api)[0]) == {"cancel_at_period_end": "false"}


def test_change_plan_form_switches_now(managed: Host, stripe_api: responses.RequestsMock) -> None:
    client = managed.client
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", swapped(), at=NOW)

    response = submit(client, "change-plan", {"interval": "yearly"})

    assert response.status_code == 303
    assert flashes(client) == [("success", "You are now on the pro-annual plan.")]
    assert form(writes(stripe_api)[0])["items[0][price]"] == "small-annual"
    assert managed.user(1).plan == "pro-annual"


def test_seats_form_sets_the_quantity(managed: Host, stripe_api: responses.RequestsMock) -> None:
    client = managed.client
    reads(stripe_api)
    seats = subscription(quantity=4)
    seats["items"]["data"][0]["quantity"] = 4
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", seats, at=NOW)

    response = submit(client, "seats", {"quantity": "4"})

    assert response.status_code == 303
    assert flashes(client) == [("success", "Your subscription now has 4 seats.")]
    assert form(writes(stripe_api)[0])["items[0][quantity]"] == "4"
    assert managed.user(1).subscription_quantity == 4


# The JSON routes' rules, shown as a flash


def test_a_409_is_a_flash_and_a_303_not_a_json_page(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    client = managed.client
    reads(stripe_api)

    response = submit(client, "resume")

    assert (response.status_code, response.headers["Location"]) == (303, "/settings")
    assert response.mimetype != "application/json"
    assert flashes(client) == [
        ("error", "The subscription is not set to end; there is nothing to resume")
    ]
    assert writes(stripe_api) == []


def test_a_stripe_failure_is_a_flash_and_nothing_changes(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    client = managed.client
    reads(stripe_api)
    stripe_api.add("POST", f"{API}/subscriptions/{SUB}", status=503)
    record = managed.subscription(SUB)

    response = submit(client, "change-plan", {"price_id": "small-annual"})

    assert response.status_code == 303
    ((category, message),) = flashes(client)
    assert category == "error"
    assert "Stripe" in message
    assert managed.subscription(SUB) == record
    assert managed.user(1).plan == "pro"


@pytest.mark.parametrize(
    ("route", "data", "message"),
    [
        ("seats", {"quantity": "many"}, "quantity must be a whole number"),
        ("seats", {"quantity": "11"}, "quantity must be from 1 to 10"),
        ("change-plan", {"price_id": "price_not_ours"}, "price_id is not one of the configured"),
        ("change-plan", {"interval": "yearly", "when": "later"}, 'when must be "now" or'),
        ("cancel", {"at_period_end": "maybe"}, "at_period_end must be true or false"),
    ],
)
def test_a_bad_field_is_a_flash_and_reaches_no_stripe_write(
    managed: Host,
    stripe_api: responses.RequestsMock,
    route: str,
    data: dict[str, str],
    message: str,
) -> None:
    client = managed.client
    reads(stripe_api)

    response = submit(client, route, data)

    assert response.status_code == 303
    ((category, flashed),) = flashes(client)
    assert (category, flashed[: len(message)]) == ("error", message)
    assert writes(stripe_api) == []


def test_a_user_without_a_subscription_is_told_so(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    client = managed.client

    response = submit(client, "cancel", user="2")

    assert response.status_code == 303
    assert flashes(client) == [("error", "No subscription to change; subscribe first")]
    assert list(stripe_api.calls) == []


def test_without_an_api_key_the_form_says_so(stripe_api: responses.RequestsMock) -> None:
    host = managed_host({**ON, "STRIPE_API_KEY": None})
    try:
        client = host.client
        response = submit(client, "cancel")
        assert response.status_code == 303
        assert flashes(client) == [("error", "Stripe billing is not configured")]
    finally:
        drop(host)


def test_without_a_secret_key_the_change_is_made_and_nothing_is_flashed(
    stripe_api: responses.RequestsMock,
) -> None:
    host = managed_host({"STRIPE_BILLING_MANAGEMENT_ROUTES": "1"})
    try:
        reads(stripe_api, subscription(cancel_at_period_end=True))
        answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(), at=NOW)
        response = submit(host.client, "resume")
        assert (response.status_code, response.headers["Location"]) == (303, "/settings")
        assert host.user(1).cancel_at_period_end is False
    finally:
        drop(host)


# Where the browser goes back to


@pytest.mark.parametrize(
    ("data", "headers", "location"),
    [
        ({"next": "/account?tab=billing"}, {}, "/account?tab=billing"),
        ({"next": ""}, {"Referer": "http://localhost/profile?x=1"}, "/profile?x=1"),
        ({"next": "https://evil.example/"}, {}, "/"),
        ({"next": "//evil.example/"}, {}, "/"),
        ({"next": "/\\evil.example/"}, {}, "/"),
        ({"next": ""}, {"Referer": "https://evil.example/page"}, "/"),
    ],
    ids=["next", "referer", "other site", "scheme-relative", "backslash", "other referer"],
)
def test_the_form_goes_back_only_to_this_site(
    managed: Host,
    stripe_api: responses.RequestsMock,
    data: dict[str, str],
    headers: dict[str, str],
    location: str,
) -> None:
    response = submit(managed.client, "cancel", data, user="2", headers=headers)

    assert (response.status_code, response.headers["Location"]) == (303, location)


# Anonymous callers, JSON callers, other sites, CSRFProtect, the switch


@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_browsers_go_to_the_login_page(route: str, stripe_api: Any) -> None:
    host = managed_host({**ON, "STRIPE_BILLING_LOGIN_URL": "/login"})
    try:
        response = submit(host.client, route, user=None)
        assert (response.status_code, response.headers["Location"]) == (
            302,
            f"/login?next=%2Fbilling%2Fmanage%2F{route}",
        )
        assert list(stripe_api.calls) == []
    finally:
        drop(host)


def test_anonymous_browsers_without_a_login_page_get_a_401_page(
    managed: Host, stripe_api: Any
) -> None:
    response = submit(managed.client, "cancel", user=None)

    assert (response.status_code, response.mimetype) == (401, "text/html")
    assert "Sign in to manage billing" in response.get_data(as_text=True)
    assert list(stripe_api.calls) == []


@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_json_callers_get_401_json(managed: Host, route: str, stripe_api: Any) -> None:
    response = submit(managed.client, route, user=None, headers=JSON)

    assert response.status_code == 401
    assert response.get_json()["error"] == "authentication_error"


def test_json_callers_get_the_json_routes_answers(
    managed: Host, stripe_api: responses.RequestsMock
) -> None:
    client = managed.client
    reads(stripe_api)
    answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(cancel_at_period_end=True))

    done = submit(client, "cancel", headers=JSON)
    unconfigured = submit(client, "change-plan", {"price_id": "nope"}, headers=JSON)

    assert done.status_code == 200
    assert (done.get_json()["action"], done.get_json()["account"]["cancel_at_period_end"]) == (
        "cancel",
        True,
    )
    assert (unconfigured.status_code, unconfigured.get_json()["error"]) == (400, "validation_error")
    assert flashes(client) == []


def test_a_json_caller_gets_409_json(managed: Host, stripe_api: responses.RequestsMock) -> None:
    reads(stripe_api)

    response = submit(managed.client, "resume", headers=JSON)

    assert (response.status_code, response.get_json()["error"]) == (409, "conflict")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": None, "Origin": "https://evil.example"}],
    ids=["cross-site", "other origin"],
)
def test_another_sites_form_is_403_and_reaches_no_stripe(
    managed: Host, stripe_api: Any, route: str, headers: dict[str, Any]
) -> None:
    sent = {k: v for k, v in {**HTML, "X-User": "1", **headers}.items() if v is not None}

    response = managed.client.post(f"/billing/manage/{route}", data={}, headers=sent)

    assert (response.status_code, response.get_json()["error"]) == (403, "forbidden")
    assert list(stripe_api.calls) == []


def protected(app: Flask) -> None:
    """CSRFProtect on, and a /settings page with the buttons."""
    app.config.update(WTF_CSRF_ENABLED=True, TESTING=False)
    CSRFProtect(app)
    app.add_url_rule("/settings", "settings", lambda: render_template_string(BUTTONS))


def test_with_csrf_protect_the_token_is_needed_and_the_buttons_carry_it(
    stripe_api: responses.RequestsMock,
) -> None:
    host = managed_host({**ON, "STRIPE_BILLING_PRICING_URL": "/pricing"}, set_up=protected)
    try:
        client = host.client
        reads(stripe_api, subscription(cancel_at_period_end=True))
        answer(stripe_api, "POST", f"/subscriptions/{SUB}", subscription(), at=NOW)

        without = client.post(
            "/billing/manage/resume", data={}, headers={"X-User": "1", **SAME_ORIGIN}
        )
        page = client.get("/settings", headers={"X-User": "1"})
        resume = forms_of(page.get_data(as_text=True))[1]
        with_token = client.post(
            resume["attributes"]["action"], data=resume["fields"], headers={"X-User": "1"}
        )

        assert without.status_code == 400
        assert b"CSRF" in without.data
        assert "csrf_token" in resume["fields"]
        assert (with_token.status_code, with_token.headers["Location"]) == (303, "/settings")
        assert host.user(1).cancel_at_period_end is False
    finally:
        drop(host)


@pytest.mark.parametrize("route", ROUTES)
def test_the_form_routes_are_off_with_the_json_routes_404(route: str, stripe_api: Any) -> None:
    host = managed_host({"SECRET_KEY": "test"})
    try:
        response = submit(host.client, route)
        assert (response.status_code, response.get_json()["error"]) == (404, "not_found")
        assert list(stripe_api.calls) == []
    finally:
        drop(host)


def test_the_form_routes_answer_other_methods_405_json(managed: Host) -> None:
    response = managed.client.get("/billing/manage/cancel", headers={"X-User": "1"})

    assert (response.status_code, response.headers["Allow"]) == (405, "POST")
    assert response.get_json()["error"] == "method_not_allowed"


# The buttons


BUTTONS = """
{{ billing_cancel_button(class="danger") }}
{{ billing_resume_button() }}
{{ billing_change_plan_button("Go yearly", interval="yearly", when="period_end") }}
{{ billing_seats_form(quantity=3) }}
{{ billing_cancel_button("End now", at_period_end=False, next="/bye") }}
"""


def test_the_buttons_are_forms_to_the_form_routes_coming_back_to_the_page(
    managed: Host,
) -> None:
    with managed.app.test_request_context("/settings?tab=2"):
        html = managed.app.jinja_env.from_string(BUTTONS).render()

    cancel, resume, change, seats, now = forms_of(html)
    assert cancel["attributes"]["action"] == "/billing/manage/cancel"
    assert cancel["fields"] == {"at_period_end": "true", "next": "/settings?tab=2"}
    assert cancel["button"] == {"type": "submit", "class": "danger"}
    assert resume["attributes"]["action"] == "/billing/manage/resume"
    assert change["fields"] == {
        "interval": "yearly",
        "when": "period_end",
        "next": "/settings?tab=2",
    }
    assert seats["attributes"]["action"] == "/billing/manage/seats"
    assert seats["fields"]["quantity"] == "3"
    assert 'type="number" name="quantity" min="1" max="10"' in html
    assert now["fields"] == {"at_period_end": "false", "next": "/bye"}
    assert "Go yearly</button>" in html
