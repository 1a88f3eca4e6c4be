"""The package's errors: what went wrong, in words and details, without HTTP.

Core modules raise them; the blueprint alone turns each kind into an HTTP
answer (one table in the web layer), and the CLI into a line of text.
"""

from __future__ import annotations

from typing import Any


class BillingError(Exception):
    """A failure the caller can be told about: a message and details safe to show."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class ValidationError(BillingError):
    """The request is malformed: bad signature, bad body, bad parameter."""


class AuthenticationError(BillingError):
    """The route needs a signed-in user and there is none."""


class PlanRequiredError(BillingError):
    """The signed-in user's plan is not one the page needs: paying would open it."""


class FeatureRequiredError(BillingError):
    """The signed-in user's plan does not include the feature the page needs."""


class CrossSiteRequestError(BillingError):
    """A form route was posted from another site's page (no CSRF token to check it by)."""


class NotFoundError(BillingError):
    """The thing asked for does not exist (e.g. no Stripe customer yet)."""


class ConflictError(BillingError):
    """The request would contradict the current state (e.g. a second subscription)."""


class MethodNotAllowedError(BillingError):
    """The route exists, for another HTTP method; the answer names the allowed ones."""

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(
            f"{method} is not allowed on {path}; use {' or '.join(allowed)}",
            {"allowed": allowed},
        )
        self.allowed = allowed


class PayloadTooLargeError(BillingError):
    """The request body is larger than the configured limit."""


class NotConfiguredError(BillingError):
    """A setting the operation needs is missing, so nothing is processed."""

    def __init__(self, missing: list[str] | None = None) -> None:
        details: dict[str, Any] = {"service": "Stripe"}
        if missing:
            details["missing"] = missing
        super().__init__("Stripe billing is not configured", details)


class UsageNotKeptError(NotConfiguredError):
    """The store keeps no usage table (no ``UsageLog``), so usage cannot be reported or sent."""

    def __init__(self, store: object) -> None:
        super().__init__()
        self.message = (
            f"{type(store).__name__} keeps no usage: report_usage and the usage sender need "
            "a store with the UsageLog methods (the shipped stores have them)"
        )
        self.args = (self.message,)
        self.details = {"service": "database", "missing": ["UsageLog"]}


class PurchasesNotKeptError(NotConfiguredError):
    """The store keeps no purchase table (no ``PurchaseLog``), so no purchase can be refunded."""

    def __init__(self, store: object) -> None:
        super().__init__()
        self.message = (
            f"{type(store).__name__} keeps no purchases: refund needs a store with the "
            "PurchaseLog methods (the shipped stores have them)"
        )
        self.args = (self.message,)
        self.details = {"service": "database", "missing": ["PurchaseLog"]}


class StripeServiceError(BillingError):
    """Stripe's API failed; the message never carries a key or raw exception text."""


class EventNotRecordedError(BillingError):
    """The event could not be stored (database down); Stripe will deliver it again."""

    def __init__(self) -> None:
        super().__init__(
            "The webhook could not be recorded; Stripe will retry it",
            {"service": "database"},
        )


class SchemaOutdatedError(EventNotRecordedError):
    """The database lacks a table or column this release needs (a migration has not run):
    the webhook records nothing and answers 503, so Stripe delivers the event again."""

    def __init__(self, missing: list[str], command: str) -> None:
        BillingError.__init__(
            self,
            f"The database lacks {', '.join(missing)}, which flask-stripe-billing needs: "
            f"run {command}; Stripe retries the webhook until then",
            {"service": "database", "missing": missing, "command": command},
        )


class EventParseError(ValueError):
    """The body is JSON but not a Stripe event we can read."""


class StoreUnavailableError(Exception):
    """The store cannot be reached (database down, connection lost); try again later."""


class StoreContractError(TypeError):
    """The store given to ``StripeBilling`` lacks part of the store contract.

    A set-up mistake, raised once by ``init_app`` (or registering the blueprint),
    never in a request: ``missing`` names each lacking method or protocol
    (``"EventLog.count_events"``, ``"SubscriptionLog"``) and the message says which
    release added each and the upgrade step that adds it.
    """

    def __init__(self, message: str, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing
