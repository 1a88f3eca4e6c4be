"""Ready-made buttons and the no-JavaScript form routes: with and without Flask-WTF's
CSRFProtect, under a url_prefix, and refusing requests made by other sites' pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import responses
from conftest import Host
from flask import render_template_string, request
from flask_wtf.csrf import CSRFProtect
from support import post_event, subscription_event
from test_checkout import API, CONFIG, PORTAL, SESSION, as_user, form, stripe_calls

BUTTONS = """
{{ billing_checkout_button("Upgrade to Team", interval="yearly", quantity=5, class="btn") }}
{{ billing_portal_button("Manage billing", flow="payment_method_update") }}
"""
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


class Forms(HTMLParser):
    """Each ``<form>`` of a page: its action, its hidden fields, its button's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"attributes": attributes, "fields": {}, "button": None})
        elif tag == "input" and self.forms:
            self.forms[-1]["fields"][attributes["name"]] = attributes["value"]
        elif tag == "button" and self.forms:
            self.forms[-1]["button"] = attributes


def forms_of(html: str) -> list[dict[str, Any]]:
    parser = Forms()
    parser.feed(html)
    return parser.forms


@pytest.fixture
def shop(make_host: Callable[..., Host]) -> Callable[..., Host]:
    """A host whose current user is named by the X-User header, with a /pricing page."""

    def make(*, url_prefix: str | None = None, **config: Any) -> Host:
        made = make_host(
            {**CONFIG, "STRIPE_SEATS_MAX": 10, **config},
            url_prefix=url_prefix,
            current_user_id=lambda: request.headers.get("X-User"),
        )
        made.app.add_url_rule("/pricing", "pricing", lambda: render_template_string(BUTTONS))
        made.add_user(1, email="ada@example.com", stripe_customer_id="cus_ada")
        return made

    return make


def with_csrf(host: Host) -> Host:
    host.app.config.update(WTF_CSRF_ENABLED=True, SECRET_KEY="test", TESTING=False)
    CSRFProtect(host.app)
    return host


# The buttons


def test_buttons_without_csrf_protect_are_forms_to_the_form_routes_without_a_token(
    shop: Callable[..., Host],
) -> None:
    page = shop().client.get("/pricing", headers=as_user("1"))

    upgrade, manage = forms_of(page.get_data(as_text=True))
    assert upgrade["attributes"]["method"] == "post"
    assert upgrade["attributes"]["action"] == "/billing/checkout"
    assert upgrade["fields"] == {"interval": "yearly", "quantity": "5"}
    assert upgrade["button"] == {"type": "submit", "class": "btn"}
    assert manage["attributes"]["action"] == "/billing/portal/redirect"
    assert manage["fields"] == {"flow": "payment_method_update"}
    assert "Upgrade to Team</button>" in page.get_data(as_text=True)


def test_buttons_follow_the_blueprints_url_prefix(shop: Callable[..., Host]) -> None:
    page = shop(url_prefix="/api").client.get("/pricing", headers=as_user("1"))

    upgrade, manage = forms_of(page.get_data(as_text=True))
    assert upgrade["attributes"]["action"] == "/api/billing/checkout"
    assert manage["attributes"]["action"] == "/api/billing/portal/redirect"


def test_buttons_with_csrf_protect_carry_the_token_and_the_form_goes_to_checkout(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = with_csrf(shop())
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)
    client = host.client

    upgrade, manage = forms_of(client.get("/pricing", headers=as_user("1")).get_data(as_text=True))
    assert set(upgrade["fields"]) == {"interval", "quantity", "csrf_token"}
    assert manage["fields"]["csrf_token"] == upgrade["fields"]["csrf_token"]
    answer = client.post(
        upgrade["attributes"]["action"], data=upgrade["fields"], headers=as_user("1")
    )

    assert answer.status_code == 303
    assert answer.headers["Location"] == SESSION["url"]
    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    assert form(call)["line_items[0][price]"] == "price_yearly"
    assert form(call)["line_items[0][quantity]"] == "5"
    assert form(call)["customer"] == "cus_ada"


def test_with_csrf_protect_a_form_post_without_the_token_is_refused_by_flask_wtf(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = with_csrf(shop())

    for path in ("/billing/checkout", "/billing/portal/redirect"):
        answer = host.client.post(
            path, data={"interval": "monthly"}, headers={**as_user("1"), **SAME_ORIGIN}
        )
        assert answer.status_code == 400
        assert b"CSRF" in answer.data
    assert len(stripe_api.calls) == 0


def test_the_token_follows_flask_wtfs_field_name(shop: Callable[..., Host]) -> None:
    host = with_csrf(shop(WTF_CSRF_FIELD_NAME="_token"))

    page = host.client.get("/pricing", headers=as_user("1"))

    upgrade, _ = forms_of(page.get_data(as_text=True))
    assert "_token" in upgrade["fields"] and "csrf_token" not in upgrade["fields"]


def test_labels_and_values_are_escaped(shop: Callable[..., Host]) -> None:
    host = shop()
    with host.app.test_request_context("/pricing"):
        html = render_template_string(
            '{{ billing_checkout_button("<b>Go</b>", price_id=\'x"><script>\') }}'
        )

    assert "<b>" not in html and "<script>" not in html
    assert "&lt;b&gt;Go&lt;/b&gt;" in html


# The form routes without CSRFProtect: only this site's pages


@pytest.mark.parametrize(
    "headers",
    [SAME_ORIGIN, {"Sec-Fetch-Site": "none"}, {"Origin": "http://localhost"}],
    ids=["sec-fetch-site same-origin", "typed by the user", "origin of this host"],
)
def test_the_checkout_form_from_this_site_is_a_303_to_checkout(
    shop: Callable[..., Host], stripe_api: Any, headers: dict[str, str]
) -> None:
    host = shop()
    stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=SESSION)

    answer = host.client.post(
        "/billing/checkout",
        data={"price_id": "price_monthly", "quantity": "3"},
        headers={**as_user("1"), **headers},
    )

    assert answer.status_code == 303
    assert answer.headers["Location"] == SESSION["url"]
    (call,) = stripe_calls(stripe_api, "/checkout/sessions")
    assert form(call)["line_items[0][price]"] == "price_monthly"
    assert form(call)["line_items[0][quantity]"] == "3"
    assert form(call)["client_reference_id"] == "1"


@pytest.mark.parametrize(
    ("headers", "details"),
    [
        ({"Sec-Fetch-Site": "cross-site"}, {"sec_fetch_site": "cross-site"}),
        ({"Sec-Fetch-Site": "same-site"}, {"sec_fetch_site": "same-site"}),
        ({"Origin": "https://evil.example"}, {"origin": "https://evil.example"}),
        ({"Origin": "null"}, {"origin": "null"}),
        ({}, {}),
    ],
    ids=["cross-site", "same-site", "other origin", "opaque origin", "no header"],
)
def test_a_form_post_another_site_may_have_made_is_403_and_reaches_no_stripe(
    shop: Callable[..., Host], stripe_api: Any, headers: dict[str, str], details: dict[str, str]
) -> None:
    host = shop()

    for path in ("/billing/checkout", "/billing/portal/redirect"):
        answer = host.client.post(path, data={}, headers={**as_user("1"), **headers})
        assert answer.status_code == 403
        assert answer.json["error"] == "forbidden"
        assert answer.json["details"] == details
    assert len(stripe_api.calls) == 0


def test_the_portal_redirect_opens_the_portal_on_the_flow_asked(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop()
    stripe_api.add(responses.POST, f"{API}/billing_portal/sessions", json=PORTAL)

    posted = host.client.post(
        "/billing/portal/redirect",
        data={"flow": "payment_method_update"},
        headers={**as_user("1"), **SAME_ORIGIN},
    )
    linked = host.client.get("/billing/portal/redirect", headers=as_user("1"))

    assert (posted.status_code, posted.headers["Location"]) == (303, PORTAL["url"])
    assert (linked.status_code, linked.headers["Location"]) == (303, PORTAL["url"])
    first, second = stripe_calls(stripe_api, "/billing_portal/sessions")
    assert form(first)["flow_data[type]"] == "payment_method_update"
    assert form(first)["customer"] == "cus_ada"
    assert "flow_data[type]" not in form(second)


def test_a_link_to_the_portal_from_another_site_is_403(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    answer = shop().client.get(
        "/billing/portal/redirect", headers={**as_user("1"), "Sec-Fetch-Site": "cross-site"}
    )

    assert answer.status_code == 403
    assert len(stripe_api.calls) == 0


# Errors of the form routes: the blueprint's JSON answers


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"quantity": "many"}, "quantity must be a whole number"),
        ({"quantity": "11"}, "quantity must be from 1 to 10"),
        ({"quantity": "²"}, "quantity must be a whole number"),
        ({"interval": "weekly"}, 'interval must be "monthly" or "yearly"'),
        ({"price_id": "price_other"}, "price_id is not one of the configured prices"),
    ],
)
def test_a_bad_checkout_form_is_400_json(
    shop: Callable[..., Host], stripe_api: Any, data: dict[str, str], message: str
) -> None:
    answer = shop().client.post(
        "/billing/checkout", data=data, headers={**as_user("1"), **SAME_ORIGIN}
    )

    assert answer.status_code == 400
    assert answer.json["error"] == "validation_error"
    assert answer.json["message"] == message
    assert len(stripe_api.calls) == 0


def test_form_routes_without_a_user_are_401(shop: Callable[..., Host], stripe_api: Any) -> None:
    host = shop()

    for path in ("/billing/checkout", "/billing/portal/redirect"):
        answer = host.client.post(path, headers=SAME_ORIGIN)
        assert answer.status_code == 401
        assert answer.json["error"] == "authentication_error"
    assert len(stripe_api.calls) == 0


def test_form_routes_answer_other_methods_405_json(shop: Callable[..., Host]) -> None:
    host = shop()

    checkout = host.client.get("/billing/checkout", headers=as_user("1"))
    portal = host.client.put("/billing/portal/redirect", headers=as_user("1"))

    assert (checkout.status_code, checkout.headers["Allow"]) == (405, "POST")
    assert checkout.json["details"] == {"allowed": ["POST"]}
    assert (portal.status_code, portal.headers["Allow"]) == (405, "GET, POST")
    assert (
        portal.json["message"] == "PUT is not allowed on /billing/portal/redirect; use GET or POST"
    )


def test_a_checkout_form_over_64_kib_is_413(shop: Callable[..., Host], stripe_api: Any) -> None:
    answer = shop().client.post(
        "/billing/checkout",
        data={"interval": "monthly", "padding": "x" * (65 * 1024)},
        headers={**as_user("1"), **SAME_ORIGIN},
    )

    assert answer.status_code == 413
    assert answer.json["error"] == "payload_too_large"
    assert len(stripe_api.calls) == 0


def test_a_paying_user_pressing_upgrade_gets_409_naming_the_portal(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    host = shop(url_prefix="/api")
    event = subscription_event(customer="cus_ada", subscription="sub_ada")
    assert post_event(host.client, event, path="/api/stripe/webhook").status_code == 200

    answer = host.client.post("/api/billing/checkout", headers={**as_user("1"), **SAME_ORIGIN})

    assert answer.status_code == 409
    assert answer.json["details"]["portal"] == "/api/billing/portal"
    assert "already have an active subscription" in answer.json["message"]
    assert len(stripe_api.calls) == 0


# The README's button snippets render in apps with and without CSRFProtect


README = Path(__file__).resolve().parent.parent / "README.md"


def readme_snippets() -> list[str]:
    """The README's ```html blocks that make billing buttons."""
    blocks = re.findall(r"```html\n(.*?)```", README.read_text(), flags=re.DOTALL)
    return [block for block in blocks if "billing" in block]


def test_the_readme_button_snippets_work_without_csrf_protect_and_under_a_prefix(
    shop: Callable[..., Host],
) -> None:
    host = shop(url_prefix="/api")
    snippets = readme_snippets()
    assert len(snippets) == 2

    with host.app.test_request_context("/pricing"):
        forms, script = (render_template_string(snippet) for snippet in snippets)

    assert [f["attributes"]["action"] for f in forms_of(forms)] == [
        "/api/billing/checkout",
        "/api/billing/checkout",
        "/api/billing/checkout",
        "/api/billing/portal/redirect",
    ]
    assert "'/api/billing/checkout-session'" in script
    assert "'/api/billing/portal'" in script
    assert 'const csrfToken = "";' in script


def test_the_readme_button_snippets_carry_the_token_with_csrf_protect(
    shop: Callable[..., Host],
) -> None:
    host = with_csrf(shop())

    with host.app.test_request_context("/pricing"):
        forms, script = (render_template_string(snippet) for snippet in readme_snippets())

    assert all("csrf_token" in f["fields"] for f in forms_of(forms))
    assert re.search(r'const csrfToken = "[\w.-]+";', script)


def test_with_csrf_protect_anonymous_checkout_without_the_token_is_flask_wtfs_400(
    shop: Callable[..., Host], stripe_api: Any
) -> None:
    """As docs/checkout.md says: CSRFProtect answers before the view, so 400, not 401;
    with the token, the anonymous caller gets the 401."""
    host = with_csrf(shop())
    client = host.client

    without = client.post("/billing/checkout-session", json={"interval": "monthly"})
    upgrade, _ = forms_of(client.get("/pricing").get_data(as_text=True))  # anonymous page
    with_token = client.post(
        "/billing/checkout-session",
        json={"interval": "monthly"},
        headers={"X-CSRFToken": upgrade["fields"]["csrf_token"]},
    )

    assert without.status_code == 400
    assert b"The CSRF token is missing." in without.data
    assert (with_token.status_code, with_token.json["error"]) == (401, "authentication_error")
    assert len(stripe_api.calls) == 0
