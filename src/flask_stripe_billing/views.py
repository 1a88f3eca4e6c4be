"""The blueprint: HTTP in and out, nothing else. Views raise; one handler answers."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from . import pipeline, thin_pipeline
from .checkout_flow import open_portal, start_checkout
from .errors import (
    AuthenticationError,
    BillingError,
    ConflictError,
    CrossSiteRequestError,
    EventNotRecordedError,
    FeatureRequiredError,
    MethodNotAllowedError,
    NotConfiguredError,
    NotFoundError,
    PayloadTooLargeError,
    PlanRequiredError,
    StripeServiceError,
    ValidationError,
)
from .form_views import checkout_form, portal_redirect
from .payload_limits import load_json
from .request_body import read_limited
from .state import app_object, get_state

logger = logging.getLogger("flask_stripe_billing")

#: Largest JSON body the checkout route reads (it needs a few dozen bytes).
MAX_JSON_BODY_BYTES = 64 * 1024
#: Each kind of error's HTTP answer: the status and the ``error`` code of the JSON body.
HTTP_ANSWERS: dict[type[BillingError], tuple[int, str]] = {
    ValidationError: (400, "validation_error"),
    AuthenticationError: (401, "authentication_error"),
    PlanRequiredError: (402, "payment_required"),
    FeatureRequiredError: (403, "forbidden"),
    CrossSiteRequestError: (403, "forbidden"),
    NotFoundError: (404, "not_found"),
    MethodNotAllowedError: (405, "method_not_allowed"),
    ConflictError: (409, "conflict"),
    PayloadTooLargeError: (413, "payload_too_large"),
    StripeServiceError: (502, "external_service_error"),
    NotConfiguredError: (503, "external_service_error"),
    EventNotRecordedError: (503, "external_service_error"),
}
#: Any other :class:`BillingError`.
DEFAULT_ANSWER = (500, "internal_error")
#: Methods a client may send that a route does not take: answered 405 JSON.
WRONG_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def create_blueprint() -> Blueprint:
    """A new blueprint with the billing routes (one per extension object).

    Each route also takes the other methods, to answer them 405 in the JSON
    error shape rather than with Flask's HTML page.
    """
    blueprint = Blueprint("stripe_billing", __name__)
    for path, view, methods in (
        ("/stripe/webhook", webhook, ("POST",)),
        ("/stripe/thin-webhook", thin_webhook, ("POST",)),
        ("/billing/checkout-session", checkout_session, ("POST",)),
        ("/billing/portal", portal, ("GET",)),
        ("/billing/checkout", checkout_form, ("POST",)),
        ("/billing/portal/redirect", portal_redirect, ("GET", "POST")),
    ):
        blueprint.add_url_rule(path, view_func=view, methods=list(methods))
        blueprint.add_url_rule(
            path,
            endpoint=f"{view.__name__}_wrong_method",
            view_func=wrong_method,
            methods=[other for other in WRONG_METHODS if other not in methods],
            defaults={"allowed": ",".join(methods)},
        )
    blueprint.register_error_handler(BillingError, error_response)
    return blueprint


def webhook() -> Response:
    """Receive a Stripe event: verify → parse → record and apply → signal."""
    state = get_state()
    settings = state.settings
    if not settings.webhook_secrets:
        raise NotConfiguredError(["STRIPE_WEBHOOK_SECRET"])
    body = read_body(settings.max_webhook_bytes)
    outcome = pipeline.receive(state, app_object(), body, request.headers.get("Stripe-Signature"))
    if logger.isEnabledFor(logging.INFO):  # the extra fields are not built for nothing
        event = outcome.event
        logger.info(
            "Stripe webhook received",
            extra={
                "event_id": event.id,
                "event_type": event.type,
                "customer_id": event.customer_id,
                "status": outcome.status,
            },
        )
    return jsonify(received=True)


def thin_webhook() -> Response:
    """Receive a thin event notification: verify → record → fetch its object → apply → signal.

    200 once the notification is recorded, also when its object could not be
    fetched (it stays ``received`` for replay); 5xx only when nothing was recorded.
    """
    state = get_state()
    settings = state.settings
    missing = [
        name
        for name, value in (
            ("STRIPE_THIN_WEBHOOK_SECRET", settings.thin_webhook_secrets),
            ("STRIPE_API_KEY", state.stripe),
        )
        if not value
    ]
    if missing:
        raise NotConfiguredError(missing)
    body = read_body(settings.max_webhook_bytes)
    signature = request.headers.get("Stripe-Signature")
    outcome = thin_pipeline.receive_thin(state, app_object(), body, signature)
    logger.info(
        "Stripe thin event received",
        extra={
            "event_id": outcome.event.id,
            "event_type": outcome.event.type,
            "customer_id": outcome.event.customer_id,
            "status": outcome.status,
        },
    )
    return jsonify(received=True)


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


def wrong_method(allowed: str) -> Response:
    """Another method on a billing route: 405 JSON naming those it takes (comma-separated)."""
    raise MethodNotAllowedError(request.method, request.path, allowed.split(","))


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


def read_body(limit: int) -> bytes:
    """The raw request body (signatures are over the exact bytes), at most ``limit``."""
    return read_limited(request, limit, "Webhook body")


def error_response(error: BillingError) -> tuple[Response, int]:
    """The JSON answer ``{"error", "message", "details"}`` for any :class:`BillingError`."""
    status, code = next(
        (HTTP_ANSWERS[kind] for kind in type(error).__mro__ if kind in HTTP_ANSWERS),
        DEFAULT_ANSWER,
    )
    response = jsonify(error=code, message=error.message, details=error.details)
    if isinstance(error, MethodNotAllowedError):
        response.headers["Allow"] = ", ".join(error.allowed)
    return response, status
