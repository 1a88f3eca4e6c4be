"""Gates on the host's own views: by plan, by feature, for a whole blueprint; HTML and JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import Host
from flask import Blueprint, Flask, render_template_string, request
from flask_login import LoginManager, UserMixin
from jinja2 import DictLoader
from support import post_event, subscription_event

from flask_stripe_billing import BillingAccount, InMemoryUserStore, StripeBilling

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
URLS = {"STRIPE_BILLING_PRICING_URL": "/pricing", "STRIPE_BILLING_LOGIN_URL": "/login"}


def header_user_id() -> str | None:
    """The current user, as the host's own auth says: here the X-User header."""
    return request.headers.get("X-User")


def gated_host(make_host: Callable[..., Host], config: dict[str, Any] | None = None) -> Host:
    """A host with ``/pro`` (plan pro), ``/paid`` (any paid plan), ``/export`` (feature)."""
    host = make_host(
        {"STRIPE_BILLING_FEATURES": {"pro": ["export"]}, **URLS, **(config or {})},
        current_user_id=header_user_id,
    )
    billing = host.billing

    @host.app.get("/pro")
    @billing.plan_required("pro")
    def pro_page() -> str:
        return "pro page"

    @host.app.get("/paid")
    @billing.plan_required()
    def paid_page() -> str:
        return "paid page"

    @host.app.get("/export")
    @billing.feature_required("export")
    def export_page() -> str:
        return "export page"

    host.add_user(1, stripe_customer_id="cus_test")
    return host


def as_user(user_id: int | None, accept: dict[str, str]) -> dict[str, str]:
    return accept if user_id is None else {**accept, "X-User": str(user_id)}


def subscribe(host: Host, status: str = "active", **facts: Any) -> None:
    """User 1's subscription changes, as Stripe tells it through the webhook."""
    response = post_event(host.client, subscription_event(status=status, **facts))
    assert response.status_code == 200


def test_a_subscriber_sees_the_plan_page(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host)
    subscribe(host)

    for path, body in (("/pro", "pro page"), ("/paid", "paid page"), ("/export", "export page")):
        response = host.client.get(path, headers=as_user(1, HTML))
        assert (response.status_code, response.get_data(as_text=True)) == (200, body)
    assert host.user(1).plan == "pro"


def test_a_free_user_is_sent_to_the_pricing_page(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host)

    for path in ("/pro", "/paid", "/export"):
        response = host.client.get(path, headers=as_user(1, HTML))
        assert (response.status_code, response.headers["Location"]) == (302, "/pricing")
        assert response.headers["Vary"] == "Accept"
    assert host.user(1).plan == "free"


def test_a_free_json_caller_gets_402_naming_the_plan(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host)

    response = host.client.get("/pro", headers=as_user(1, JSON))

    assert response.status_code == 402
    assert response.get_json() == {
        "error": "payment_required",
        "message": "This page needs the pro plan",
        "details": {"required_plans": ["pro"], "current_plan": "free"},
    }
    assert "Location" not in response.headers
    assert response.headers["Vary"] == "Accept"


def test_any_paid_plan_gate_names_no_plan(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host)

    response = host.client.get("/paid", headers=as_user(1, JSON))

    assert response.status_code == 402
    assert response.get_json() == {
        "error": "payment_required",
        "message": "This page needs a paid plan",
        "details": {"required_plans": [], "current_plan": "free"},
    }


def test_a_json_body_is_a_json_caller(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host)

    response = host.client.get("/pro", json={}, headers={"X-User": "1"})

    assert (response.status_code, response.get_json()["error"]) == (402, "payment_required")


def test_a_plan_without_the_feature_gets_403_naming_the_feature(
    make_host: Callable[..., Host],
) -> None:
    host = gated_host(make_host)

    response = host.client.get("/export", headers=as_user(1, JSON))

    assert response.status_code == 403
    assert response.get_json() == {
        "error": "forbidden",
        "message": "Your plan does not include export",
        "details": {"required_feature": "export", "current_plan": "free"},
    }


@pytest.mark.parametrize("path", ["/pro", "/paid", "/export"])
def test_anonymous_html_callers_are_sent_to_the_login_page(
    make_host: Callable[..., Host], path: str
) -> None:
    host = gated_host(make_host)

    response = host.client.get(path, headers=HTML)

    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next=%2F{path[1:]}"


def test_the_login_redirect_keeps_the_query_of_both(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host, {"STRIPE_BILLING_LOGIN_URL": "https://id.example.com/in?app=7"})

    response = host.client.get("/pro?tab=2", headers=HTML)

    assert response.headers["Location"] == "https://id.example.com/in?app=7&next=%2Fpro%3Ftab%3D2"


def test_anonymous_html_callers_go_to_pricing_without_a_login_url(
    make_host: Callable[..., Host],
) -> None:
    host = gated_host(make_host, {"STRIPE_BILLING_LOGIN_URL": None})

    response = host.client.get("/pro", headers=HTML)

    assert (response.status_code, response.headers["Location"]) == (302, "/pricing")


@pytest.mark.parametrize("path", ["/pro", "/paid", "/export"])
def test_anonymous_json_callers_get_401(make_host: Callable[..., Host], path: str) -> None:
    host = gated_host(make_host)

    response = host.client.get(path, headers=JSON)

    assert response.status_code == 401
    assert response.get_json() == {
        "error": "authentication_error",
        "message": "Sign in to see this page",
        "details": {},
    }


def test_an_unknown_user_id_is_anonymous(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host)

    response = host.client.get("/pro", headers=as_user(99, JSON))

    assert response.status_code == 401


NO_URLS = {"STRIPE_BILLING_PRICING_URL": None, "STRIPE_BILLING_LOGIN_URL": None}


def test_without_urls_html_callers_get_a_plain_html_page_with_the_status(
    make_host: Callable[..., Host],
) -> None:
    host = gated_host(make_host, NO_URLS)

    free = host.client.get("/pro", headers=as_user(1, HTML))
    no_feature = host.client.get("/export", headers=as_user(1, HTML))
    anonymous = host.client.get("/pro", headers=HTML)

    for response, status, message in (
        (free, 402, "This page needs the pro plan"),
        (no_feature, 403, "Your plan does not include export"),
        (anonymous, 401, "Sign in to see this page"),
    ):
        assert response.status_code == status
        assert response.mimetype == "text/html"
        assert f"<h1>{message}</h1>" in response.get_data(as_text=True)
        assert response.get_json(silent=True) is None
        assert "Accept" in response.vary


def test_without_urls_json_callers_still_get_json(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host, NO_URLS)

    free = host.client.get("/pro", headers=as_user(1, JSON))
    anonymous = host.client.get("/pro", headers=JSON)

    assert (free.status_code, free.get_json()["error"]) == (402, "payment_required")
    assert (anonymous.status_code, anonymous.get_json()["error"]) == (401, "authentication_error")


def test_the_host_may_replace_the_plain_page(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host, NO_URLS)
    host.app.jinja_loader = DictLoader(
        {"stripe_billing/refused.html": "our page: {{ status }} {{ message }}"}
    )

    response = host.client.get("/pro", headers=as_user(1, HTML))

    assert response.status_code == 402
    assert response.get_data(as_text=True) == "our page: 402 This page needs the pro plan"


def test_the_pricing_url_may_name_an_endpoint(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host, {"STRIPE_BILLING_PRICING_URL": "plans"})

    @host.app.get("/our-plans", endpoint="plans")
    def plans() -> str:
        return "plans"

    response = host.client.get("/pro", headers=as_user(1, HTML))

    assert response.headers["Location"] == "/our-plans"


def test_the_pricing_url_may_be_another_site(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host, {"STRIPE_BILLING_PRICING_URL": "https://example.com/pricing"})

    response = host.client.get("/pro", headers=as_user(1, HTML))

    assert response.headers["Location"] == "https://example.com/pricing"


def test_past_due_keeps_the_page_while_the_grace_applies(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host)
    subscribe(host, status="past_due")

    response = host.client.get("/pro", headers=as_user(1, JSON))

    assert response.status_code == 200
    assert (host.user(1).plan, host.user(1).stripe_subscription_status) == ("pro", "past_due")


def test_past_due_closes_the_page_without_the_grace(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host, {"STRIPE_PAST_DUE_KEEPS_PLAN": "false"})
    subscribe(host, status="past_due")

    response = host.client.get("/pro", headers=as_user(1, JSON))

    assert response.status_code == 402
    assert response.get_json()["details"]["current_plan"] == "free"
    assert host.user(1).plan == "free"


def test_canceled_at_period_end_keeps_the_page_until_the_end(
    make_host: Callable[..., Host],
) -> None:
    host = gated_host(make_host)
    subscribe(host, cancel_at_period_end=True)

    assert host.client.get("/pro", headers=as_user(1, JSON)).status_code == 200
    assert host.user(1).cancel_at_period_end is True


def test_a_deleted_subscription_closes_the_page(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host)
    subscribe(host)
    subscribe(host, status="canceled", event_type="customer.subscription.deleted")

    response = host.client.get("/pro", headers=as_user(1, HTML))

    assert (response.status_code, response.headers["Location"]) == (302, "/pricing")
    assert host.user(1).plan == "free"


def test_the_decorated_view_keeps_its_name_and_arguments(make_host: Callable[..., Host]) -> None:
    host = gated_host(make_host)

    @host.app.get("/reports/<int:year>")
    @host.billing.plan_required("pro")
    def report(year: int) -> str:
        return f"report {year}"

    subscribe(host)
    response = host.client.get("/reports/2026", headers=as_user(1, HTML))

    assert response.get_data(as_text=True) == "report 2026"
    assert host.app.view_functions["report"].__name__ == "report"


# A whole blueprint


def blueprint_host(make_host: Callable[..., Host]) -> tuple[Host, list[str]]:
    """A host whose ``/team/...`` blueprint needs the team plan; and the ids asked for."""
    asked: list[str] = []

    def counting_user_id() -> str | None:
        asked.append(request.path)
        return header_user_id()

    host = make_host(
        {**URLS, "STRIPE_BILLING_PLANS": {"price_team": "team"}}, current_user_id=counting_user_id
    )
    team = Blueprint("team", __name__, url_prefix="/team")

    @team.get("/dashboard")
    def dashboard() -> str:
        return "team dashboard"

    host.billing.require_plan_for_blueprint(team, "team")
    host.app.register_blueprint(team)

    @host.app.get("/")
    def home() -> str:
        return "home"

    host.add_user(1, stripe_customer_id="cus_test")
    return host, asked


def test_the_blueprint_gate_lets_the_plan_in(make_host: Callable[..., Host]) -> None:
    host, _ = blueprint_host(make_host)
    subscribe(host, price="price_team")

    response = host.client.get("/team/dashboard", headers=as_user(1, HTML))

    assert (response.status_code, response.get_data(as_text=True)) == (200, "team dashboard")
    assert host.user(1).plan == "team"


def test_the_blueprint_gate_turns_others_away(make_host: Callable[..., Host]) -> None:
    host, _ = blueprint_host(make_host)
    subscribe(host)  # the default paid plan, pro: not team

    html = host.client.get("/team/dashboard", headers=as_user(1, HTML))
    json = host.client.get("/team/dashboard", headers=as_user(1, JSON))
    anonymous = host.client.get("/team/dashboard", headers=JSON)

    assert (html.status_code, html.headers["Location"]) == (302, "/pricing")
    assert (json.status_code, json.get_json()["details"]) == (
        402,
        {"required_plans": ["team"], "current_plan": "pro"},
    )
    assert (anonymous.status_code, anonymous.get_json()["error"]) == (401, "authentication_error")


def test_gates_let_a_cors_preflight_through(make_host: Callable[..., Host]) -> None:
    host, _ = blueprint_host(make_host)
    gated = gated_host(make_host)

    for client, path in ((host.client, "/team/dashboard"), (gated.client, "/pro")):
        response = client.options(path, headers={"Access-Control-Request-Method": "GET"})
        assert response.status_code == 200
        assert "GET" in response.headers["Allow"]


def test_the_blueprint_gate_runs_on_no_other_request(make_host: Callable[..., Host]) -> None:
    host, asked = blueprint_host(make_host)

    home = host.client.get("/", headers=as_user(1, HTML))
    webhook = post_event(host.client, subscription_event())
    gated = host.client.get("/team/dashboard", headers=as_user(1, HTML))

    assert (home.status_code, webhook.status_code, gated.status_code) == (200, 200, 302)
    assert asked == ["/team/dashboard"]


# Flask-Login as the current user


def login_app(plan: str) -> Flask:
    """An app with Flask-Login and no current_user_id given; user 1 is on ``plan``."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", STRIPE_BILLING_PRICING_URL="/pricing")

    class LoginUser(UserMixin):  # type: ignore[misc]
        def __init__(self, user_id: str) -> None:
            self.id = user_id

    LoginManager(app).user_loader(LoginUser)
    billing = StripeBilling(app, user_store=InMemoryUserStore([BillingAccount("1", plan=plan)]))

    @app.get("/pro")
    @billing.plan_required("pro")
    def pro_page() -> str:
        return render_template_string("{{ billing_account.plan }} page")

    return app


def signed_in(app: Flask) -> Any:
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1"
    return client


def test_flask_login_user_on_the_plan_sees_the_page() -> None:
    response = signed_in(login_app("pro")).get("/pro", headers=HTML)

    assert (response.status_code, response.get_data(as_text=True)) == (200, "pro page")


def test_flask_login_user_without_the_plan_is_turned_away() -> None:
    client = signed_in(login_app("free"))

    html = client.get("/pro", headers=HTML)
    json = client.get("/pro", headers=JSON)

    assert (html.status_code, html.headers["Location"]) == (302, "/pricing")
    assert (json.status_code, json.get_json()["details"]["current_plan"]) == (402, "free")


def test_flask_login_anonymous_is_turned_away() -> None:
    client = login_app("pro").test_client()

    html = client.get("/pro", headers=HTML)
    json = client.get("/pro", headers=JSON)

    assert (html.status_code, html.headers["Location"]) == (302, "/pricing")
    assert (json.status_code, json.get_json()["error"]) == (401, "authentication_error")


def test_the_blueprint_feature_gate(make_host: Callable[..., Host]) -> None:
    host = make_host(
        {**URLS, "STRIPE_BILLING_FEATURES": '{"pro": ["reports"]}'},
        current_user_id=header_user_id,
    )
    reports = Blueprint("reports", __name__, url_prefix="/reports")

    @reports.get("/")
    def index() -> str:
        return "reports"

    host.billing.require_feature_for_blueprint(reports, "reports")
    host.app.register_blueprint(reports)
    host.add_user(1, stripe_customer_id="cus_test")

    before = host.client.get("/reports/", headers=as_user(1, JSON))
    subscribe(host)
    after = host.client.get("/reports/", headers=as_user(1, JSON))

    assert (before.status_code, before.get_json()["details"]) == (
        403,
        {"required_feature": "reports", "current_plan": "free"},
    )
    assert (after.status_code, after.get_data(as_text=True)) == (200, "reports")


# Flask-Login's login_view, when no STRIPE_BILLING_LOGIN_URL is set


def login_view_app(plan: str, *, pricing: str | None = None) -> Flask:
    """An app with Flask-Login (``login_view = "login"``) and no login URL setting."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", STRIPE_BILLING_PRICING_URL=pricing)

    class LoginUser(UserMixin):  # type: ignore[misc]
        def __init__(self, user_id: str) -> None:
            self.id = user_id

    manager = LoginManager(app)
    manager.user_loader(LoginUser)
    manager.login_view = "login"
    billing = StripeBilling(app, user_store=InMemoryUserStore([BillingAccount("1", plan=plan)]))
    app.add_url_rule("/sign-in", "login", lambda: "sign in here")

    @app.get("/pro")
    @billing.plan_required("pro")
    def pro_page() -> str:
        return "pro page"

    return app


@pytest.mark.parametrize("pricing", [None, "/pricing"])
def test_anonymous_html_callers_go_to_flask_logins_login_view(pricing: str | None) -> None:
    client = login_view_app("pro", pricing=pricing).test_client()

    html = client.get("/pro?tab=2", headers=HTML)
    json = client.get("/pro", headers=JSON)

    assert (html.status_code, html.headers["Location"]) == (302, "/sign-in?next=%2Fpro%3Ftab%3D2")
    assert (json.status_code, json.get_json()["error"]) == (401, "authentication_error")


def test_signed_in_without_the_plan_and_no_pricing_url_gets_the_402_page() -> None:
    client = signed_in(login_view_app("free"))

    html = client.get("/pro", headers=HTML)
    json = client.get("/pro", headers=JSON)

    assert (html.status_code, html.mimetype) == (402, "text/html")
    assert "This page needs the pro plan" in html.get_data(as_text=True)
    assert (json.status_code, json.get_json()["details"]["current_plan"]) == (402, "free")


def test_signed_in_on_the_plan_with_a_login_view_sees_the_page() -> None:
    response = signed_in(login_view_app("pro")).get("/pro", headers=HTML)

    assert (response.status_code, response.get_data(as_text=True)) == (200, "pro page")


def test_a_blueprint_login_view_wins_over_the_apps() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test")
    manager = LoginManager(app)
    manager.user_loader(lambda user_id: None)
    manager.login_view = "login"
    admin = Blueprint("admin", __name__)
    manager.blueprint_login_views = {"admin": "admin.login"}
    billing = StripeBilling(app, user_store=InMemoryUserStore([]))

    @admin.get("/report")
    @billing.plan_required()
    def report() -> str:
        return "report"

    admin.add_url_rule("/in", "login", lambda: "admin sign in")
    app.register_blueprint(admin, url_prefix="/admin")
    app.add_url_rule("/sign-in", "login", lambda: "sign in")

    response = app.test_client().get("/admin/report", headers=HTML)

    assert response.headers["Location"] == "/admin/in?next=%2Fadmin%2Freport"
