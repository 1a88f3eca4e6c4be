"""Templates see ``billing_account``: the signed-in user's account, or None."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import Host
from flask import render_template_string, request

from flask_stripe_billing.testing import get_account

TEMPLATE = (
    "{% if billing_account %}{{ billing_account.plan }}"
    "{% if billing_account.is_past_due() %} (payment failed){% endif %}"
    "{% else %}anonymous{% endif %}"
)


def template_host(make_host: Callable[..., Host]) -> Host:
    host = make_host(current_user_id=lambda: request.headers.get("X-User"))

    @host.app.get("/account")
    def account_page() -> str:
        return render_template_string(TEMPLATE)

    host.add_user(1, plan="pro", stripe_subscription_status="past_due")
    host.add_user(2)
    return host


def test_templates_see_the_signed_in_users_account(make_host: Callable[..., Host]) -> None:
    host = template_host(make_host)

    pro = host.client.get("/account", headers={"X-User": "1"})
    free = host.client.get("/account", headers={"X-User": "2"})

    assert pro.get_data(as_text=True) == "pro (payment failed)"
    assert free.get_data(as_text=True) == "free"


def test_templates_see_none_when_anonymous(make_host: Callable[..., Host]) -> None:
    host = template_host(make_host)

    assert host.client.get("/account").get_data(as_text=True) == "anonymous"


def test_templates_rendered_outside_a_request_see_none(make_host: Callable[..., Host]) -> None:
    host = template_host(make_host)

    with host.app.app_context():
        assert render_template_string(TEMPLATE) == "anonymous"


@pytest.mark.parametrize(("setting", "paying"), [(None, True), ("false", False)])
def test_is_paying_follows_the_apps_past_due_grace(
    make_host: Callable[..., Host], setting: str | None, paying: bool
) -> None:
    """``STRIPE_PAST_DUE_KEEPS_PLAN`` off: a past_due account the extension hands out is not
    paying, in templates, from ``billing.account()`` and from the testing helpers."""
    config = {} if setting is None else {"STRIPE_PAST_DUE_KEEPS_PLAN": setting}
    host = make_host(config, current_user_id=lambda: request.headers.get("X-User"))

    @host.app.get("/paying")
    def paying_page() -> str:
        return render_template_string("{{ billing_account.is_paying() }}")

    host.add_user(1, plan="pro", stripe_subscription_status="past_due")

    page = host.client.get("/paying", headers={"X-User": "1"})
    with host.app.app_context():
        from_billing = host.billing.account(1)
    from_testing = get_account(host.app, 1)

    assert page.get_data(as_text=True) == str(paying)
    assert from_billing.is_paying() is paying
    assert from_billing.is_paying(past_due_keeps_plan=True) is True
    assert from_testing is not None and from_testing.is_paying() is paying
