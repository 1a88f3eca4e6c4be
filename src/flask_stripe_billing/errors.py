"""The exceptions the routes raise, each mapping to one JSON error answer."""

from __future__ import annotations

from typing import Any


class BillingError(Exception):
    """An error answered as ``{"error": code, "message": ..., "details": {...}}``."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON body for this error."""
        return {"error": self.code, "message": self.message, "details": self.details}


class ValidationError(BillingError):
    """The request is malformed: bad signature, bad body, bad parameter."""

    status_code = 400
    code = "validation_error"


class AuthenticationError(BillingError):
    """The route needs a signed-in user and there is none."""

    status_code = 401
    code = "authentication_error"


class NotFoundError(BillingError):
    """The thing asked for does not exist (e.g. no Stripe customer yet)."""

    status_code = 404
    code = "not_found"


class ConflictError(BillingError):
    """The request would contradict the current state (e.g. a second subscription)."""

    status_code = 409
    code = "conflict"


class MethodNotAllowedError(BillingError):
    """The route exists, for another HTTP method; the answer names the allowed ones."""

    status_code = 405
    code = "method_not_allowed"

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(
            f"{method} is not allowed on {path}; use {' or '.join(allowed)}",
            {"allowed": allowed},
        )
        self.allowed = allowed


class PayloadTooLargeError(BillingError):
    """The request body is larger than the configured limit."""

    status_code = 413
    code = "payload_too_large"


class NotConfiguredError(BillingError):
    """A setting the route needs is missing; answered 503 so nothing is processed."""

    status_code = 503
    code = "external_service_error"

    def __init__(self, missing: list[str] | None = None) -> None:
        details: dict[str, Any] = {"service": "Stripe"}
        if missing:
            details["missing"] = missing
        super().__init__("Stripe billing is not configured", details)


class StripeServiceError(BillingError):
    """Stripe's API failed; the message never carries a key or raw exception text."""

    status_code = 502
    code = "external_service_error"


class EventNotRecordedError(BillingError):
    """The event could not be stored (database down); Stripe will deliver it again."""

    status_code = 503
    code = "external_service_error"

    def __init__(self) -> None:
        super().__init__(
            "The webhook could not be recorded; Stripe will retry it",
            {"service": "database"},
        )
