"""The pipeline for one event: record → decide → apply → mark → commit → signal.

One function, :func:`run`, carries every event through it, whoever calls: the
webhook view (after :func:`receive` verifies and parses the delivery), replays
and dispatch workers (:func:`run_stored`), the success-page sync and
reconciliation from Stripe's API (snapshots, not logged). Recording, applying
and marking are one transaction, so an event applies exactly once even when it
arrives twice at the same moment on two workers.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from .. import signals
from .._util import utcnow
from ..core import rules
from ..core.account import BillingAccount, SubscriptionRecord
from ..core.entitlements import SUMMARY_EVENT, EntitlementRecord
from ..core.events import StripeEvent, keyed_by_customer_account
from ..core.outcomes import DUPLICATE, RETRYABLE_STATUSES, EventStatus, Outcome, ThinOrigin
from ..core.purchases import PurchaseRecord, is_purchase_event, not_a_purchase_reason, purchase_key
from ..core.rules import AccountMatch, Decision
from ..errors import BillingError, EventNotRecordedError, StoreUnavailableError, StripeServiceError
from ..redact import describe_error, describe_traceback
from ..state import BillingState
from .fetch import complete_summary, is_truncated, refresh_subscription
from .references import reference_reader

logger = logging.getLogger("flask_stripe_billing")


def not_recorded(event: StripeEvent, reason: str) -> EventNotRecordedError:
    """Log why the event could not be stored; the error to raise (5xx, Stripe retries)."""
    logger.error(
        "Stripe webhook could not be recorded: %s",
        reason,
        extra={"event_id": event.id, "event_type": event.type},
    )
    return EventNotRecordedError()


def run(
    state: BillingState,
    app: Any,
    event: StripeEvent,
    payload: str | None,
    *,
    thin: ThinOrigin | None = None,
) -> Outcome:
    """Carry one event through the pipeline and send its signals after the commit.

    ``payload`` is the verified body, recorded in the event log. None marks a
    snapshot read from Stripe's API: it is decided and applied the same way but
    not logged, and a failure is raised rather than recorded.

    ``thin`` marks an ``event`` made from a thin notification's fetched object
    (the re-fetch mode does not read it again): the log records the notification,
    and its snapshot twin is claimed in the same transaction.

    Raises :class:`EventNotRecordedError` only when a delivered event could not
    be stored, so that Stripe delivers it again; :class:`SchemaOutdatedError` (one of them) while
    the database lacks a table or column of this release, before anything is written.
    """
    state.schema.require()
    foreign = rules.foreign_account_reason(event.account, state.settings)
    if foreign is not None and payload is not None:
        return ignore(state, app, event, payload, foreign)
    if state.settings.refetch_subscriptions and payload is not None and thin is None:
        try:
            event = refresh_subscription(state, event)
        except StripeServiceError as error:
            # Kept for replay like a thin fetch that failed: a 5xx would only have Stripe
            # deliver it again into the same rate limit or outage.
            assert event.subscription is not None
            reason = f"could not re-fetch subscription {event.subscription.id}"
            outcome = keep_received(state, event, payload, reason, error)
            announce(app, outcome)
            return outcome
    if state.settings.match_customer_account:
        event, thin = keyed_by_account(event, thin)
    logged = thin.logged if thin is not None else event
    if is_truncated(event) and not (payload is not None and is_finished(state, logged.id)):
        try:
            event = complete_summary(state.stripe, event)
        except BillingError as error:
            if payload is None:
                raise
            assert event.entitlements is not None
            customer = event.entitlements.customer_id
            reason = f"could not list the active entitlements of {customer}"
            outcome = keep_received(state, logged, payload, reason, error)
            announce(app, outcome)
            return outcome
    try:
        with state.event_log.transaction():
            outcome = _process(state, event, payload, thin)
    except StoreUnavailableError:
        if payload is None:
            raise
        raise not_recorded(event, "database unavailable") from None
    except Exception as error:
        if payload is None:
            raise
        # Not logger.exception: the raw traceback may quote a key or signing secret.
        logger.error(
            "Stripe webhook processing failed\n%s",
            describe_traceback(error),
            extra={"event_id": event.id, "event_type": event.type},
        )
        reason = describe_error(error)
        outcome = record_unapplied(state, logged, payload, EventStatus.FAILED, reason, error)
    announce(app, outcome, logged=payload is not None)
    return outcome


def is_finished(state: BillingState, event_id: str) -> bool:
    """Whether the event log holds the event as done with (so no API call is made for it)."""
    with state.event_log.transaction():
        stored = state.event_log.get_event(event_id)
    return stored is not None and stored.status not in RETRYABLE_STATUSES


def find_account(
    event: StripeEvent, state: BillingState, by_customer: BillingAccount | None
) -> AccountMatch:
    """The account of the event's customer (``by_customer``, already row-locked), else the
    one the event names itself (a signed reference, when the app requires them), row-locked."""
    if by_customer is not None:
        return AccountMatch(by_customer, by_customer=True)
    settings = state.settings
    user_id, refused = rules.named_user_id(
        event, reference_reader(settings), signed_only=settings.signed_references
    )
    account = state.user_store.get(user_id, lock=True) if user_id else None
    return AccountMatch(account, by_customer=False, refused=refused)


def ignore(state: BillingState, app: Any, event: StripeEvent, payload: str, reason: str) -> Outcome:
    """Record the event ``ignored`` with why (from a connected account the app does not
    apply), apply nothing, and send its signals."""
    outcome = record_unapplied(state, event, payload, EventStatus.IGNORED, reason)
    announce(app, outcome)
    return outcome


def keyed_by_account(
    event: StripeEvent, thin: ThinOrigin | None
) -> tuple[StripeEvent, ThinOrigin | None]:
    """The event matched by its Accounts v2 ``customer_account`` (and a thin origin's rows
    logged under it), for ``STRIPE_MATCH_CUSTOMER_ACCOUNT``."""
    keyed = keyed_by_customer_account(event)
    if thin is None or keyed is event:
        return keyed, thin
    customer = keyed.customer_id
    twin = replace(thin.twin, customer_id=customer) if thin.twin is not None else None
    return keyed, ThinOrigin(replace(thin.logged, customer_id=customer), twin)


def announce(app: Any, outcome: Outcome, *, logged: bool = True) -> None:
    """Send the signals for what happened; call only after the commit."""
    event = outcome.event
    if logged:
        signals.send_safely(signals.webhook_received, app, event=event, status=outcome.status)
    if outcome.status == EventStatus.FAILED:
        signals.send_safely(signals.webhook_failed, app, event=event, error=outcome.error)
    for notice in outcome.notices:
        if not logged and notice.signal == "customer_not_found":
            continue  # a snapshot of a subscription no account has: not news
        signal = getattr(signals, notice.signal)
        signals.send_safely(signal, app, **notice.kwargs, event=event)


def _process(
    state: BillingState, event: StripeEvent, payload: str | None, thin: ThinOrigin | None = None
) -> Outcome:
    """Inside the transaction: record, find the account and its records, decide, write."""
    steps = state.steps
    handled = rules.is_handled(event.type)
    twin = thin.twin if thin is not None and payload is not None else None
    logged = thin.logged if thin is not None else event
    if twin is not None and payload is not None:
        settled = claim_twin(state, logged, twin, payload)
        if settled is not None:
            return replace(settled, event=event)
    if payload is not None:
        record, locked = steps.record_and_lock(logged, payload, lock=handled)
        if record.status not in RETRYABLE_STATUSES:
            if twin is not None:
                state.event_log.finish_event(twin.id, record.status, user_id=record.user_id)
            return Outcome(event, DUPLICATE)
    elif handled and event.customer_id:
        locked = state.user_store.get_by_customer_id(event.customer_id, lock=True)
    else:
        locked = None
    if handled:
        match = find_account(event, state, locked)
        account = match.account
        records: list[SubscriptionRecord] = []
        if account is not None and event.type in rules.RULES:  # lifecycle events change none
            records = state.subscription_log.subscriptions_of(account.user_id)
        entitlements = lock_entitlements(state, event) or waiting_entitlements(state, event, match)
        purchase, match = lock_purchase(state, event, match)
        if event.type == SUMMARY_EVENT and state.entitlement_log is None:
            decision = Decision(EventStatus.IGNORED, reason="the store keeps no entitlements")
        elif state.purchase_log is None and is_purchase_event(event) and not event.checkout_session:
            decision = Decision(EventStatus.IGNORED, reason="the store keeps no purchases")
        else:
            decision = rules.decide(
                event,
                match,
                records,
                state.settings,
                utcnow(),
                entitlements=entitlements,
                purchase=purchase,
            )
    else:
        decision = Decision(EventStatus.IGNORED)
    if decision.entitlements is not None:
        assert state.entitlement_log is not None
        state.entitlement_log.save_entitlements(decision.entitlements)
    if decision.purchase is not None:
        assert state.purchase_log is not None
        state.purchase_log.save_purchase(decision.purchase)
    after = steps.write_outcome(
        event_id=event.id if payload is not None else None,
        status=decision.status,
        account=decision.account,
        changes=decision.account_changes,
        records=decision.records,
        error=decision.reason,
    )
    if twin is not None:
        user_id = decision.account.user_id if decision.account is not None else None
        note = f"applied through thin event {event.id}" if decision.reason is None else None
        error = note or decision.reason
        state.event_log.finish_event(twin.id, decision.status, user_id=user_id, error=error)
    return Outcome(
        event,
        decision.status,
        before=decision.account,
        after=after,
        reason=decision.reason,
        notices=decision.notices,
    )


def claim_twin(
    state: BillingState, event: StripeEvent, twin: StripeEvent, payload: str
) -> Outcome | None:
    """Lock the row of the thin notification's snapshot twin (before the account, as the
    snapshot's own delivery does); if the twin was applied already, the notification is done.

    Returns the notification's outcome when it is done, None when it is to be applied.
    """
    log = state.event_log
    claimed = log.record_event(twin, payload)
    if claimed.status in RETRYABLE_STATUSES:
        return None
    log.record_event(event, payload)
    note = f"applied through snapshot event {twin.id}"
    log.finish_event(event.id, claimed.status, user_id=claimed.user_id, error=note)
    return Outcome(event, DUPLICATE, reason=note)


def keep_received(
    state: BillingState, event: StripeEvent, payload: str, reason: str, error: BillingError
) -> Outcome:
    """Record the event ``received`` with why Stripe's API could not be read for it, for
    ``flask billing replay`` (or Stripe's next delivery) to try again."""
    reason = f"{reason}: {describe_error(error)}"
    logger.warning(
        "Stripe event kept for replay: %s",
        reason,
        extra={"event_id": event.id, "event_type": event.type},
    )
    return record_unapplied(state, event, payload, EventStatus.RECEIVED, reason, error)


def record_unapplied(
    state: BillingState,
    event: StripeEvent,
    payload: str,
    status: str,
    reason: str,
    error: Exception | None = None,
) -> Outcome:
    """Record the event with ``status`` and why, applying nothing (a finished one is a
    duplicate, left as it is)."""
    log = state.event_log
    try:
        with log.transaction():
            recorded = log.record_event(event, payload)
            if recorded.status not in RETRYABLE_STATUSES:
                return Outcome(event, DUPLICATE)
            log.finish_event(event.id, status, error=reason)
    except Exception as failure:
        raise not_recorded(event, describe_traceback(failure)) from None
    return Outcome(event, status, error=error, reason=reason)


def lock_purchase(
    state: BillingState, event: StripeEvent, match: AccountMatch
) -> tuple[PurchaseRecord | None, AccountMatch]:
    """The purchase a payment-mode session, refund or dispute event is about, row-locked
    after the account (a blank one is made first when new, so two first events of one
    payment serialise), and the account the event is decided for.

    A session's account is the one it names; it is locked only when that account can
    take it (else an unstored blank record goes to the rules, which keep the event
    ``unmatched``). A refund's or dispute's account is the purchase's own, read once the
    purchase is locked. None: not a purchase's event, or the store keeps no purchases.
    """
    log = state.purchase_log
    if log is None or not is_purchase_event(event) or not_a_purchase_reason(event):
        return None, match
    key = purchase_key(event)
    assert key is not None
    if event.checkout_session is not None:
        if match.account is None or rules.unmatched_reason(event, match) is not None:
            return PurchaseRecord(key), match
        return log.lock_purchase(key), match
    record = log.lock_purchase(key)
    owner = state.user_store.get(record.user_id) if record.user_id is not None else None
    return record, AccountMatch(owner, by_customer=True)


def lock_entitlements(state: BillingState, event: StripeEvent) -> EntitlementRecord | None:
    """An entitlement summary's customer record, row-locked after the account (as every
    writer of it locks them); None for any other event."""
    summary = event.entitlements
    if event.type != SUMMARY_EVENT or summary is None or state.entitlement_log is None:
        return None
    return state.entitlement_log.lock_entitlements(summary.customer_id)


def waiting_entitlements(
    state: BillingState, event: StripeEvent, match: AccountMatch
) -> EntitlementRecord | None:
    """The entitlements kept for the customer an event is about to link to its account
    (a summary that came first); None when the event links no customer."""
    account = match.account
    if (
        state.entitlement_log is None
        or account is None
        or match.by_customer
        or not event.customer_id
        or account.stripe_customer_id is not None
    ):
        return None
    return state.entitlement_log.entitlements_of(event.customer_id)
