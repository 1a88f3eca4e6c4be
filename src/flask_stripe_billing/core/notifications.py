"""Thin (v2) event notifications: the envelope an event destination sends, parsed once.

A thin notification carries no object, only a reference to it
(``related_object``), so it has no API version. Its shape is the one
stripe-python's ``EventNotification`` reads: ``id``, ``object`` =
``"v2.core.event"``, ``type``, ``created`` (RFC 3339 text), ``livemode``,
``context``, ``reason``, ``related_object {id, type, url}``, and, for the
thin twin of a snapshot event, ``snapshot_event`` (that event's id).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import EventParseError
from .events import StripeEvent, logged_event

#: What ``object`` says in every thin notification.
THIN_OBJECT = "v2.core.event"


#: The prefix of the thin twins of v1 snapshot event types (``v1.customer.subscription.updated``).
V1_PREFIX = "v1."


#: The API path of each related object type this package fetches.
RELATED_PATHS = {
    "subscription": "/v1/subscriptions",
    "invoice": "/v1/invoices",
    "checkout.session": "/v1/checkout/sessions",
    "billing.meter": "/v1/billing/meters",
}


@dataclass(frozen=True)
class RelatedObject:
    """The object a notification is about: its id, its type and its API path."""

    id: str
    type: str
    url: str


@dataclass(frozen=True)
class ThinNotification:
    """A verified thin event notification: what it names, never the object itself."""

    id: str
    type: str
    created: datetime
    livemode: bool
    related_object: RelatedObject | None
    #: The Stripe account context (Connect) to fetch the related object in.
    context: str | None
    #: The id of the snapshot event of the same change, when Stripe made one.
    snapshot_event: str | None
    #: The notification as Stripe sent it.
    data: Mapping[str, Any]

    @property
    def snapshot_type(self) -> str:
        """The snapshot event type this is the thin twin of (``v1.`` dropped)."""
        return self.type.removeprefix(V1_PREFIX)

    def as_logged(self) -> StripeEvent:
        """The notification as the event log stores it: its id, type and time, no object."""
        return logged_event(self.id, self.type, self.created, self.livemode, self.data)


def is_thin(payload: Any) -> bool:
    """Whether a decoded body is a thin notification rather than a snapshot event."""
    return isinstance(payload, Mapping) and payload.get("object") == THIN_OBJECT


def parse_notification(payload: Any) -> ThinNotification:
    """Read a decoded body; raise :class:`EventParseError` if it is no thin notification."""
    if not isinstance(payload, dict):
        raise EventParseError("body is not a JSON object")
    if payload.get("object") == "event":
        raise EventParseError(
            "this is a snapshot event: send it to the webhook endpoint, not the thin-event one"
        )
    if payload.get("object") != THIN_OBJECT:
        raise EventParseError("body is not a Stripe thin event notification")
    event_id = _text(payload.get("id"), "id")
    event_type = _text(payload.get("type"), "type")
    created = _created(payload.get("created"))
    related = payload.get("related_object")
    snapshot = payload.get("snapshot_event")
    context = payload.get("context")
    return ThinNotification(
        id=event_id,
        type=event_type,
        created=created,
        livemode=bool(payload.get("livemode")),
        related_object=_related(related) if related is not None else None,
        context=context if isinstance(context, str) and context else None,
        snapshot_event=snapshot if isinstance(snapshot, str) and snapshot else None,
        data=payload,
    )


def _related(value: Any) -> RelatedObject:
    if not isinstance(value, Mapping):
        raise EventParseError("related_object is not an object")
    return RelatedObject(
        id=_text(value.get("id"), "related_object.id"),
        type=_text(value.get("type"), "related_object.type"),
        url=_text(value.get("url"), "related_object.url"),
    )


def _created(value: Any) -> datetime:
    """``created``: RFC 3339 text (``2024-09-26T12:00:00.000Z``) as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        raise EventParseError("notification has no creation time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventParseError("notification's creation time is not RFC 3339") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise EventParseError(f"notification has no {name}")
    return value


def build_notification(
    event_type: str,
    related_id: str | None,
    related_type: str | None,
    *,
    event_id: str | None = None,
    created: datetime | None = None,
    snapshot_event: str | None = None,
    livemode: bool = False,
) -> dict[str, Any]:
    """A thin notification as an event destination sends it (for ``trigger --thin`` and tests).

    The shape of Stripe's published examples and of stripe-python's
    ``EventNotification``; the related object's URL is its v1 API path. Without
    ``related_id`` it names no related object (an entitlement summary's
    notification names only its ``snapshot_event``).
    """
    moment = (created or datetime.now(UTC)).astimezone(UTC)
    notification: dict[str, Any] = {
        "id": event_id or f"evt_test_{secrets.token_hex(12)}",
        "object": THIN_OBJECT,
        "type": event_type,
        "livemode": livemode,
        "created": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "context": None,
        "reason": None,
    }
    if related_id is not None and related_type is not None:
        path = RELATED_PATHS.get(related_type, "/v1/" + related_type)
        notification["related_object"] = {
            "id": related_id,
            "type": related_type,
            "url": f"{path}/{related_id}",
        }
    if snapshot_event is not None:
        notification["snapshot_event"] = snapshot_event
    return notification
