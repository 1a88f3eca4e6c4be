"""The no-JavaScript routes: a plain HTML form, answered with a 303 to Checkout or the portal.

``POST /billing/checkout`` takes the JSON route's fields form-encoded;
``GET`` or ``POST /billing/portal/redirect`` opens the portal. Errors are the
blueprint's JSON answers, as on the JSON routes.

CSRF: with Flask-WTF's ``CSRFProtect`` on, it checks the form's token before
these views run. Either way a request must come from the app's own pages, by
the headers browsers set and pages cannot forge: ``Sec-Fetch-Site`` must be
``same-origin`` (or ``none``: typed, bookmarked), else ``Origin`` must name
this host. A POST with neither header is refused unless CSRFProtect checks it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, redirect, request
from werkzeug.wrappers import Response

from .checkout_flow import open_portal, start_checkout
from .errors import CrossSiteRequestError, PayloadTooLargeError
from .state import get_state

#: ``Sec-Fetch-Site`` values of a request made by this site's pages, or by the user.
OWN_SITE = frozenset({"same-origin", "none"})
#: Largest form body read (a few short fields and a token).
MAX_FORM_BYTES = 64 * 1024
#: The fields of the JSON body the checkout form may carry.
CHECKOUT_FIELDS = ("interval", "price_id", "quantity")


def checkout_form() -> Response:
    """A form's "Upgrade": 303 to the new Checkout session's URL."""
    state = get_state()
    ensure_own_site()
    _, url = start_checkout(state, form_body())
    return redirect(url, 303)


def portal_redirect() -> Response:
    """A form's or a link's "Manage billing": 303 to a new portal session (``flow`` too)."""
    state = get_state()
    ensure_own_site()
    return redirect(open_portal(state, request.values.get("flow") or None), 303)


def form_body() -> dict[str, Any]:
    """The checkout fields of the form, as the JSON route reads them (``quantity`` a
    number when it is one, so that anything else is refused the same way)."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        limit = {"limit": MAX_FORM_BYTES}
        raise PayloadTooLargeError(f"Request body is larger than {MAX_FORM_BYTES} bytes", limit)
    body: dict[str, Any] = {}
    for name in CHECKOUT_FIELDS:
        value = request.form.get(name, "").strip()
        if value:
            body[name] = value
    quantity = body.get("quantity")
    if quantity is not None and quantity.isascii() and quantity.isdigit():
        body["quantity"] = int(quantity)
    return body


def ensure_own_site() -> None:
    """Refuse a request another site's page made (403 ``forbidden``)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        if site not in OWN_SITE:
            raise CrossSiteRequestError(
                "This request came from another site", {"sec_fetch_site": site}
            )
        return
    origin = request.headers.get("Origin")
    if origin is not None:
        if urlsplit(origin).netloc != request.host:
            raise CrossSiteRequestError("This request came from another site", {"origin": origin})
        return
    if request.method == "POST" and not csrf_protect_checks():
        raise CrossSiteRequestError(
            "Cannot tell which site this request came from: no Sec-Fetch-Site or Origin header",
            {},
        )


def csrf_protect_checks() -> bool:
    """Whether Flask-WTF's CSRFProtect checks this app's POSTs (it names itself "csrf")."""
    config = current_app.config
    return (
        "csrf" in current_app.extensions
        and bool(config.get("WTF_CSRF_ENABLED", True))
        and bool(config.get("WTF_CSRF_CHECK_DEFAULT", True))
    )
