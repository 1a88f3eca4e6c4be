"""Thin event notifications through the pipeline: verify → settle duplicates → fetch → run.

A thin notification names an object without carrying it. The object is read
from Stripe's API and applied by :func:`.pipeline.run` as a snapshot event
under the notification's id, with the same rules, records, projection and
signals as a delivered snapshot event. Nothing is locked while Stripe is asked.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..core.notifications import ThinNotification
from ..core.outcomes import DUPLICATE, RETRYABLE_STATUSES, EventStatus, Outcome, ThinOrigin
from ..core.rules import foreign_account_reason
from ..errors import BillingError, StripeServiceError
from ..redact import describe_traceback
from ..state import BillingState
from .fetch import ThinRoute, fetch_related, fetched_event, route_of, twin_of
from .run import announce, ignore, keep_received, not_recorded, record_unapplied, run


def run_notification(
    state: BillingState, app: Any, notification: ThinNotification, payload: str
) -> Outcome:
    """Settle the notification if it is done with, else fetch its object and run it.

    A fetch that fails leaves it recorded ``received`` with the reason, for
    ``flask billing replay`` (or Stripe's next delivery of it) to fetch again.
    """
    logged = notification.as_logged()
    foreign = foreign_account_reason(notification.context, state.settings, kind="notification")
    if foreign is not None:
        return ignore(state, app, logged, payload, foreign)
    route = route_of(notification)
    settled = _settle(state, notification, payload, route)
    if settled is not None or route is None:
        outcome = settled or Outcome(logged, EventStatus.IGNORED)
        announce(app, outcome)
        return outcome
    try:
        answer = fetch_related(state.require_stripe(), notification, route)
    except BillingError as error:
        reason = f"could not fetch {_related_name(notification)}"
        outcome = keep_received(state, notification.as_logged(), payload, reason, error)
        announce(app, outcome)
        return outcome
    try:
        event = fetched_event(notification, route, answer)
    except StripeServiceError as error:  # an answer that is not the object asked for
        reason = f"{_related_name(notification)}: {error.message}"
        logged = notification.as_logged()
        outcome = record_unapplied(state, logged, payload, EventStatus.FAILED, reason, error)
        announce(app, outcome)
        return outcome
    if event.type != route.snapshot_type:  # a fetched snapshot event of another kind
        reason = f"{_related_name(notification)} is a {event.type} event, not {route.snapshot_type}"
        logged = notification.as_logged()
        outcome = record_unapplied(state, logged, payload, EventStatus.IGNORED, reason)
        announce(app, outcome)
        return outcome
    logged = replace(notification.as_logged(), customer_id=event.customer_id)
    origin = ThinOrigin(logged, twin_of(notification, event))
    return run(state, app, event, payload, thin=origin)


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
                log.record_event(logged, payload)  # one more attempt, as a snapshot's counts
                return Outcome(logged, DUPLICATE)
            twin_id = notification.snapshot_event
            twin = log.get_event(twin_id) if twin_id else None
            if route is not None and (twin is None or twin.status in RETRYABLE_STATUSES):
                return None
            if twin is not None:  # the customer is known from the twin, without a fetch
                logged = replace(logged, customer_id=twin.customer_id)
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
