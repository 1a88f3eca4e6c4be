"""Keep Flask-WTF's ``CSRFProtect`` off the webhook: Stripe sends no CSRF token."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from .views import thin_webhook, webhook, wrong_method

#: The names Flask-WTF knows the views by: the webhooks (snapshot and thin), and the
#: 405 answer of every route (which must say 405, not that a CSRF token is missing).
EXEMPT_VIEWS = tuple(
    f"{view.__module__}.{view.__name__}" for view in (webhook, thin_webhook, wrong_method)
)
#: Flask-WTF names its extension so in ``app.extensions``.
CSRF_EXTENSION = "csrf"

try:  # optional: only apps that use Flask-WTF need the exemption
    import flask_wtf  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - Flask-WTF is not installed
    flask_wtf = None


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
