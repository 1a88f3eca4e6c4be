"""Gates for the host's own views: who may see a page, by plan or by feature.

A gate reads the current user through the extension's ``current_user_id`` and
answers those it turns away: JSON callers with the error shape of :mod:`.http`,
HTML callers with a redirect (the login page: ``STRIPE_BILLING_LOGIN_URL``, else
Flask-Login's ``login_view``; the pricing page: ``STRIPE_BILLING_PRICING_URL``) or,
with nowhere to go, a plain HTML page with the error's status.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import (
    Blueprint,
    current_app,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from ..config import Settings
from ..core.account import BillingAccount
from ..errors import (
    AuthenticationError,
    BillingError,
    FeatureRequiredError,
    PlanRequiredError,
    SchemaOutdatedError,
)
from ..state import BillingState, get_state
from .http import error_response

#: The plain page an HTML caller gets when a gate has nowhere to send it (the host may
#: override it with a template of the same name).
REFUSED_TEMPLATE = "stripe_billing/refused.html"

P = ParamSpec("P")


R = TypeVar("R")


class ViewDecorator(Protocol):
    """A decorator gating a view: the view's own answer, or one turning the caller away."""

    def __call__(self, view: Callable[P, R], /) -> Callable[P, R | Response]: ...


#: Methods no gate checks.
EXEMPT_METHODS = frozenset({"OPTIONS"})


#: What a gate asks of a signed-in user's account: None to let them in, else why not.
Check = Callable[[BillingAccount, Settings], BillingError | None]


def plan_check(plans: tuple[str, ...]) -> Check:
    """Let in accounts on one of ``plans``; none given: on any paid plan."""

    def check(account: BillingAccount, settings: Settings) -> BillingError | None:
        if account.has_plan(*plans):
            return None
        wanted = f"the {' or '.join(plans)} plan" if plans else "a paid plan"
        return PlanRequiredError(
            f"This page needs {wanted}",
            {"required_plans": list(plans), "current_plan": account.plan},
        )

    return check


def feature_check(feature: str) -> Check:
    """Let in accounts with ``feature``: an active Stripe entitlement, or their plan's
    features in ``STRIPE_BILLING_FEATURES``."""

    def check(account: BillingAccount, settings: Settings) -> BillingError | None:
        if account.has_feature(feature, settings):
            return None
        return FeatureRequiredError(
            f"Your plan does not include {feature}",
            {"required_feature": feature, "current_plan": account.plan},
        )

    return check


def guard(check: Check) -> ViewDecorator:
    """A view decorator that runs the view only for users who pass ``check``."""

    def decorator(view: Callable[P, R]) -> Callable[P, R | Response]:
        @wraps(view)
        def gated(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            refusal = gate(check)
            if refusal is not None:
                return refusal
            return view(*args, **kwargs)

        return gated

    return decorator


def guard_blueprint(blueprint: Blueprint, check: Check) -> None:
    """Run ``check`` before each request of ``blueprint``'s own views (no other request)."""

    def gate_blueprint() -> Response | None:
        return gate(check)

    blueprint.before_request(gate_blueprint)


def gate(check: Check) -> Response | None:
    """None when the current user passes ``check``; else the answer turning them away.

    ``OPTIONS`` passes, as with Flask-Login's ``login_required``: a CORS
    preflight carries no credentials.
    """
    if request.method in EXEMPT_METHODS:
        return None
    state = get_state()
    settings = state.settings
    try:
        state.schema.require()  # a migration not yet run: no account can be read
    except SchemaOutdatedError as outdated:
        return refusal(outdated, None)
    account = current_account_or_none(state)
    if account is None:
        return refusal(AuthenticationError("Sign in to see this page"), login_target(settings))
    failed = check(account, settings)
    if failed is None:
        return None
    return refusal(failed, settings.pricing_url)


def login_target(settings: Settings) -> str | None:
    """Where an anonymous browser goes: ``STRIPE_BILLING_LOGIN_URL``, else Flask-Login's
    ``login_view`` (both with ``next``), else the pricing page; None: nowhere."""
    if settings.login_url is not None:
        return with_next(resolve_url(settings.login_url))
    login_view = flask_login_view()
    if login_view is not None:
        return with_next(resolve_url(login_view))
    return settings.pricing_url


def flask_login_view() -> str | None:
    """The app's Flask-Login ``login_view`` (this blueprint's own first), if it has one."""
    manager = getattr(current_app, "login_manager", None)
    if manager is None:
        return None
    view = getattr(manager, "blueprint_login_views", {}).get(request.blueprint)
    view = view or getattr(manager, "login_view", None)
    return str(view) if view else None


def current_account_or_none(state: BillingState) -> BillingAccount | None:
    """The signed-in user's account; None when anonymous or the store knows no such user."""
    user_id = state.current_user_id()
    if user_id is None:
        return None
    account = state.user_store.get(str(user_id))
    return None if account is None else state.with_features(account)


def refusal(error: BillingError, url: str | None) -> Response:
    """The JSON error for JSON callers; for HTML callers a redirect to ``url``, or with no
    url a plain HTML page with the error's status.

    The answer depends on ``Accept``, so it says so to caches (``Vary: Accept``).
    """
    answer, status = error_response(error)
    response: Response = answer
    if wants_json():
        response.status_code = status
    elif url is not None:
        response = redirect(resolve_url(url))
    else:
        page = render_template(REFUSED_TEMPLATE, message=error.message, status=status)
        response = current_app.response_class(page, status, mimetype="text/html")
    response.vary.add("Accept")
    return response


def wants_json() -> bool:
    """Whether the caller wants JSON: a JSON body, or an Accept preferring JSON to HTML.

    Browsers ask for ``text/html``; a caller sending no Accept or ``*/*`` is
    taken as a browser.
    """
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(("text/html", "application/json"))
    return best == "application/json"


def with_next(url: str) -> str:
    """``url`` with ``next`` naming the page asked for, so the login can send the user back.

    A path on this site (as Flask-Login's ``next``): the login view decides
    whether to follow it.
    """
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), ("next", request.full_path.rstrip("?"))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def resolve_url(url: str) -> str:
    """``url`` itself when it is a path or URL; else the URL of the endpoint it names."""
    if "/" in url:
        return url
    return url_for(url)


def billing_template_context() -> dict[str, BillingAccount | None]:
    """``billing_account``: the signed-in user's account, None when anonymous.

    A context processor: Flask calls it when a template is rendered, never
    on a request that renders none. None too while the database lacks a billing table
    or column, so the host's pages keep rendering.
    """
    if not has_request_context():
        return {"billing_account": None}
    state = get_state()
    if state.schema.gaps():  # a migration not yet run: the page renders without it
        return {"billing_account": None}
    return {"billing_account": current_account_or_none(state)}
