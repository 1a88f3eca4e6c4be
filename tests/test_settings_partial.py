"""``{{ billing_settings() }}``: the settings-page partial shipped in the package, for a
paying user, one whose subscription ends, a free user, an anonymous caller; with the
management routes on and off; replaceable by the host's own template."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Host
from flask import render_template_string
from jinja2 import DictLoader
from manage_support import drop, managed_host
from test_buttons import forms_of

PAGE = "{{ billing_settings() }}"


def render(host: Host, user: str | None, template: str = PAGE) -> str:
    headers = {} if user is None else {"X-User": user}
    with host.app.test_request_context("/settings", headers=headers):
        return render_template_string(template)


@pytest.fixture
def hosts() -> Any:
    made: list[Host] = []

    def make(config: dict[str, Any] | None = None) -> Host:
        host = managed_host(config)
        made.append(host)
        return host

    yield make
    for host in made:
        drop(host)


def test_a_paying_user_sees_plan_renewal_and_the_buttons(hosts: Callable[..., Host]) -> None:
    html = render(hosts({"STRIPE_BILLING_MANAGEMENT_ROUTES": "1"}), "1")

    assert '<dd class="stripe-billing-plan">pro</dd>' in html
    assert '<dd class="stripe-billing-status">active</dd>' in html
    assert "<dt>Renews on</dt>" in html
    forms = forms_of(html)
    actions = [f["attributes"]["action"] for f in forms]
    assert actions == [
        "/billing/manage/cancel",
        "/billing/manage/change-plan",  # to small-annual: the user is on small-monthly
        "/billing/manage/seats",
        "/billing/portal/redirect",
    ]
    assert forms[1]["fields"] == {"price_id": "small-annual", "when": "now", "next": "/settings"}
    assert "Switch to pro-annual, yearly</button>" in html
    assert "Cancel at the end of the period</button>" in html


def test_a_subscription_set_to_end_shows_the_end_date_and_resume(
    hosts: Callable[..., Host],
) -> None:
    host = hosts({"STRIPE_BILLING_MANAGEMENT_ROUTES": "1"})
    with host.app.app_context():
        user = host.db.session.get(host.User, 1)
        user.cancel_at_period_end = True
        host.db.session.commit()

    html = render(host, "1")

    assert "<dt>Ends on</dt>" in html
    actions = [f["attributes"]["action"] for f in forms_of(html)]
    assert actions[0] == "/billing/manage/resume"
    assert "/billing/manage/cancel" not in actions


def test_with_the_routes_off_only_the_portal_button_shows(hosts: Callable[..., Host]) -> None:
    html = render(hosts(), "1")

    assert '<dd class="stripe-billing-plan">pro</dd>' in html
    assert [f["attributes"]["action"] for f in forms_of(html)] == ["/billing/portal/redirect"]


def test_a_free_user_and_an_anonymous_caller(hosts: Callable[..., Host]) -> None:
    host = hosts({"STRIPE_BILLING_MANAGEMENT_ROUTES": "1"})

    free = render(host, "2")
    anonymous = render(host, None)

    assert 'You are on the <strong class="stripe-billing-plan">free</strong> plan.' in free
    assert forms_of(free) == []  # no customer yet: no portal either
    assert "Sign in to see your billing." in anonymous
    assert forms_of(anonymous) == []


def test_options_reach_the_partial(hosts: Callable[..., Host]) -> None:
    html = render(
        hosts({"STRIPE_BILLING_MANAGEMENT_ROUTES": "1"}),
        "1",
        '{{ billing_settings(next="/account", portal=False) }}',
    )

    forms = forms_of(html)
    assert {f["fields"]["next"] for f in forms} == {"/account"}
    assert "/billing/portal/redirect" not in [f["attributes"]["action"] for f in forms]


def test_the_host_may_replace_the_partial(hosts: Callable[..., Host]) -> None:
    host = hosts()
    host.app.jinja_loader = DictLoader(
        {"stripe_billing/settings.html": "ours: {{ account.plan }} {{ prices | length }}"}
    )

    assert render(host, "1") == "ours: pro 2"


README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_settings_snippet_renders_the_partial_and_the_buttons(
    hosts: Callable[..., Host],
) -> None:
    (snippet,) = re.findall(r"```html\+jinja\n(.*?)```", README.read_text(), flags=re.DOTALL)
    host = hosts({"STRIPE_BILLING_MANAGEMENT_ROUTES": "1"})

    html = render(host, "1", snippet)

    actions = [f["attributes"]["action"] for f in forms_of(html)]
    assert actions[:4] == [  # the partial
        "/billing/manage/cancel",
        "/billing/manage/change-plan",
        "/billing/manage/seats",
        "/billing/portal/redirect",
    ]
    assert actions[4:] == [  # the buttons one by one
        "/billing/manage/cancel",
        "/billing/manage/resume",
        "/billing/manage/change-plan",
        "/billing/manage/seats",
    ]
