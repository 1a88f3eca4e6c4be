"""The blueprint: every billing route, its error handler, and the webhooks kept out of
Flask-WTF's ``CSRFProtect`` (Stripe sends no CSRF token)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import Blueprint, Flask
from werkzeug.wrappers import Response

try:  # optional: only apps that use Flask-WTF need the exemption
    import flask_wtf  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - Flask-WTF is not installed
    flask_wtf = None
from ..errors import BillingError
from .checkout import checkout_form, checkout_session, portal, portal_redirect
from .http import WRONG_METHODS, error_response, wrong_method
from .webhooks import thin_webhook, webhook


@dataclass(frozen=True)
class Route:
    """A billing route: its path (under the blueprint's prefix), its view, its methods."""

    path: str
    view: Callable[[], Response]
    methods: tuple[str, ...]


#: The blueprint's routes: the one table of their paths (the management routes are
#: added from :mod:`.management`, on ``STRIPE_BILLING_MANAGEMENT_ROUTES``).
ROUTES = (
    Route("/stripe/webhook", webhook, ("POST",)),
    Route("/stripe/thin-webhook", thin_webhook, ("POST",)),
    Route("/billing/checkout-session", checkout_session, ("POST",)),
    Route("/billing/portal", portal, ("GET",)),
    Route("/billing/checkout", checkout_form, ("POST",)),
    Route("/billing/portal/redirect", portal_redirect, ("GET", "POST")),
)


def path_of(view: Callable[[], Response]) -> str:
    """The path of ``view``'s route in :data:`ROUTES` (without the blueprint's prefix)."""
    return next(route.path for route in ROUTES if route.view is view)


#: The webhook's path; an endpoint's URL ends with it (whatever the prefix).
WEBHOOK_PATH = path_of(webhook)


#: The thin-event route's path; a thin event destination's URL ends with it.
THIN_WEBHOOK_PATH = path_of(thin_webhook)


def create_blueprint() -> Blueprint:
    """A new blueprint with the billing routes (one per extension object)."""
    blueprint = Blueprint("stripe_billing", __name__, template_folder="templates")
    add_routes(blueprint, ROUTES)
    blueprint.register_error_handler(BillingError, error_response)
    return blueprint


def add_routes(blueprint: Blueprint, routes: Iterable[Route]) -> None:
    """Add each route to the blueprint, and its 405 answer to the other methods.

    The 405 is in the JSON error shape rather than Flask's HTML page.
    """
    for route in routes:
        blueprint.add_url_rule(route.path, view_func=route.view, methods=list(route.methods))
        blueprint.add_url_rule(
            route.path,
            endpoint=f"{route.view.__name__}_wrong_method",
            view_func=wrong_method,
            methods=[other for other in WRONG_METHODS if other not in route.methods],
            defaults={"allowed": ",".join(route.methods)},
        )


#: The names Flask-WTF knows the views by: the webhooks (snapshot and thin), and the
#: 405 answer of every route (which must say 405, not that a CSRF token is missing).
EXEMPT_VIEWS = tuple(
    f"{view.__module__}.{view.__name__}" for view in (webhook, thin_webhook, wrong_method)
)


#: Flask-WTF names its extension so in ``app.extensions``.
CSRF_EXTENSION = "csrf"


def exempt_webhook_from_csrf(app: Flask) -> None:
    """Exempt the webhook now, or, if CSRFProtect may come later, on the first request.

    The late case costs one hook call on the app's first request only: the hook
    exempts the webhook, then takes itself off the app's hooks. It runs before
    CSRFProtect's own hook, which is registered after it.
    """
    if _exempt(app) or flask_wtf is None:
        return

    def exempt_once() -> None:
        _exempt(app)
        # A new list: Flask is iterating the old one for this request.
        app.before_request_funcs[None] = [
            hook for hook in app.before_request_funcs[None] if hook is not exempt_once
        ]

    hook: Callable[[], None] = exempt_once
    app.before_request(hook)


def _exempt(app: Flask) -> bool:
    """Exempt the webhook from the app's CSRFProtect; False when the app has none (yet)."""
    csrf = app.extensions.get(CSRF_EXTENSION)
    if csrf is None:
        return False
    for view in EXEMPT_VIEWS:
        csrf.exempt(view)
    return True
