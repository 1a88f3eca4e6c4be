"""HTTP in and out for every billing route: bounded request bodies, 405s, and each
error as its JSON answer. Views raise; one handler answers."""

from __future__ import annotations

from typing import Any

from flask import Request, Response, jsonify, request
from werkzeug.wsgi import get_input_stream

from ..core.limits import load_json
from ..errors import (
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
    PurchasesNotKeptError,
    SchemaOutdatedError,
    StripeServiceError,
    UsageNotKeptError,
    ValidationError,
)

#: Bytes read from the stream at a time.
CHUNK_SIZE = 64 * 1024


def read_limited(request: Request, limit: int, what: str) -> bytes:
    """The raw body, at most ``limit`` bytes (413 beyond), 400 if it cannot be read.

    Reads the WSGI input itself, one byte past the limit, so a chunked body (no
    Content-Length) is bounded too, without Flask 3.1's per-request
    ``max_content_length``; ``limit`` wins over the app's MAX_CONTENT_LENGTH, as
    that setting did. A body the server cannot decode (a malformed chunked
    encoding, a client that stops early) is the client's error, not ours.
    """
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(what, limit)
    cached = getattr(request, "_cached_data", None)  # the host read it already (get_data)
    if isinstance(cached, bytes):
        if len(cached) > limit:
            raise _too_large(what, limit)
        return cached
    chunks: list[bytes] = []
    size = 0
    try:
        stream = get_input_stream(request.environ, max_content_length=None)
        while size <= limit:
            chunk = stream.read(min(CHUNK_SIZE, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except Exception:  # the server's own errors: gunicorn's are not all OSError
        raise ValidationError(f"{what} could not be read: malformed or cut short") from None
    if size > limit:
        raise _too_large(what, limit)
    return b"".join(chunks)


def _too_large(what: str, limit: int) -> PayloadTooLargeError:
    """The 413 error for a body over ``limit`` bytes (built only when raised)."""
    return PayloadTooLargeError(f"{what} is larger than {limit} bytes", {"limit": limit})


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
    SchemaOutdatedError: (503, "external_service_error"),
    UsageNotKeptError: (503, "external_service_error"),
    PurchasesNotKeptError: (503, "external_service_error"),
}


#: Any other :class:`BillingError`.
DEFAULT_ANSWER = (500, "internal_error")


#: Methods a client may send that a route does not take: answered 405 JSON.
WRONG_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


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
