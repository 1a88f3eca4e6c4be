"""Checkout and the Billing portal for the signed-in account: the JSON routes and the
no-JavaScript form routes (a plain HTML form, answered with a 303).

CSRF: with Flask-WTF's ``CSRFProtect`` on, it checks the form's token before
the form views run. Either way a form request must come from the app's own pages,
by the headers browsers set and pages cannot forge: ``Sec-Fetch-Site`` must be
``same-origin`` (or ``none``: typed, bookmarked), else ``Origin`` must name
this host. A POST with neither header is refused unless CSRFProtect checks it."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response

from .. import signals
from ..actions import management
from ..core import checkout
from ..core.account import BillingAccount
from ..errors import (
    AuthenticationError,
    ConflictError,
    CrossSiteRequestError,
    PayloadTooLargeError,
    StripeServiceError,
)
from ..state import BillingState, app_object, get_state
from ..stores.base import SUBSCRIPTIONS_TABLE
from ..stripe_api import StripeGateway
from .http import read_json_body


def checkout_session() -> Response:
    """Create a Checkout session for the current user and a configured price."""
    session_id, url = start_checkout(get_state(), read_json_body())
    return jsonify(id=session_id, url=url)


def portal() -> Response:
    """A Billing-portal session for the current user's Stripe customer.

    ``?flow=payment_method_update`` (or ``subscription_cancel``,
    ``subscription_update``) opens the portal on that flow.
    """
    return jsonify(url=open_portal(get_state(), request.args.get("flow") or None))


def current_account(state: BillingState) -> BillingAccount:
    """The signed-in user's account; 401 without a user."""
    user_id = state.current_user_id()
    if user_id is None:
        raise AuthenticationError("Sign in to manage billing")
    account = state.user_store.get(str(user_id))
    if account is None:
        raise AuthenticationError("Sign in to manage billing")
    return account


def ensure_customer(state: BillingState, gateway: StripeGateway, account: BillingAccount) -> str:
    """The user's Stripe customer id, creating and storing the customer on first use."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer_id = gateway.create_customer(
        checkout.customer_params(account), checkout.customer_idempotency_key(account)
    )
    state.user_store.set_customer_id(account.user_id, customer_id)
    return customer_id


def start_checkout(state: BillingState, body: Any) -> tuple[str, str]:
    """A Checkout session for the current account and what ``body`` asks for: its id and URL.

    ``body``: ``interval`` or ``price_id``, and ``quantity`` (seats) for a subscription;
    ``product`` and ``quantity`` for a one-time purchase (:func:`start_purchase`). The
    trial of the price is given only to an account that never had a subscription.
    """
    settings = state.settings
    account = current_account(state)
    gateway = state.require_stripe()
    product = checkout.choose_product(body, settings)
    if product is not None:
        return start_purchase(state, gateway, account, *product, body)
    price_id = checkout.choose_price(body, settings)
    quantity = checkout.choose_quantity(body, settings)
    checkout.redirect_urls(settings)
    checkout.ensure_can_subscribe(account, url_for(".portal"))
    trial = checkout.trial_options(price_id, settings, trial_allowed(state, account, price_id))
    customer_id = ensure_customer(state, gateway, account)
    session_id, url = gateway.create_checkout_session(
        checkout.session_params(
            account, customer_id, price_id, settings, quantity=quantity, trial=trial
        ),
        checkout.session_idempotency_key(account, price_id, time.time(), quantity),
    )
    if account.stripe_customer_id:  # a customer made just now has no other session
        expire_other_sessions(gateway, customer_id, session_id)
    signals.send_safely(
        signals.checkout_session_created,
        app_object(),
        user_id=account.user_id,
        session_id=session_id,
        price_id=price_id,
    )
    return session_id, url


def start_purchase(
    state: BillingState,
    gateway: StripeGateway,
    account: BillingAccount,
    product: str,
    price_id: str,
    body: Any,
) -> tuple[str, str]:
    """A Checkout session (mode ``payment``) selling ``quantity`` of ``product``.

    The same customer, redirect URLs and idempotency as a subscription's; no
    one-subscription 409 (a subscriber may buy credits). An earlier open session of
    the same product is expired once this one is made, so two tabs cannot pay twice.
    """
    settings = state.settings
    quantity = checkout.choose_product_quantity(body)
    checkout.redirect_urls(settings)
    customer_id = ensure_customer(state, gateway, account)
    session_id, url = gateway.create_checkout_session(
        checkout.purchase_params(account, customer_id, product, price_id, quantity, settings),
        checkout.session_idempotency_key(account, price_id, time.time(), quantity),
    )
    if account.stripe_customer_id:  # a customer made just now has no other session
        expire_other_sessions(gateway, customer_id, session_id, product)
    signals.send_safely(
        signals.checkout_session_created,
        app_object(),
        user_id=account.user_id,
        session_id=session_id,
        price_id=price_id,
        product=product,
        quantity=quantity,
    )
    return session_id, url


def expire_other_sessions(
    gateway: StripeGateway, customer_id: str, session_id: str, product: str | None = None
) -> None:
    """Expire the customer's other open Checkout sessions for the same subscription or
    ``product`` (:func:`~..core.checkout.sessions_to_expire`), so that only the new one can
    be paid. One paid meanwhile makes the new one expire instead: 409 ``conflict``.

    Expired after the new session is made, not before: a double click is given the same
    session back by its idempotency key, and that one must stay payable.
    """
    for other in checkout.sessions_to_expire(
        gateway.list_open_checkout_sessions(customer_id), session_id, product
    ):
        try:
            gateway.expire_checkout_session(other, checkout.expire_key(other))
        except StripeServiceError:
            status = gateway.retrieve_checkout_session(other).object.get("status")
            if status == "expired":
                continue
            gateway.expire_checkout_session(session_id, checkout.expire_key(session_id))
            if status != "complete":
                raise
            if product is not None:
                raise ConflictError(
                    "An earlier Checkout of yours for this was paid just now; check your "
                    "purchases before buying again",
                    {"session": other, "product": product},
                ) from None
            raise ConflictError(
                "An earlier Checkout of yours was paid just now; its subscription will "
                "show shortly",
                {"session": other},
            ) from None


def trial_allowed(state: BillingState, account: BillingAccount, price_id: str) -> bool:
    """Whether this account may get the price's trial (its records are read only then; none
    before the migration adding them, which cannot tell whether it had one)."""
    if state.settings.trial_days_for(price_id) is None:
        return False
    if state.schema.lacking(SUBSCRIPTIONS_TABLE) is not None:
        return False
    return checkout.trial_allowed(account, state.subscription_log.subscriptions_of(account.user_id))


def open_portal(state: BillingState, flow: str | None) -> str:
    """A Billing-portal session's URL for the current account, on ``flow`` if given."""
    return management.portal_url(state, current_account(state), flow)


#: ``Sec-Fetch-Site`` values of a request made by this site's pages, or by the user.
OWN_SITE = frozenset({"same-origin", "none"})


#: Largest form body read (a few short fields and a token).
MAX_FORM_BYTES = 64 * 1024


#: The fields of the JSON body the checkout form may carry.
CHECKOUT_FIELDS = ("interval", "price_id", "product", "quantity")


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
    """The checkout fields of the form, as the JSON route reads them."""
    return read_form(CHECKOUT_FIELDS)


def read_form(names: tuple[str, ...]) -> dict[str, Any]:
    """The fields ``names`` of a form (at most :data:`MAX_FORM_BYTES`), those not blank;
    ``quantity`` a number when it is one, so that anything else is refused the same way
    as in a JSON body."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        limit = {"limit": MAX_FORM_BYTES}
        raise PayloadTooLargeError(f"Request body is larger than {MAX_FORM_BYTES} bytes", limit)
    body: dict[str, Any] = {}
    for name in names:
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
