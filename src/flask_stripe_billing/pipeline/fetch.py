"""What the pipeline reads from Stripe's API: a thin notification's related object,
the rest of a truncated entitlement summary, a re-fetched subscription."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from stripe import RequestOptions

from ..core.entitlements import SUMMARY_EVENT, lookup_keys
from ..core.events import (
    SUBSCRIPTION_SNAPSHOT,
    StripeEvent,
    logged_event,
    parse_event,
    snapshot_event,
    with_subscription,
)
from ..core.notifications import ThinNotification
from ..state import BillingState
from ..stripe_api import API_VERSION, StripeGateway

logger = logging.getLogger("flask_stripe_billing")


def refresh_subscription(state: BillingState, event: StripeEvent) -> StripeEvent:
    """Re-fetch mode: the event with its subscription as Stripe's API has it now."""
    if event.subscription is None:
        return event
    fetched = state.require_stripe().retrieve_subscription(event.subscription.id)
    return with_subscription(event, fetched)


#: The "related type" of a notification that names no object: the snapshot event it names
#: (``snapshot_event``) is fetched instead and applied as it is.
SNAPSHOT_OF_CHANGE = "snapshot_event"


#: Reads one object from Stripe's API: the gateway, the object's id, the request options.
Fetch = Callable[[StripeGateway, str, RequestOptions], dict[str, Any]]


@dataclass(frozen=True)
class ThinRoute:
    """What to fetch for a thin event type, and which snapshot event it becomes."""

    related_type: str
    snapshot_type: str


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
    else:
        related = notification.related_object
        fetched = related.id if related is not None else None
    assert fetched is not None  # route_of checked it
    return fetched


def fetch_related(
    gateway: StripeGateway, notification: ThinNotification, route: ThinRoute
) -> dict[str, Any]:
    """The related object as Stripe's API has it now (or the snapshot event the route
    fetches), in the notification's account context.

    Raises :class:`~.errors.StripeServiceError` when Stripe fails (bounded by the
    configured timeouts and retries).
    """
    options: RequestOptions = {"headers": {"Stripe-Request-Trigger": f"event={notification.id}"}}
    if notification.context:
        options["stripe_context"] = notification.context
    return FETCHES[route.related_type](gateway, fetched_id(notification, route), options)


def fetched_event(
    notification: ThinNotification, route: ThinRoute, obj: Mapping[str, Any], read_at: datetime
) -> StripeEvent:
    """The snapshot event the pipeline decides on: the fetched object, created when read.

    It keeps the notification's id (the event log's row) and is dated when the
    object was read, so it orders like a reconciliation snapshot: every event
    created before the read is older than the state it carries. A fetched
    snapshot event is applied as Stripe made it (its own time and object),
    under the notification's id.
    """
    if route.related_type == SNAPSHOT_OF_CHANGE:
        return parse_event({**obj, "id": notification.id})
    return snapshot_event(
        notification.id,
        route.snapshot_type,
        obj,
        int(read_at.timestamp()),
        api_version=API_VERSION,
        livemode=notification.livemode,
    )


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
    features = lookup_keys(gateway.list_active_entitlements(summary.customer_id, options))
    return replace(event, entitlements=replace(summary, features=features, truncated=False))
