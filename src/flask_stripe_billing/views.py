"""The blueprint: HTTP in and out, nothing else. Views raise; one handler answers."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from . import checkout, signals
from .account import BillingAccount
from .errors import (
    AuthenticationError,
    BillingError,
    MethodNotAllowedError,
    NotConfiguredError,
    NotFoundError,
    ValidationError,
)
from .events import StripeEvent
from .extension import BillingState, Dispatch, get_state
from .payload_limits import load_json
from .redact import describe_traceback
from .request_body import read_limited
from .signature_window import check_not_future
from .stores.base import EventStatus
from .stripe_api import StripeGateway
from .webhook import announce, read_event, record_for_dispatch, verify_signature

logger = logging.getLogger("flask_stripe_billing")

#: The views whose other methods are answered 405 JSON.
ROUTE_VIEWS = frozenset({"webhook", "checkout_session", "portal"})
#: Largest JSON body the checkout route reads (it needs a few dozen bytes).
MAX_JSON_BODY_BYTES = 64 * 1024


def create_blueprint() -> Blueprint:
    """A new blueprint with the billing routes (one per extension object)."""
    blueprint = Blueprint("stripe_billing", __name__)
    blueprint.add_url_rule("/stripe/webhook", view_func=webhook, methods=["POST"])
    blueprint.add_url_rule(
        "/billing/checkout-session", view_func=checkout_session, methods=["POST"]
    )
    blueprint.add_url_rule("/billing/portal", view_func=portal, methods=["GET"])
    # Flask-WTF's CSRFProtect, set up before us (now) or after us (first request).
    blueprint.record_once(lambda setup: exempt_webhook_from_csrf(setup.app))
    blueprint.before_app_request(lambda: exempt_webhook_from_csrf(current_app))
    blueprint.before_app_request(lambda: wrong_method_response(blueprint.name))
    blueprint.register_error_handler(BillingError, error_response)
    return blueprint


def webhook() -> Response:
    """Receive a Stripe event: verify → parse → record and apply → signal."""
    state = get_state()
    settings = state.settings
    if not settings.webhook_secrets:
        raise NotConfiguredError(["STRIPE_WEBHOOK_SECRET"])
    body = read_body(settings.max_webhook_bytes)
    header = request.headers.get("Stripe-Signature")
    payload = verify_signature(body, header, settings.webhook_secrets, settings.webhook_tolerance)
    check_not_future(header or "", settings.webhook_tolerance)
    event = read_event(payload)
    if state.dispatch is None:
        outcome = state.handle(event, payload)
    else:
        outcome = record_for_dispatch(event, payload, state.event_log)
        if outcome.status == EventStatus.RECEIVED:
            hand_over(state.dispatch, event)
    logger.info(
        "Stripe webhook received",
        extra={
            "event_id": event.id,
            "event_type": event.type,
            "customer_id": event.customer_id,
            "status": outcome.status,
        },
    )
    announce(current_app._get_current_object(), outcome)  # type: ignore[attr-defined]
    return jsonify(received=True)


def checkout_session() -> Response:
    """Create a Checkout session for the current user and a configured price."""
    state = get_state()
    account = current_account(state)
    gateway = state.require_stripe()
    price_id = checkout.choose_price(read_json_body(), state.settings)
    checkout.redirect_urls(state.settings)
    checkout.ensure_can_subscribe(account, url_for(".portal"))
    customer_id = ensure_customer(state, gateway, account)
    session_id, url = gateway.create_checkout_session(
        checkout.session_params(account, customer_id, price_id, state.settings),
        checkout.session_idempotency_key(account, price_id, time.time()),
    )
    signals.send_safely(
        signals.checkout_session_created,
        current_app._get_current_object(),  # type: ignore[attr-defined]
        user_id=account.user_id,
        session_id=session_id,
        price_id=price_id,
    )
    return jsonify(id=session_id, url=url)


def portal() -> Response:
    """A Billing-portal session for the current user's Stripe customer."""
    state = get_state()
    account = current_account(state)
    gateway = state.require_stripe()
    return_url = checkout.portal_return_url(state.settings)
    if account.stripe_customer_id is None:
        raise NotFoundError("No Stripe customer for this user yet; subscribe first")
    return jsonify(url=gateway.create_portal_session(account.stripe_customer_id, return_url))


def wrong_method_response(blueprint_name: str) -> tuple[Response, int] | None:
    """Another method on a billing route: 405 JSON, not Flask's HTML page.

    Runs before every request of the app (routing failed, so no blueprint
    handler applies); does nothing unless the path is one of ours.
    """
    error = request.routing_exception
    if not isinstance(error, MethodNotAllowed) or not error.valid_methods:
        return None
    valid = list(error.valid_methods)
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        rule, _ = adapter.match(method=valid[0], return_rule=True)
    except HTTPException:
        return None
    *blueprints, view = rule.endpoint.split(".")
    if blueprint_name not in blueprints or view not in ROUTE_VIEWS:
        return None
    allowed = sorted(set(valid) - {"HEAD", "OPTIONS"})
    return error_response(MethodNotAllowedError(request.method, request.path, allowed))


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


def read_json_body() -> Any:
    """The JSON request body; None when empty, 400 when it is not JSON.

    A JSON content type is required even for an empty body: a browser then asks
    before sending it cross-site, so another site's plain form cannot start a
    Checkout for the signed-in user.
    """
    if not request.is_json:
        raise ValidationError("Send a JSON body with Content-Type: application/json")
    body = read_limited(request, MAX_JSON_BODY_BYTES, "Request body")
    if not body:
        return None
    try:
        return load_json(body)
    except ValueError:
        raise ValidationError("Request body must be JSON") from None


def exempt_webhook_from_csrf(app: Any) -> None:
    """Flask-WTF's CSRFProtect must not guard the webhook (Stripe sends no token)."""
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(f"{webhook.__module__}.{webhook.__name__}")


def hand_over(dispatch: Dispatch, event: StripeEvent) -> None:
    """Give the event id to the host's queue; if that fails it stays ``received``.

    The event is recorded already, so the answer stays 200; ``flask billing
    replay`` processes it, and Stripe's next delivery of it hands it over again.
    """
    try:
        dispatch(event.id)
    except Exception as error:
        logger.error(
            "Stripe webhook could not be dispatched; it stays received for replay\n%s",
            describe_traceback(error),
            extra={"event_id": event.id, "event_type": event.type},
        )


def read_body(limit: int) -> bytes:
    """The raw request body (signatures are over the exact bytes), at most ``limit``."""
    return read_limited(request, limit, "Webhook body")


def error_response(error: BillingError) -> tuple[Response, int]:
    """The JSON answer for any :class:`BillingError`."""
    response = jsonify(error.to_dict())
    if isinstance(error, MethodNotAllowedError):
        response.headers["Allow"] = ", ".join(error.allowed)
    return response, error.status_code
