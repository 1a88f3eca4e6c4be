"""What the pipeline reads from Stripe's API: a thin notification's related object,
the rest of a truncated entitlement summary, a re-fetched subscription."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from stripe import RequestOptions

from .._util import utcnow
from ..core.entitlements import SUMMARY_EVENT, lookup_keys
from ..core.events import (
    METER_ERROR_EVENT,
    SUBSCRIPTION_SNAPSHOT,
    StripeEvent,
    logged_event,
    meter_error_report,
    parse_event,
    snapshot_event,
    timestamp,
    with_subscription,
)
from ..core.limits import check_storable
from ..core.notifications import THIN_OBJECT, ThinNotification
from ..errors import EventParseError, StripeServiceError
from ..state import BillingState
from ..stripe_api import API_VERSION, Answer, StripeGateway

logger = logging.getLogger("flask_stripe_billing")


def stripe_time(answered_at: int | None) -> int:
    """When a fetched object was read, by Stripe's clock (the ``Date`` of its answer): the
    time every watermark compares, like the ``created`` of Stripe's events.

    This server's clock may be seconds off Stripe's; only an answer without a
    ``Date`` (not from Stripe's API itself) is dated by it, with a warning.
    """
    if answered_at is not None:
        return answered_at
    logger.warning("Stripe's answer has no Date header; it is dated by this server's clock")
    return int(utcnow().timestamp())


def check_answer(
    answer: Answer, kind: str, object_id: str | None = None, customer_id: str | None = None
) -> dict[str, Any]:
    """Stripe's answer, once it is what was asked for: storable as the snapshot webhook
    requires, a ``kind`` object with an id (``object_id`` when given) and of
    ``customer_id`` when given. Else a :class:`StripeServiceError` (502) with the reason,
    and nothing is applied."""
    obj = answer.object
    try:
        check_storable(obj)
    except (EventParseError, ValueError) as error:
        raise unusable_answer(kind, str(error)) from None
    found = obj.get("id")
    if obj.get("object") != kind or not isinstance(found, str) or not found:
        raise unusable_answer(kind, f"its answer is not a {kind} with an id")
    if object_id is not None and found != object_id:
        raise unusable_answer(kind, f"it answered with {found}, not {object_id}")
    customer = obj.get("customer")
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    if customer_id is not None and customer != customer_id:
        raise unusable_answer(kind, f"{found} belongs to customer {customer}, not {customer_id}")
    return obj


def unusable_answer(kind: str, reason: str) -> StripeServiceError:
    """The 502 for an answer of Stripe's that cannot be applied, naming why."""
    logger.warning("Stripe API answer refused: %s", reason, extra={"object": kind})
    return StripeServiceError(
        f"Stripe's answer for the {kind} cannot be applied: {reason}",
        {"service": "Stripe", "reason": reason},
    )


def refresh_subscription(state: BillingState, event: StripeEvent) -> StripeEvent:
    """Re-fetch mode: the event with its subscription as Stripe's API has it now, dated
    when Stripe answered (never before the event itself)."""
    if event.subscription is None:
        return event
    subscription = event.subscription
    answer = state.require_stripe().retrieve_subscription(subscription.id)
    fetched = check_answer(answer, "subscription", subscription.id, event.customer_id)
    read_at = timestamp(stripe_time(answer.answered_at))
    return replace(with_subscription(event, fetched), created=max(event.created, read_at))


#: The "related type" of a notification that names no object: the snapshot event it names
#: (``snapshot_event``) is fetched instead and applied as it is.
SNAPSHOT_OF_CHANGE = "snapshot_event"


#: Reads one object from Stripe's API: the gateway, the object's id, the request options.
Fetch = Callable[[StripeGateway, str, RequestOptions], Answer]


@dataclass(frozen=True)
class ThinRoute:
    """What to fetch for a thin event type, and which snapshot event it becomes."""

    related_type: str
    snapshot_type: str
    #: Whether the facts are in the thin event's own ``data`` (a meter error report's
    #: reasons), read from ``/v2/core/events``, rather than in the related object.
    reads_event_data: bool = False


#: Thin event type → its route. An entitlement summary's notification names no object
#: (the summary has no id of its own): its snapshot event is fetched.
THIN_ROUTES: dict[str, ThinRoute] = {
    "v1.customer.subscription.created": ThinRoute("subscription", SUBSCRIPTION_SNAPSHOT),
    "v1.customer.subscription.updated": ThinRoute("subscription", SUBSCRIPTION_SNAPSHOT),
    "v1.customer.subscription.deleted": ThinRoute("subscription", SUBSCRIPTION_SNAPSHOT),
    "v1.customer.subscription.trial_will_end": ThinRoute(
        "subscription", "customer.subscription.trial_will_end"
    ),
    "v1.checkout.session.completed": ThinRoute("checkout.session", "checkout.session.completed"),
    "v1.checkout.session.async_payment_succeeded": ThinRoute(
        "checkout.session", "checkout.session.async_payment_succeeded"
    ),
    "v1.invoice.payment_failed": ThinRoute("invoice", "invoice.payment_failed"),
    "v1.invoice.paid": ThinRoute("invoice", "invoice.paid"),
    "v1.invoice.payment_action_required": ThinRoute("invoice", "invoice.payment_action_required"),
    "v1.entitlements.active_entitlement_summary.updated": ThinRoute(
        SNAPSHOT_OF_CHANGE, SUMMARY_EVENT
    ),
    "v1.billing.meter.error_report_triggered": ThinRoute(
        "billing.meter", METER_ERROR_EVENT, reads_event_data=True
    ),
}


#: Related object type → how to read it from Stripe's API.
FETCHES: dict[str, Fetch] = {
    "subscription": lambda gateway, object_id, options: gateway.retrieve_subscription(
        object_id, options
    ),
    "checkout.session": lambda gateway, object_id, options: gateway.retrieve_checkout_session(
        object_id, options
    ),
    "invoice": lambda gateway, object_id, options: gateway.retrieve_invoice(object_id, options),
    SNAPSHOT_OF_CHANGE: lambda gateway, event_id, options: gateway.retrieve_event(
        event_id, options
    ),
}


#: The thin event types to enable on an event destination for this package.
THIN_EVENT_TYPES = tuple(THIN_ROUTES)


def route_of(notification: ThinNotification) -> ThinRoute | None:
    """The notification's route, or None when this package does not handle it (or the
    related object is not of the type its route expects)."""
    route = THIN_ROUTES.get(notification.type)
    if route is not None and route.related_type == SNAPSHOT_OF_CHANGE:
        return route if notification.snapshot_event is not None else None
    related = notification.related_object
    if route is None or related is None or related.type != route.related_type:
        return None
    return route


def fetched_id(notification: ThinNotification, route: ThinRoute) -> str:
    """The id of what the route fetches: the related object, or the snapshot event."""
    if route.related_type == SNAPSHOT_OF_CHANGE:
        fetched = notification.snapshot_event
    elif route.reads_event_data:
        fetched = notification.id
    else:
        related = notification.related_object
        fetched = related.id if related is not None else None
    assert fetched is not None  # route_of checked it
    return fetched


def fetch_related(
    gateway: StripeGateway, notification: ThinNotification, route: ThinRoute
) -> Answer:
    """The related object as Stripe's API has it now (or the snapshot event the route
    fetches), in the notification's account context.

    Raises :class:`~.errors.StripeServiceError` when Stripe fails (bounded by the
    configured timeouts and retries).
    """
    options: RequestOptions = {"headers": {"Stripe-Request-Trigger": f"event={notification.id}"}}
    if notification.context:
        options["stripe_context"] = notification.context
    if route.reads_event_data:
        return gateway.retrieve_thin_event(notification.id, options)
    return FETCHES[route.related_type](gateway, fetched_id(notification, route), options)


def fetched_event(notification: ThinNotification, route: ThinRoute, answer: Answer) -> StripeEvent:
    """The snapshot event the pipeline decides on: the fetched object, created when read.

    It keeps the notification's id (the event log's row) and is dated when
    Stripe answered (:func:`stripe_time`), so it orders like a reconciliation
    snapshot: every event created before the read is older than the state it
    carries. A fetched snapshot event is applied as Stripe made it (its own time
    and object), under the notification's id. Raises :class:`StripeServiceError`
    when the answer is not the object asked for, or unreadable.
    """
    kind = "event" if route.related_type == SNAPSHOT_OF_CHANGE else route.related_type
    if route.reads_event_data:
        kind = THIN_OBJECT
    obj = check_answer(answer, kind, fetched_id(notification, route))
    try:
        if route.related_type == SNAPSHOT_OF_CHANGE:
            return parse_event({**obj, "id": notification.id})
        if route.reads_event_data:
            obj = meter_error_report(obj)
        return snapshot_event(
            notification.id,
            route.snapshot_type,
            obj,
            stripe_time(answer.answered_at),
            api_version=API_VERSION,
            livemode=notification.livemode,
        )
    except EventParseError as error:
        raise unusable_answer(kind, str(error)) from None


def twin_of(notification: ThinNotification, event: StripeEvent) -> StripeEvent | None:
    """The snapshot event of the same change (``snapshot_event``), as the log stores it when
    the thin notification applies first; None when Stripe named none."""
    if notification.snapshot_event is None:
        return None
    return logged_event(
        notification.snapshot_event,
        notification.snapshot_type,
        notification.created,
        notification.livemode,
        notification.data,
        customer_id=event.customer_id,
    )


def is_truncated(event: StripeEvent) -> bool:
    """Whether the event is an entitlement summary that left entitlements out."""
    return event.entitlements is not None and event.entitlements.truncated


def complete_summary(gateway: StripeGateway | None, event: StripeEvent) -> StripeEvent:
    """A truncated summary with every active entitlement, listed from Stripe's API.

    It keeps the event's own time: Stripe's list is at least as new as the
    event, and a later change comes with a later summary. Without an API key
    the summary is applied as listed (its first 10), with a warning.
    """
    summary = event.entitlements
    assert summary is not None
    if gateway is None:
        logger.warning(
            "Stripe entitlement summary lists only some entitlements; set STRIPE_API_KEY "
            "to read the rest from Stripe's API",
            extra={"event_id": event.id, "customer_id": summary.customer_id},
        )
        return event
    options: RequestOptions = {"headers": {"Stripe-Request-Trigger": f"event={event.id}"}}
    listed = gateway.list_active_entitlements(summary.customer_id, options).objects
    try:
        check_storable(listed)
    except (EventParseError, ValueError) as error:
        raise unusable_answer("entitlement list", str(error)) from None
    features = lookup_keys(listed)
    return replace(event, entitlements=replace(summary, features=features, truncated=False))
