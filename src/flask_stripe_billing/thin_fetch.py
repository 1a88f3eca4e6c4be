"""Which thin notifications this package handles, and how each related object is fetched.

One small table: a thin event type → the related object's type it names and
the snapshot event type the fetched object is applied as. A second one: a
related object's type → the call that reads it from Stripe's API. A thin
type missing from the first is recorded and ignored, like an unhandled
snapshot event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stripe import RequestOptions

from .events import StripeEvent, parse_event
from .notifications import ThinNotification
from .stripe_api import API_VERSION, StripeGateway

#: The snapshot type every subscription notification is applied as: the fetched object is
#: the subscription's whole current state, whatever change the notification names (as sync).
SUBSCRIPTION_SNAPSHOT = "customer.subscription.updated"

#: Reads one object from Stripe's API: the gateway, the object's id, the request options.
Fetch = Callable[[StripeGateway, str, RequestOptions], dict[str, Any]]


@dataclass(frozen=True)
class ThinRoute:
    """What to fetch for a thin event type, and which snapshot event it becomes."""

    related_type: str
    snapshot_type: str


#: Thin event type → its route. Entitlement summaries are not here yet: see docs/thin-events.md.
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
}

#: The thin event types to enable on an event destination for this package.
THIN_EVENT_TYPES = tuple(THIN_ROUTES)


def route_of(notification: ThinNotification) -> ThinRoute | None:
    """The notification's route, or None when this package does not handle it (or the
    related object is not of the type its route expects)."""
    route = THIN_ROUTES.get(notification.type)
    related = notification.related_object
    if route is None or related is None or related.type != route.related_type:
        return None
    return route


def fetch_related(
    gateway: StripeGateway, notification: ThinNotification, route: ThinRoute
) -> dict[str, Any]:
    """The related object as Stripe's API has it now, in the notification's account context.

    Raises :class:`~.errors.StripeServiceError` when Stripe fails (bounded by the
    configured timeouts and retries).
    """
    assert notification.related_object is not None
    options: RequestOptions = {"headers": {"Stripe-Request-Trigger": f"event={notification.id}"}}
    if notification.context:
        options["stripe_context"] = notification.context
    return FETCHES[route.related_type](gateway, notification.related_object.id, options)


def fetched_event(
    notification: ThinNotification, route: ThinRoute, obj: Mapping[str, Any], read_at: datetime
) -> StripeEvent:
    """The snapshot event the pipeline decides on: the fetched object, created when read.

    It keeps the notification's id (the event log's row) and is dated when the
    object was read, so it orders like a reconciliation snapshot: every event
    created before the read is older than the state it carries.
    """
    return parse_event(
        {
            "id": notification.id,
            "object": "event",
            "type": route.snapshot_type,
            "created": int(read_at.timestamp()),
            "api_version": API_VERSION,
            "livemode": notification.livemode,
            "data": {"object": dict(obj)},
        }
    )


def twin_of(notification: ThinNotification, event: StripeEvent) -> StripeEvent | None:
    """The snapshot event of the same change (``snapshot_event``), as the log stores it when
    the thin notification applies first; None when Stripe named none."""
    if notification.snapshot_event is None:
        return None
    return StripeEvent(
        id=notification.snapshot_event,
        type=notification.snapshot_type,
        created=notification.created,
        api_version=None,
        livemode=notification.livemode,
        customer_id=event.customer_id,
        subscription=None,
        checkout_session=None,
        data=notification.data,
    )
