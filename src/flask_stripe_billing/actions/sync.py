"""Reconciliation with Stripe's API: subscriptions and entitlements read now, run through
the pipeline.

Each subscription (or a customer's list of active entitlements) read from the
API becomes a snapshot event created at the moment it was read, so webhooks
created earlier that arrive later are stale. Snapshots are decided and
applied like delivered events but not logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.events import StripeEvent, snapshot_event, subscription_snapshot, summary_snapshot
from ..core.outcomes import EventStatus, Outcome
from ..errors import EventParseError, StoreUnavailableError
from ..pipeline.fetch import check_answer, stripe_time, unusable_answer
from ..pipeline.run import run
from ..redact import describe_traceback
from ..state import BillingState
from ..stripe_api import API_VERSION, Answer

logger = logging.getLogger("flask_stripe_billing")


@dataclass(frozen=True)
class PageResult:
    """One page of ``sync --all``: what each subscription did, and where to resume."""

    outcomes: list[Outcome]
    #: The last subscription id of the page: resume after it.
    cursor: str | None
    has_more: bool


def sync_customer(state: BillingState, app: Any, customer_id: str) -> list[Outcome]:
    """Read every subscription of the customer and apply each (none: an empty list).

    Raises :class:`~.errors.StripeServiceError` if Stripe fails.
    """
    page = state.require_stripe().list_subscriptions(customer_id)
    subscriptions = [_checked(s) for s in page.objects if _customer_of(s) == customer_id]
    read_at = stripe_time(page.answered_at)
    return [
        run(state, app, subscription_snapshot(s, read_at, API_VERSION), None) for s in subscriptions
    ]


def sync_features(state: BillingState, app: Any, customer_id: str) -> Outcome | None:
    """Read the customer's active entitlements and apply them (None: the store keeps none).

    Raises :class:`~.errors.StripeServiceError` if Stripe fails.
    """
    if state.entitlement_log is None:
        return None
    page = state.require_stripe().list_active_entitlements(customer_id)
    read_at = stripe_time(page.answered_at)
    return run(state, app, summary_snapshot(customer_id, page.objects, read_at, API_VERSION), None)


def sync_all(
    state: BillingState, app: Any, starting_after: str | None = None
) -> Iterator[PageResult]:
    """Every subscription of the Stripe account, a page (100) at a time, each applied.

    About one API call per hundred subscriptions; ``starting_after`` resumes
    after the subscription a previous, interrupted run ended on.
    """
    gateway = state.require_stripe()
    cursor = starting_after
    while True:
        page = gateway.list_subscriptions_page(cursor)
        subscriptions, has_more = [_checked(s) for s in page.objects], page.has_more
        read_at = stripe_time(page.answered_at)
        outcomes = [
            _apply(state, app, subscription_snapshot(s, read_at, API_VERSION))
            for s in subscriptions
        ]
        if subscriptions:
            cursor = str(subscriptions[-1].get("id"))
        yield PageResult(outcomes, cursor, has_more and bool(subscriptions))
        if not has_more or not subscriptions:
            return


def _apply(state: BillingState, app: Any, event: StripeEvent) -> Outcome:
    """Run one snapshot; a failure (but a database outage) is reported, not raised."""
    try:
        return run(state, app, event, None)
    except StoreUnavailableError:
        raise
    except Exception as error:
        logger.error(
            "Stripe subscription sync failed\n%s",
            describe_traceback(error),
            extra={"event_id": event.id},
        )
        return Outcome(event, EventStatus.FAILED, error=error)


def sync_checkout_session(state: BillingState, app: Any, session_id: str) -> Outcome:
    """A completed Checkout session, read from Stripe's API, applied at once.

    Idempotent with the ``checkout.session.completed`` webhook that follows. Raises
    :class:`~.errors.StripeServiceError` if Stripe fails or answers a session that
    cannot be applied (not the session asked for, values the webhook would refuse, no
    ``created``).
    """
    answer = state.require_stripe().retrieve_checkout_session(session_id)
    session = check_answer(answer, "checkout.session", session_id)
    try:
        event = snapshot_event(
            f"sync_{session_id}",
            "checkout.session.completed",
            session,
            session.get("created"),
            api_version=None,
            livemode=bool(session.get("livemode")),
        )
    except EventParseError as error:  # no creation time: not a session to apply
        raise unusable_answer("checkout.session", str(error)) from None
    return run(state, app, event, None)


def _checked(subscription: dict[str, Any]) -> dict[str, Any]:
    """A listed subscription once it is readable (a 502 otherwise: nothing of it applied)."""
    return check_answer(Answer(subscription, None), "subscription")


def _customer_of(subscription: Mapping[str, Any]) -> str | None:
    """The subscription's customer id, whether bare or expanded."""
    customer = subscription.get("customer")
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    return customer if isinstance(customer, str) else None
