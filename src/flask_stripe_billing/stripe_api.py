"""Calls to Stripe's API through one ``StripeClient`` per app: the I/O edge for checkout."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import stripe
from stripe import RequestOptions

from .config import DEFAULT_API_MAX_RETRIES, Settings
from .errors import StripeServiceError

logger = logging.getLogger("flask_stripe_billing")

#: The Stripe API version every request is pinned to (the one stripe-python 16.1 targets).
API_VERSION = "2026-10-28.endive"


#: Retries of failed network requests, with Stripe's idempotency keys making them safe
#: (the default of STRIPE_API_MAX_RETRIES).
MAX_NETWORK_RETRIES = DEFAULT_API_MAX_RETRIES


def make_client(api_key: str, settings: Settings | None = None) -> stripe.StripeClient:
    """The app's client: pinned API version, bounded time, no global ``stripe.api_key``.

    stripe-python waits 80 s per attempt by default; a silent API would hold a
    worker for minutes. ``settings`` gives the connect and read timeouts and retries.
    """
    limits = settings or Settings()
    http_client = stripe.RequestsClient(
        timeout=(limits.api_connect_timeout, limits.api_read_timeout)
    )
    return stripe.StripeClient(
        api_key,
        stripe_version=API_VERSION,
        max_network_retries=limits.api_max_retries,
        http_client=http_client,
    )


@dataclass(frozen=True)
class Answer:
    """An object Stripe's API answered with, and when Stripe answered (its ``Date``
    header, by Stripe's clock; None when absent)."""

    object: dict[str, Any]
    answered_at: int | None


class StripeGateway:
    """The few Stripe calls this package makes; failures become :class:`StripeServiceError`."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def create_customer(self, params: dict[str, Any], idempotency_key: str) -> str:
        """Create a customer and return its id."""
        with _translated_errors("create a customer"):
            customer = self.client.v1.customers.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        return _text_field(customer, "id", "create a customer")

    def create_checkout_session(
        self, params: dict[str, Any], idempotency_key: str
    ) -> tuple[str, str]:
        """Create a Checkout session and return its id and URL."""
        with _translated_errors("create a Checkout session"):
            session = self.client.v1.checkout.sessions.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        action = "create a Checkout session"
        return _text_field(session, "id", action), _text_field(session, "url", action)

    def create_portal_session(self, params: dict[str, Any]) -> str:
        """Create a Billing-portal session and return its URL."""
        with _translated_errors("create a billing portal session"):
            session = self.client.v1.billing_portal.sessions.create(
                params  # type: ignore[arg-type]
            )
        return _text_field(session, "url", "create a billing portal session")

    def retrieve_checkout_session(
        self, session_id: str, options: RequestOptions | None = None
    ) -> dict[str, Any]:
        """A Checkout session as plain data."""
        with _translated_errors("retrieve a Checkout session"):
            session = self.client.v1.checkout.sessions.retrieve(session_id, options=options)
        return session.to_dict()

    def retrieve_subscription(
        self, subscription_id: str, options: RequestOptions | None = None
    ) -> dict[str, Any]:
        """A subscription as plain data (Stripe's latest state)."""
        with _translated_errors("retrieve a subscription"):
            subscription = self.client.v1.subscriptions.retrieve(subscription_id, options=options)
        return subscription.to_dict()

    def retrieve_invoice(
        self, invoice_id: str, options: RequestOptions | None = None
    ) -> dict[str, Any]:
        """An invoice as plain data (Stripe's latest state)."""
        with _translated_errors("retrieve an invoice"):
            invoice = self.client.v1.invoices.retrieve(invoice_id, options=options)
        return invoice.to_dict()

    def update_subscription(
        self, subscription_id: str, params: dict[str, Any], idempotency_key: str
    ) -> Answer:
        """Change a subscription (cancel at period end, resume, price, quantity)."""
        with _translated_errors("update the subscription"):
            subscription = self.client.v1.subscriptions.update(
                subscription_id,
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        return _answer(subscription)

    def cancel_subscription(self, subscription_id: str, idempotency_key: str) -> Answer:
        """End a subscription now."""
        with _translated_errors("cancel the subscription"):
            subscription = self.client.v1.subscriptions.cancel(
                subscription_id, None, {"idempotency_key": idempotency_key}
            )
        return _answer(subscription)

    def create_schedule(self, subscription_id: str, idempotency_key: str) -> dict[str, Any]:
        """A subscription schedule made from the subscription (its current phase only)."""
        with _translated_errors("schedule the change"):
            schedule = self.client.v1.subscription_schedules.create(
                {"from_subscription": subscription_id}, {"idempotency_key": idempotency_key}
            )
        return schedule.to_dict()

    def retrieve_schedule(self, schedule_id: str) -> dict[str, Any]:
        """A subscription schedule as plain data."""
        with _translated_errors("read the subscription schedule"):
            schedule = self.client.v1.subscription_schedules.retrieve(schedule_id)
        return schedule.to_dict()

    def update_schedule(
        self, schedule_id: str, params: dict[str, Any], idempotency_key: str
    ) -> Answer:
        """Set a schedule's phases; the answer is the schedule (its subscription expanded)."""
        with _translated_errors("schedule the change"):
            schedule = self.client.v1.subscription_schedules.update(
                schedule_id,
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        return _answer(schedule)

    def release_schedule(self, schedule_id: str, idempotency_key: str) -> Answer:
        """Release the subscription from its schedule: the scheduled phases are dropped."""
        with _translated_errors("undo the scheduled change"):
            schedule = self.client.v1.subscription_schedules.release(
                schedule_id, None, {"idempotency_key": idempotency_key}
            )
        return _answer(schedule)

    def preview_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        """The invoice a change would make (``create_preview``: nothing changes at Stripe)."""
        with _translated_errors("preview the invoice"):
            invoice = self.client.v1.invoices.create_preview(
                params  # type: ignore[arg-type]
            )
        return invoice.to_dict()

    def list_subscriptions(self, customer_id: str) -> list[dict[str, Any]]:
        """Every subscription of a customer, whatever its status, as plain data."""
        with _translated_errors("list subscriptions"):
            page = self.client.v1.subscriptions.list(
                {"customer": customer_id, "status": "all", "limit": 100}
            )
            return [subscription.to_dict() for subscription in page.auto_paging_iter()]

    def list_subscriptions_page(
        self, starting_after: str | None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of the account's subscriptions, any status, in Stripe's order (newest
        first), after ``starting_after``; and whether more pages follow."""
        params: dict[str, Any] = {"status": "all", "limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        with _translated_errors("list subscriptions"):
            page = self.client.v1.subscriptions.list(params)  # type: ignore[arg-type]
            return [subscription.to_dict() for subscription in page.data], bool(page.has_more)

    def list_active_entitlements(
        self, customer_id: str, options: RequestOptions | None = None
    ) -> list[dict[str, Any]]:
        """Every active entitlement of a customer (all pages), as plain data."""
        with _translated_errors("list active entitlements"):
            page = self.client.v1.entitlements.active_entitlements.list(
                {"customer": customer_id, "limit": 100}, options=options
            )
            return [entitlement.to_dict() for entitlement in page.auto_paging_iter()]

    def retrieve_event(
        self, event_id: str, options: RequestOptions | None = None
    ) -> dict[str, Any]:
        """A snapshot event as Stripe's API keeps it (for 30 days), as plain data."""
        with _translated_errors("retrieve an event"):
            event = self.client.v1.events.retrieve(event_id, options=options)
        return event.to_dict()

    def list_invoices(self, customer_id: str, limit: int) -> list[dict[str, Any]]:
        """The customer's newest ``limit`` invoices (one page), as plain data."""
        with _translated_errors("list invoices"):
            page = self.client.v1.invoices.list({"customer": customer_id, "limit": limit})
            return [invoice.to_dict() for invoice in page.data]

    def retrieve_balance(self) -> dict[str, Any]:
        """The account's balance: the cheapest read that proves the API key works."""
        with _translated_errors("read the balance"):
            balance = self.client.v1.balance.retrieve()
        return balance.to_dict()

    def retrieve_price(self, price_id: str) -> dict[str, Any]:
        """A price as plain data."""
        with _translated_errors("retrieve a price"):
            price = self.client.v1.prices.retrieve(price_id)
        return price.to_dict()

    def list_event_destinations(self) -> list[dict[str, Any]]:
        """The event destinations of the key's mode with their URLs, as plain data (one try:
        a diagnostic)."""
        with _translated_errors("list event destinations"):
            page = self.client.v2.core.event_destinations.list(
                {"limit": 100, "include": ["webhook_endpoint.url"]}, {"max_network_retries": 0}
            )
            return [destination.to_dict() for destination in page.data]

    def list_webhook_endpoints(self) -> list[dict[str, Any]]:
        """The webhook endpoints of the key's mode, as plain data (one try: a diagnostic)."""
        with _translated_errors("list webhook endpoints"):
            page = self.client.v1.webhook_endpoints.list({"limit": 100}, {"max_network_retries": 0})
            return [endpoint.to_dict() for endpoint in page.data]

    def create_webhook_endpoint(
        self, url: str, enabled_events: list[str], api_version: str
    ) -> dict[str, Any]:
        """Create a webhook endpoint; the answer holds its signing ``secret`` (only now)."""
        with _translated_errors("create a webhook endpoint"):
            endpoint = self.client.v1.webhook_endpoints.create(
                {
                    "url": url,
                    "enabled_events": enabled_events,  # type: ignore[typeddict-item]
                    "api_version": api_version,  # type: ignore[typeddict-item]
                }
            )
        return endpoint.to_dict()

    def create_thin_event_destination(
        self, name: str, url: str, enabled_events: list[str]
    ) -> dict[str, Any]:
        """Create an event destination sending thin events to ``url``; the answer holds its
        signing secret (asked for with ``include``; only now)."""
        with _translated_errors("create an event destination"):
            destination = self.client.v2.core.event_destinations.create(
                {
                    "name": name,
                    "type": "webhook_endpoint",
                    "event_payload": "thin",
                    "enabled_events": enabled_events,
                    "webhook_endpoint": {"url": url},
                    "include": ["webhook_endpoint.signing_secret"],
                }
            )
        return destination.to_dict()


@contextmanager
def _translated_errors(action: str) -> Iterator[None]:
    """Turn a ``stripe.StripeError`` into a 502 naming Stripe's request id, never a key."""
    try:
        yield
    except stripe.StripeError as error:
        details: dict[str, Any] = {"service": "Stripe", "request_id": error.request_id}
        if error.http_status is not None:
            details["status"] = error.http_status
        logger.warning(
            "Stripe API request failed",
            extra={"action": action, "request_id": error.request_id},
        )
        raise StripeServiceError(f"Stripe could not {action}", details) from None


def _answer(obj: stripe.StripeObject) -> Answer:
    """The object as plain data, with the time of Stripe's ``Date`` header."""
    response = getattr(obj, "last_response", None)
    headers = getattr(response, "headers", None) or {}
    date = next((value for key, value in headers.items() if key.lower() == "date"), None)
    answered_at = None
    if date:
        try:
            answered_at = int(parsedate_to_datetime(date).timestamp())
        except (TypeError, ValueError):
            answered_at = None
    return Answer(obj.to_dict(), answered_at)


def _text_field(answer: Any, field: str, action: str) -> str:
    """A text field of Stripe's answer; a 502 when a 200 answer lacks it (or is no object)."""
    is_object = isinstance(answer, dict | stripe.StripeObject)
    value = answer[field] if is_object and field in answer else None
    if isinstance(value, str) and value:
        return value
    response = getattr(answer, "last_response", None)
    request_id = getattr(response, "request_id", None)
    logger.warning(
        "Stripe API answered without %s",
        field,
        extra={"action": action, "request_id": request_id},
    )
    raise StripeServiceError(
        f"Stripe could not {action}: its answer has no {field}",
        {"service": "Stripe", "request_id": request_id},
    )
