"""Thin event notifications through the pipeline: verify → settle duplicates → fetch → run.

A thin notification names an object without carrying it. The object is read
from Stripe's API and applied by :func:`.pipeline.run` as a snapshot event
under the notification's id, with the same rules, records, projection and
signals as a delivered snapshot event. Nothing is locked while Stripe is asked.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from . import pipeline
from .clock import utcnow
from .dispatch import hand_over, record_for_dispatch
from .errors import BillingError, ValidationError
from .events import EventParseError
from .notifications import ThinNotification, is_thin, parse_notification
from .outcomes import DUPLICATE, Outcome, ThinOrigin, not_recorded
from .payload_limits import check_storable, load_json
from .redact import describe_traceback
from .state import BillingState
from .stores.base import RETRYABLE_STATUSES, EventStatus
from .thin_fetch import ThinRoute, fetch_related, fetched_event, route_of, twin_of
from .webhook import verify_signature

logger = logging.getLogger("flask_stripe_billing")


def receive_thin(state: BillingState, app: Any, body: bytes, signature: str | None) -> Outcome:
    """A thin delivery: verify with the thin signing secrets → parse → run (dispatch mode:
    record, then hand over; the worker fetches)."""
    settings = state.settings
    payload = verify_signature(
        body, signature, settings.thin_webhook_secrets, settings.webhook_tolerance
    )
    notification = read_notification(payload)
    if state.dispatch is None:
        return run_notification(state, app, notification, payload)
    logged = notification.as_logged()
    outcome = record_for_dispatch(state, logged, payload)
    if outcome.status == EventStatus.RECEIVED:
        hand_over(state, logged)
    pipeline.announce(app, outcome)
    return outcome


def read_notification(body: str | bytes) -> ThinNotification:
    """Decode a verified body into a :class:`ThinNotification` (400 when it is none)."""
    try:
        payload: Any = load_json(body)
    except ValueError as error:
        raise ValidationError(f"Webhook error: body is not valid JSON ({error})") from None
    try:
        check_storable(payload)
        return parse_notification(payload)
    except EventParseError as error:
        raise ValidationError(f"Webhook error: {error}") from None


def run_notification(
    state: BillingState, app: Any, notification: ThinNotification, payload: str
) -> Outcome:
    """Settle the notification if it is done with, else fetch its object and run it.

    A fetch that fails leaves it recorded ``received`` with the reason, for
    ``flask billing replay`` (or Stripe's next delivery of it) to fetch again.
    """
    logged = notification.as_logged()
    route = route_of(notification)
    settled = _settle(state, notification, payload, route)
    if settled is not None or route is None:
        outcome = settled or Outcome(logged, EventStatus.IGNORED)
        pipeline.announce(app, outcome)
        return outcome
    try:
        obj = fetch_related(state.require_stripe(), notification, route)
    except BillingError as error:
        reason = f"could not fetch {_related_name(notification)}"
        outcome = pipeline.keep_received(state, notification.as_logged(), payload, reason, error)
        pipeline.announce(app, outcome)
        return outcome
    event = fetched_event(notification, route, obj, utcnow())
    if event.type != route.snapshot_type:  # a fetched snapshot event of another kind
        reason = f"{_related_name(notification)} is a {event.type} event, not {route.snapshot_type}"
        logged = notification.as_logged()
        outcome = pipeline.record_unapplied(state, logged, payload, EventStatus.IGNORED, reason)
        pipeline.announce(app, outcome)
        return outcome
    logged = replace(notification.as_logged(), customer_id=event.customer_id)
    origin = ThinOrigin(logged, twin_of(notification, event))
    return pipeline.run(state, app, event, payload, thin=origin)


def run_stored(state: BillingState, app: Any, event_id: str) -> Outcome:
    """Run a stored event again, snapshot or thin (replay, dispatch workers); a thin one
    has its object fetched again. A finished event is a duplicate."""
    with state.event_log.transaction():
        record = state.event_log.get_event(event_id)
    if record is None:
        raise LookupError(f"no stored event {event_id!r}")
    decoded = load_json(record.payload)
    if not is_thin(decoded):
        return pipeline.run_stored(state, app, event_id)
    return run_notification(state, app, parse_notification(decoded), record.payload)


def _settle(
    state: BillingState, notification: ThinNotification, payload: str, route: ThinRoute | None
) -> Outcome | None:
    """A notification that needs no fetch, recorded as such: seen before, a type this
    package does not handle, or its snapshot twin applied already. None: fetch it."""
    log = state.event_log
    logged = notification.as_logged()
    try:
        with log.transaction():
            stored = log.get_event(notification.id)
            if stored is not None and stored.status not in RETRYABLE_STATUSES:
                return Outcome(logged, DUPLICATE)
            twin_id = notification.snapshot_event
            twin = log.get_event(twin_id) if twin_id else None
            if route is not None and (twin is None or twin.status in RETRYABLE_STATUSES):
                return None
            recorded = log.record_event(logged, payload)
            if recorded.status not in RETRYABLE_STATUSES:
                return Outcome(logged, DUPLICATE)
            if route is None:
                log.finish_event(notification.id, EventStatus.IGNORED)
                return Outcome(logged, EventStatus.IGNORED)
            assert twin is not None
            note = f"applied through snapshot event {twin.id}"
            log.finish_event(notification.id, twin.status, user_id=twin.user_id, error=note)
            return Outcome(logged, DUPLICATE, reason=note)
    except Exception as error:
        raise not_recorded(logged, describe_traceback(error)) from None


def _related_name(notification: ThinNotification) -> str:
    related = notification.related_object
    if related is not None:
        return f"{related.type} {related.id}"
    return f"snapshot event {notification.snapshot_event}"
