"""``trigger --thin`` and ``create-webhook-endpoint --thin``: thin event notifications.

``trigger --thin`` signs a notification offline, as an event destination
would, and delivers it; the app then fetches the related object from Stripe's
API (a test-mode key, or a stand-in in tests). ``create-webhook-endpoint
--thin`` creates an event destination that sends thin events.
"""

from __future__ import annotations

import json

import click

from ..core.notifications import V1_PREFIX, build_notification
from ..core.templates import DEFAULT_SUBSCRIPTION
from ..pipeline.fetch import SNAPSHOT_OF_CHANGE, THIN_EVENT_TYPES, THIN_ROUTES
from ..state import get_state
from ..web.delivery import thin_webhook_path
from .common import NotFound, deliver, reported_errors
from .reports import truncate

RESPONSE_WIDTH = 200


#: The name given to event destinations this command creates.
DESTINATION_NAME = "flask-stripe-billing thin events"


def thin_type(event_type: str) -> str:
    """The thin type of EVENT_TYPE (``customer.subscription.updated`` or its ``v1.`` form);
    a usage error for a type this package does not handle."""
    thin = event_type if event_type.startswith(V1_PREFIX) else V1_PREFIX + event_type
    if thin not in THIN_ROUTES:
        raise click.BadParameter(
            f"{event_type!r} is not a thin type this package handles; trigger one of: "
            + ", ".join(THIN_EVENT_TYPES),
            param_hint="EVENT_TYPE",
        )
    return thin


def trigger_thin(
    event_type: str, object_id: str | None, user_id: str | None, url: str | None
) -> None:
    """Sign a thin notification of ``event_type`` about ``object_id`` (default: the user's
    subscription, else ``sub_test``) and deliver it; print the answer and the event log's
    status. Exit code 1 unless the answer is 2xx."""
    event_type = thin_type(event_type)
    state = get_state()
    if not state.settings.thin_webhook_secrets:
        raise click.ClickException(
            "STRIPE_THIN_WEBHOOK_SECRET is not set: trigger --thin signs notifications with "
            "it, as Stripe does."
        )
    route = THIN_ROUTES[event_type]
    related_id = object_id or _default_subscription(user_id)
    if related_id is None or (route.related_type != "subscription" and object_id is None):
        what = "snapshot event" if route.related_type == SNAPSHOT_OF_CHANGE else route.related_type
        raise click.UsageError(f"--object (the {what} id) is required")
    if route.related_type == SNAPSHOT_OF_CHANGE:
        notification = build_notification(event_type, None, None, snapshot_event=related_id)
    else:
        notification = build_notification(event_type, related_id, route.related_type)
    body = json.dumps(notification).encode()
    secret = state.settings.thin_webhook_secrets[0]
    target, code, answer = deliver(body, secret, url, thin_webhook_path)
    with reported_errors(), state.event_log.transaction():
        record = state.event_log.get_event(notification["id"])
    click.echo(f"{event_type} {notification['id']} ({route.related_type} {related_id})")
    click.echo(f"  → {target}: HTTP {code} {truncate(answer, RESPONSE_WIDTH)}")
    if record is None:
        click.echo("  event log: not in this app's event log")
    else:
        note = f" ({record.error})" if record.error else ""
        click.echo(f"  event log: {record.status}{note}")
    if not 200 <= code < 300:
        raise click.exceptions.Exit(1)


def create_thin_destination(url: str) -> None:
    """Create an event destination sending this package's thin event types to ``url``,
    and print its signing secret once."""
    gateway = get_state().stripe
    if gateway is None:
        raise click.ClickException(
            "STRIPE_API_KEY is not set: the event destination is created through Stripe's API."
        )
    with reported_errors():
        destination = gateway.create_thin_event_destination(
            DESTINATION_NAME, url, list(THIN_EVENT_TYPES)
        )
    endpoint = destination.get("webhook_endpoint") or {}
    mode = "live" if destination.get("livemode") else "test"
    click.echo(f"Created event destination {destination.get('id')} ({mode} mode) for {url}")
    click.echo("  payload: thin (no API version: objects are fetched at the pinned version)")
    click.echo(f"  events: {', '.join(THIN_EVENT_TYPES)}")
    click.echo("Signing secret (shown this once; the Dashboard can reveal it again):")
    click.echo(f"  {endpoint.get('signing_secret')}")
    click.echo(
        "Set it as STRIPE_THIN_WEBHOOK_SECRET (or add it, comma-separated, to the secrets "
        "you have), e.g. in your environment or secret store; not in your code."
    )


def _default_subscription(user_id: str | None) -> str:
    """The user's subscription (``sub_test_<user>`` if none yet), or ``sub_test``."""
    if user_id is None:
        return DEFAULT_SUBSCRIPTION
    state = get_state()
    with reported_errors(), state.event_log.transaction():
        user = state.user_store.get(user_id)
    if user is None:
        raise NotFound(f"No user {user_id}; nothing was sent.")
    return user.stripe_subscription_id or f"{DEFAULT_SUBSCRIPTION}_{user_id}"
