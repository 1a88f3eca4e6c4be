"""Calls to Stripe's API through one ``StripeClient`` per app: the I/O edge for checkout.

Every call of an app goes through one :class:`Pacer` (thin fetches, re-fetch,
summaries, sync, management, Checkout alike): requests spaced to
``STRIPE_BILLING_API_RATE`` a second, a ``429`` retried after ``Retry-After`` (or a
back-off) while the call's deadline allows, and every listing bounded in pages and time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import stripe
from stripe import RequestOptions

from .config import DEFAULT_API_MAX_RETRIES, Settings
from .errors import StripeServiceError
from .redact import redact

logger = logging.getLogger("flask_stripe_billing")

#: The Stripe API version every request is pinned to (the one stripe-python 16.1 targets).
API_VERSION = "2026-10-28.endive"


#: Retries of failed network requests, with Stripe's idempotency keys making them safe
#: (the default of STRIPE_API_MAX_RETRIES).
MAX_NETWORK_RETRIES = DEFAULT_API_MAX_RETRIES


#: What one HTTP attempt answers (stripe-python's shape): body, status, headers.
Response = tuple[Any, int, Mapping[str, str]]


class Pacer:
    """The pace of one app's requests to Stripe's API, and the deadlines they keep.

    Requests are spaced evenly, ``rate`` a second, whichever path sends them, so no
    second holds more than Stripe allows; a 429 holds every request back for its wait.
    ``clock`` (seconds, monotonic) and ``sleep`` are attributes so that a test can
    measure the pace without waiting.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._next_turn = -math.inf
        self._deadlines = threading.local()

    def take_turn(self, deadline: float) -> bool:
        """Wait for this request's turn and say True; False (at once, the turn left to
        others) when it comes after ``deadline``."""
        with self._lock:
            now = self.clock()
            turn = max(now, self._next_turn)
            if turn > deadline:
                return False
            self._next_turn = turn + 1 / self.rate
        if turn > now:
            self.sleep(turn - now)
        return True

    def hold(self, seconds: float) -> None:
        """Give no turn for ``seconds`` from now: Stripe answered 429, every caller waits."""
        with self._lock:
            self._next_turn = max(self._next_turn, self.clock() + seconds)

    def deadline_in(self, seconds: float) -> float:
        """The clock time ``seconds`` from now, or the enclosing :meth:`within`'s if sooner."""
        return min(self.clock() + seconds, getattr(self._deadlines, "at", math.inf))

    @contextmanager
    def within(self, seconds: float) -> Iterator[float]:
        """Every call this thread makes in the block ends by ``seconds`` from now (a listing's
        deadline); yields that clock time."""
        outer = getattr(self._deadlines, "at", math.inf)
        self._deadlines.at = self.deadline_in(seconds)
        try:
            yield self._deadlines.at
        finally:
            self._deadlines.at = outer


#: The ``code`` of the error a call fails with when its deadline comes before its turn in
#: the pace: nothing was sent.
OUT_OF_TIME = "flask_stripe_billing.out_of_time"


class PacedRequestsClient(stripe.RequestsClient):
    """stripe-python's ``requests`` client with the one retry loop of every call.

    Each attempt waits for its turn in the app's :class:`Pacer`. A 429 is retried
    after ``Retry-After`` (at least the back-off) while the call's deadline allows,
    unless Stripe says ``Stripe-Should-Retry: false``: it was refused, not run.
    Anything else is retried as stripe-python would (network errors, 409, 5xx,
    ``Stripe-Should-Retry: true``), at most ``max_network_retries`` times. This loop
    replaces stripe-python's, which neither waits out 429s nor keeps a deadline.
    """

    def __init__(
        self, pacer: Pacer, deadline: float, timeout: tuple[float, float], **kwargs: Any
    ) -> None:
        super().__init__(timeout=timeout, **kwargs)
        self.pacer = pacer
        self.deadline = deadline

    def request_with_retries(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        post_data: Any = None,
        max_network_retries: int | None = None,
        *,
        _usage: list[str] | None = None,
    ) -> Response:
        """One call: paced attempts, retried within its deadline."""
        return self._paced(
            lambda: self.request(method, url, headers, post_data), max_network_retries
        )

    def request_stream_with_retries(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        post_data: Any = None,
        max_network_retries: int | None = None,
        *,
        _usage: list[str] | None = None,
    ) -> Response:
        """One streamed call, paced and retried like the others."""
        return self._paced(
            lambda: self.request_stream(method, url, headers, post_data), max_network_retries
        )

    def _paced(self, attempt: Callable[[], Response], max_network_retries: int | None) -> Response:
        """The retry loop: each attempt in its turn, until an answer to keep or the deadline."""
        deadline = self.pacer.deadline_in(self.deadline)
        retries = refusals = 0
        while True:
            if not self.pacer.take_turn(deadline):
                raise stripe.StripeError(
                    f"its turn at {self.pacer.rate:g} requests a second "
                    "(STRIPE_BILLING_API_RATE) comes after its deadline",
                    code=OUT_OF_TIME,
                )
            response: Response | None = None
            try:
                response = attempt()
                failure = None
            except stripe.APIConnectionError as error:
                failure = error
            if response is not None and _rate_limited(response):
                refusals += 1
                wait = max(_retry_after(response[2]), self._sleep_time_seconds(refusals))
                if self.pacer.clock() + wait > deadline:
                    logger.warning(
                        "Stripe API rate limit outlasts the call's deadline",
                        extra={"retry_after": wait, "attempts": retries + refusals},
                    )
                    return response
                self.pacer.hold(wait)
                continue
            if self._should_retry(response, failure, retries, max_network_retries):
                retries += 1
                wait = self._sleep_time_seconds(retries)
                if self.pacer.clock() + wait <= deadline:
                    self.pacer.sleep(wait)
                    continue
            if failure is not None:
                raise failure
            assert response is not None
            return response


def _rate_limited(response: Response) -> bool:
    """Whether Stripe refused the request for its rate (and did not say not to retry)."""
    return response[1] == 429 and (_header(response[2], "stripe-should-retry") != "false")


def _retry_after(headers: Mapping[str, str]) -> float:
    """The seconds a ``Retry-After`` header asks for (0 when absent or not a number)."""
    try:
        seconds = float(_header(headers, "retry-after") or 0)
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A response header by its name in any case."""
    return next((value for key, value in headers.items() if key.lower() == name), None)


def make_client(
    api_key: str, settings: Settings | None = None, pacer: Pacer | None = None
) -> stripe.StripeClient:
    """The app's client: pinned API version, bounded time, paced, no global ``stripe.api_key``.

    stripe-python waits 80 s per attempt by default; a silent API would hold a
    worker for minutes. ``settings`` gives the connect and read timeouts, the
    retries, the pace and the call's deadline.
    """
    limits = settings or Settings()
    http_client = PacedRequestsClient(
        pacer or Pacer(limits.api_rate),
        limits.api_deadline,
        timeout=(limits.api_connect_timeout, limits.api_read_timeout),
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


@dataclass(frozen=True)
class MeterEventAnswer:
    """How Stripe answered a meter event: the event (accepted), or the HTTP status (None:
    no answer, e.g. a timeout) and Stripe's reason, safe to store and show."""

    event: dict[str, Any] | None
    status: int | None
    reason: str | None
    request_id: str | None


@dataclass(frozen=True)
class Page:
    """Objects Stripe's API listed, whether more follow, and when Stripe answered the first
    page (its ``Date`` header; None when absent)."""

    objects: list[dict[str, Any]]
    has_more: bool
    answered_at: int | None


class StripeGateway:
    """The few Stripe calls this package makes; failures become :class:`StripeServiceError`.

    One per app: its client and its :class:`Pacer` serve every path that calls Stripe.
    """

    def __init__(
        self, api_key: str, settings: Settings | None = None, *, pacer: Pacer | None = None
    ) -> None:
        self.settings = settings or Settings()
        self.pacer = pacer or Pacer(self.settings.api_rate)
        self.client = make_client(api_key, self.settings, self.pacer)
        #: Meter ``event_name`` → meter id, as listed (``billing.usage``): one app's meters.
        self.meter_ids: dict[str, str] = {}

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
    ) -> Answer:
        """A Checkout session as plain data."""
        with _translated_errors("retrieve a Checkout session"):
            session = self.client.v1.checkout.sessions.retrieve(session_id, options=options)
        return _answer(session)

    def retrieve_subscription(
        self, subscription_id: str, options: RequestOptions | None = None
    ) -> Answer:
        """A subscription as plain data (Stripe's latest state)."""
        with _translated_errors("retrieve a subscription"):
            subscription = self.client.v1.subscriptions.retrieve(subscription_id, options=options)
        return _answer(subscription)

    def retrieve_invoice(self, invoice_id: str, options: RequestOptions | None = None) -> Answer:
        """An invoice as plain data (Stripe's latest state)."""
        with _translated_errors("retrieve an invoice"):
            invoice = self.client.v1.invoices.retrieve(invoice_id, options=options)
        return _answer(invoice)

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

    def cancel_subscription(
        self, subscription_id: str, idempotency_key: str, params: dict[str, Any] | None = None
    ) -> Answer:
        """End a subscription now (``params``: ``prorate``, ``invoice_now``, ``expand``)."""
        with _translated_errors("cancel the subscription"):
            subscription = self.client.v1.subscriptions.cancel(
                subscription_id,
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        return _answer(subscription)

    def refund_payment(self, params: dict[str, Any], idempotency_key: str) -> Answer:
        """Refund (part of) a payment: ``payment_intent`` or ``charge``, ``amount``."""
        with _translated_errors("refund the payment"):
            refund = self.client.v1.refunds.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        return _answer(refund)

    def list_open_checkout_sessions(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's Checkout sessions still open (payable), newest first; one page."""
        with _translated_errors("list the open Checkout sessions"):
            page = self.client.v1.checkout.sessions.list(
                {"customer": customer_id, "status": "open", "limit": 100}
            )
        return [session.to_dict() for session in page.data]

    def expire_checkout_session(self, session_id: str, idempotency_key: str) -> Answer:
        """Expire an open Checkout session: it can be paid no more."""
        with _translated_errors("expire a Checkout session"):
            session = self.client.v1.checkout.sessions.expire(
                session_id, None, {"idempotency_key": idempotency_key}
            )
        return _answer(session)

    def create_schedule(self, subscription_id: str, idempotency_key: str) -> Answer:
        """A subscription schedule made from the subscription (its current phase only)."""
        with _translated_errors("schedule the change"):
            schedule = self.client.v1.subscription_schedules.create(
                {"from_subscription": subscription_id}, {"idempotency_key": idempotency_key}
            )
        return _answer(schedule)

    def retrieve_schedule(self, schedule_id: str) -> Answer:
        """A subscription schedule as plain data."""
        with _translated_errors("read the subscription schedule"):
            schedule = self.client.v1.subscription_schedules.retrieve(schedule_id)
        return _answer(schedule)

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
        return _answer(invoice).object

    def list_subscriptions(self, customer_id: str) -> Page:
        """Every subscription of a customer, whatever its status, as plain data."""
        return self._every_page(
            "list subscriptions",
            self.client.v1.subscriptions.list,
            {"customer": customer_id, "status": "all", "limit": 100},
            None,
        )

    def list_subscriptions_page(self, starting_after: str | None, limit: int = 100) -> Page:
        """One page of the account's subscriptions, any status, in Stripe's order (newest
        first), after ``starting_after``; and whether more pages follow."""
        params: dict[str, Any] = {"status": "all", "limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        with _translated_errors("list subscriptions"):
            page = self.client.v1.subscriptions.list(params)  # type: ignore[arg-type]
        listed = [subscription.to_dict() for subscription in page.data]
        if page.has_more and listed and listed[-1].get("id") == starting_after:
            raise _unfinished("list subscriptions", "its pages do not move on")
        return Page(listed, bool(page.has_more), _answered_at(page))

    def list_active_entitlements(
        self, customer_id: str, options: RequestOptions | None = None
    ) -> Page:
        """Every active entitlement of a customer (all pages), as plain data."""
        return self._every_page(
            "list active entitlements",
            self.client.v1.entitlements.active_entitlements.list,
            {"customer": customer_id, "limit": 100},
            options,
        )

    def list_meters(self) -> Page:
        """Every billing meter of the account, any status, as plain data (``billing.usage``
        resolves a meter's ``event_name`` to its id with it)."""
        return self._every_page(
            "list billing meters", self.client.v1.billing.meters.list, {"limit": 100}, None
        )

    def list_meter_event_summaries(
        self, meter_id: str, params: dict[str, Any], options: RequestOptions | None = None
    ) -> Page:
        """Every summary of a meter's events for ``params`` (``customer``, ``start_time``,
        ``end_time``, optional ``value_grouping_window``), all pages, as plain data."""
        summaries = self.client.v1.billing.meters.event_summaries
        return self._every_page(
            "list meter event summaries",
            lambda page_params, page_options: summaries.list(meter_id, page_params, page_options),
            {**params, "limit": 100},
            options,
        )

    def retrieve_thin_event(self, event_id: str, options: RequestOptions | None = None) -> Answer:
        """A thin (v2) event with its ``data`` (``GET /v2/core/events/{id}``), as plain data:
        where a meter error report's reasons are."""
        with _translated_errors("retrieve a thin event"):
            event = self.client.v2.core.events.retrieve(event_id, options=options)
        return _answer(event)

    def _every_page(
        self,
        action: str,
        list_page: Callable[..., Any],
        params: dict[str, Any],
        options: RequestOptions | None,
    ) -> Page:
        """Every item of a listing, page after page, within ``STRIPE_BILLING_MAX_PAGES``
        pages and ``STRIPE_BILLING_PAGING_DEADLINE`` seconds: past either, or on a page
        that does not move on, a :class:`StripeServiceError` rather than a loop without end.
        Dated by the first page's answer: every item is at least as new as that moment."""
        limits = self.settings
        items: list[dict[str, Any]] = []
        answered_at: int | None = None
        cursor: str | None = None
        late = f"not done in {limits.paging_deadline:g} s (STRIPE_BILLING_PAGING_DEADLINE)"
        with self.pacer.within(limits.paging_deadline) as deadline:
            for _ in range(limits.max_pages):
                if self.pacer.clock() >= deadline:
                    raise _unfinished(action, late)
                page_params = {**params, "starting_after": cursor} if cursor else params
                with _translated_errors(action):
                    try:
                        page = list_page(page_params, options)
                    except stripe.StripeError as error:
                        if error.code != OUT_OF_TIME:
                            raise
                        raise _unfinished(action, late) from None
                listed = [item.to_dict() for item in page.data]
                items.extend(listed)
                if cursor is None:
                    answered_at = _answered_at(page)
                if not page.has_more or not listed:
                    return Page(items, False, answered_at)
                last = listed[-1].get("id")
                if not isinstance(last, str) or not last or last == cursor:
                    raise _unfinished(action, "its pages do not move on")
                cursor = last
        raise _unfinished(
            action, f"it has more than {limits.max_pages} pages (STRIPE_BILLING_MAX_PAGES)"
        )

    def retrieve_event(self, event_id: str, options: RequestOptions | None = None) -> Answer:
        """A snapshot event as Stripe's API keeps it (for 30 days), as plain data."""
        with _translated_errors("retrieve an event"):
            event = self.client.v1.events.retrieve(event_id, options=options)
        return _answer(event)

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

    def list_prices_by_lookup_keys(self, lookup_keys: list[str]) -> list[dict[str, Any]]:
        """The active prices with these lookup keys (at most 10: Stripe's limit per call)."""
        with _translated_errors("list prices by lookup key"):
            page = self.client.v1.prices.list(
                {"lookup_keys": lookup_keys, "active": True, "limit": 100}
            )
        return [price.to_dict() for price in page.data]

    def create_meter_event(self, params: dict[str, Any]) -> MeterEventAnswer:
        """Post one meter event (``POST /v1/billing/meter_events``, one try: the usage
        sender retries with its own back-off); how Stripe answered, never raising."""
        try:
            event = self.client.v1.billing.meter_events.create(
                params,  # type: ignore[arg-type]
                {"max_network_retries": 0},
            )
        except stripe.StripeError as error:
            logger.warning(
                "Stripe API request failed",
                extra={"action": "report a meter event", "request_id": error.request_id},
            )
            reason = redact(error.user_message or type(error).__name__)
            return MeterEventAnswer(None, error.http_status, reason, error.request_id)
        return MeterEventAnswer(event.to_dict(), 200, None, None)

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


def _unfinished(action: str, why: str) -> StripeServiceError:
    """A listing stopped before its end (a 502; a webhook's event is kept for replay)."""
    logger.warning("Stripe API listing stopped: %s", why, extra={"action": action})
    return StripeServiceError(f"Stripe could not {action}: {why}", {"service": "Stripe"})


@contextmanager
def _translated_errors(action: str) -> Iterator[None]:
    """Turn a ``stripe.StripeError`` into a 502 naming Stripe's request id, never a key;
    a rate limit or a deadline says so."""
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
        message = f"Stripe could not {action}"
        if error.code == OUT_OF_TIME:
            message = f"{message}: {error.user_message}"
        elif error.http_status == 429:
            message = f"{message}: Stripe's rate limit (HTTP 429) outlasted the call's deadline"
        raise StripeServiceError(message, details) from None


def _answer(obj: Any) -> Answer:
    """The object as plain data, with the time of Stripe's ``Date`` header; a 502 when a 200
    answer is no object at all (a list, a bare value)."""
    if not isinstance(obj, stripe.StripeObject):
        logger.warning("Stripe API answered with no object")
        raise StripeServiceError(
            "Stripe answered with something that is not an object", {"service": "Stripe"}
        )
    return Answer(obj.to_dict(), _answered_at(obj))


def _answered_at(obj: Any) -> int | None:
    """When Stripe answered, by Stripe's clock: its ``Date`` header (None when absent)."""
    response = getattr(obj, "last_response", None)
    date = _header(getattr(response, "headers", None) or {}, "date")
    answered_at = None
    if date:
        try:
            answered_at = int(parsedate_to_datetime(date).timestamp())
        except (TypeError, ValueError, OverflowError):
            answered_at = None
    return answered_at


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
