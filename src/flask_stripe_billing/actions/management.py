"""Subscription changes from the host's own UI: ask Stripe, then apply its answer at once.

Each change reads the subscription from Stripe's API, checks that its state
allows the change (409 otherwise, :mod:`.management_rules`), makes the change
with a new idempotency key, and runs the subscription Stripe answered with
through the pipeline as a snapshot dated by Stripe's own clock (its ``Date``
header). The webhook that follows is then stale or says the same, and never
rolls the record back. When Stripe fails nothing is applied (502).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config import PAYMENT_BEHAVIOR_CHOICES, PRORATION_CHOICES
from ..core import changes, checkout
from ..core.account import BillingAccount
from ..core.events import (
    PendingUpdate,
    SubscriptionFacts,
    read_subscription,
    subscription_snapshot,
)
from ..errors import EventParseError, ValidationError
from ..pipeline.fetch import check_answer, stripe_time, unusable_answer
from ..pipeline.run import run
from ..state import BillingState
from ..stripe_api import API_VERSION, Answer

logger = logging.getLogger("flask_stripe_billing")

#: Who a change is for: the account itself or its user id.
Who = BillingAccount | str | int


@dataclass(frozen=True)
class SubscriptionChange:
    """What a change did: the account before the call and after it, and when it takes
    effect."""

    #: ``cancel``, ``cancel_now``, ``resume``, ``change_plan``, ``keep_plan`` (a scheduled
    #: change undone) or ``change_quantity``.
    action: str
    subscription_id: str
    before: BillingAccount
    after: BillingAccount
    #: When the change takes effect; None: it has already.
    effective_at: datetime | None = None
    #: A plan change at the period end: the price the subscription moves to then.
    scheduled_price_id: str | None = None
    #: The subscription schedule that carries a change at the period end.
    schedule_id: str | None = None
    #: A change Stripe holds until its payment goes through (``payment_behavior=
    #: "pending_if_incomplete"`` and a payment that needs the customer): the plan
    #: changes only once it is applied (``pending_update_applied``).
    pending_update: PendingUpdate | None = None


@dataclass(frozen=True)
class Current:
    """An account and its subscription as Stripe's API has it now: where a change starts."""

    account: BillingAccount
    subscription: dict[str, Any]
    facts: SubscriptionFacts


def current(state: BillingState, who: Who) -> Current:
    """The account (LookupError if unknown) and its subscription read from Stripe (409
    without one)."""
    with state.event_log.transaction():
        account = state.account_of(who)
    subscription_id = changes.subscription_id_of(account)
    answer = state.require_stripe().retrieve_subscription(subscription_id)
    subscription = check_answer(answer, "subscription", subscription_id)
    facts = read_subscription(subscription)
    changes.check_owner(account, facts)
    return Current(account, subscription, facts)


def portal_url(state: BillingState, account: BillingAccount, flow: str | None) -> str:
    """A Billing-portal session's URL for ``account``, opened on ``flow`` if given (the
    portal routes and ``billing.portal_url`` alike)."""
    gateway = state.require_stripe()
    return_url = checkout.portal_return_url(state.settings)
    params = checkout.portal_params(account, return_url, state.settings, flow)
    return gateway.create_portal_session(params)


def cancel(
    state: BillingState, app: Any, who: Who, *, at_period_end: bool = True
) -> SubscriptionChange:
    """End the subscription at the period end (default) or now."""
    now = current(state, who)
    changes.check_cancel(now.facts, at_period_end=at_period_end)
    gateway = state.require_stripe()
    if not at_period_end:
        answer = gateway.cancel_subscription(now.facts.id, changes.idempotency_key("cancel-now"))
        return _applied(state, app, now, "cancel_now", answer)
    changes.check_not_scheduled(now.subscription)
    answer = gateway.update_subscription(
        now.facts.id, changes.cancel_params(at_period_end=True), changes.idempotency_key("cancel")
    )
    return _applied(state, app, now, "cancel", answer, effective_at=now.facts.current_period_end)


def resume(state: BillingState, app: Any, who: Who) -> SubscriptionChange:
    """Undo a pending end: the subscription renews again."""
    now = current(state, who)
    changes.check_resume(now.facts)
    answer = state.require_stripe().update_subscription(
        now.facts.id, changes.resume_params(now.facts), changes.idempotency_key("resume")
    )
    return _applied(state, app, now, "resume", answer)


def change_plan(
    state: BillingState,
    app: Any,
    who: Who,
    price_id: str,
    *,
    at_period_end: bool = False,
    proration_behavior: str | None = None,
    payment_behavior: str | None = None,
) -> SubscriptionChange:
    """Move the subscription to a configured price now (prorated), or at the period end
    through a subscription schedule. The current price at the period end undoes a
    scheduled change (the schedule is released)."""
    proration = _proration(state, proration_behavior)
    payment = _payment_behavior(state, payment_behavior)
    now = current(state, who)
    price = changes.configured_price(price_id, state.settings)
    if at_period_end and changes.keeps_current_price(now.subscription, now.facts, price):
        return _keep_current_price(state, app, now)
    price = changes.check_price(price, state.settings, now.facts)
    item = changes.changed_item(now.subscription, state.settings)
    if not at_period_end:
        changes.check_not_scheduled(now.subscription)
        metered = changes.metered_changes(now.subscription, price, state.settings)
        params = changes.item_params(
            item, proration, price_id=price, metered=metered, payment_behavior=payment
        )
        answer = state.require_stripe().update_subscription(
            now.facts.id, params, changes.idempotency_key("change-plan")
        )
        return _applied(state, app, now, "change_plan", answer)
    return _schedule_change(state, app, now, changes.price_of(item) or "", price)


def _schedule_change(
    state: BillingState, app: Any, now: Current, old_price: str, new_price: str
) -> SubscriptionChange:
    """A change at the period end: the subscription's schedule (made from it if it has
    none) gets a next phase on the new price."""
    gateway = state.require_stripe()
    schedule_id = changes.schedule_id_of(now.subscription)
    if schedule_id is not None:
        made = gateway.retrieve_schedule(schedule_id)
    else:
        made = gateway.create_schedule(now.facts.id, changes.idempotency_key("schedule"))
    schedule = check_answer(made, "subscription_schedule", schedule_id)
    answer = gateway.update_schedule(
        str(schedule.get("id")),
        changes.schedule_params(schedule, old_price, new_price, state.settings),
        changes.idempotency_key("schedule-change"),
    )
    check_answer(answer, "subscription_schedule", str(schedule.get("id")))
    subscription = answer.object.get("subscription")
    if not isinstance(subscription, Mapping):  # not expanded: read it
        subscription = gateway.retrieve_subscription(now.facts.id).object
    return _applied(
        state,
        app,
        now,
        "change_plan",
        Answer(dict(subscription), answer.answered_at),
        effective_at=now.facts.current_period_end,
        scheduled_price_id=new_price,
        schedule_id=str(answer.object.get("id")),
    )


def _keep_current_price(state: BillingState, app: Any, now: Current) -> SubscriptionChange:
    """Undo a scheduled change: release the schedule; the subscription keeps its price."""
    gateway = state.require_stripe()
    schedule_id = changes.schedule_id_of(now.subscription) or ""
    released = gateway.release_schedule(schedule_id, changes.idempotency_key("release"))
    subscription = gateway.retrieve_subscription(now.facts.id).object
    answer = Answer(subscription, released.answered_at)
    return _applied(state, app, now, "keep_plan", answer, schedule_id=schedule_id)


def change_quantity(
    state: BillingState,
    app: Any,
    who: Who,
    quantity: int,
    *,
    proration_behavior: str | None = None,
    payment_behavior: str | None = None,
) -> SubscriptionChange:
    """Set the number of seats of the subscription's item, now (prorated), within
    STRIPE_SEATS_MIN..MAX."""
    proration = _proration(state, proration_behavior)
    payment = _payment_behavior(state, payment_behavior)
    seats = checkout.check_seats(quantity, state.settings)
    now = current(state, who)
    item = changes.changed_item(now.subscription, state.settings)
    seats = changes.check_quantity(seats, now.facts, item)
    changes.check_not_scheduled(now.subscription)
    answer = state.require_stripe().update_subscription(
        now.facts.id,
        changes.item_params(item, proration, quantity=seats, payment_behavior=payment),
        changes.idempotency_key("change-quantity"),
    )
    return _applied(state, app, now, "change_quantity", answer)


def _applied(
    state: BillingState, app: Any, now: Current, action: str, answer: Answer, **extra: Any
) -> SubscriptionChange:
    """Run Stripe's answer through the pipeline now, dated by Stripe's clock, once it is
    the subscription changed, of the account's customer (a 502 otherwise: nothing applied)."""
    customer = now.account.stripe_customer_id
    subscription = check_answer(answer, "subscription", now.facts.id, customer)
    read_at = stripe_time(answer.answered_at)
    try:
        event = subscription_snapshot(subscription, read_at, API_VERSION)
    except EventParseError as error:
        raise unusable_answer("subscription", str(error)) from None
    outcome = run(state, app, event, None)
    after = outcome.after
    if after is None:
        with state.event_log.transaction():
            after = state.account_of(now.account.user_id)
    logger.info(
        "Stripe subscription changed",
        extra={
            "action": action,
            "user_id": now.account.user_id,
            "subscription_id": now.facts.id,
            "status": outcome.status,
        },
    )
    pending = read_subscription(subscription).pending_update
    return SubscriptionChange(
        action, now.facts.id, now.account, after, pending_update=pending, **extra
    )


def _proration(state: BillingState, proration_behavior: str | None) -> str:
    """The caller's proration behaviour, else STRIPE_PRORATION_BEHAVIOR."""
    if proration_behavior is None:
        return state.settings.proration_behavior
    return _one_of(proration_behavior, PRORATION_CHOICES, "proration_behavior")


def _payment_behavior(state: BillingState, payment_behavior: str | None) -> str | None:
    """The caller's payment behaviour, else STRIPE_BILLING_PAYMENT_BEHAVIOR (None: Stripe's)."""
    if payment_behavior is None:
        return state.settings.payment_behavior
    return _one_of(payment_behavior, PAYMENT_BEHAVIOR_CHOICES, "payment_behavior")


def _one_of(value: str, choices: tuple[str, ...], field: str) -> str:
    """``value`` when it is one of Stripe's ``choices`` for ``field``; a 400 otherwise."""
    if value not in choices:
        raise ValidationError(f"{field} must be one of {', '.join(choices)}", {"field": field})
    return value


@dataclass(frozen=True)
class PreviewLine:
    """One line of a previewed invoice (amount in the currency's smallest unit)."""

    description: str | None
    amount: int
    #: Whether the line is a proration (credit or charge for the rest of the period).
    proration: bool


@dataclass(frozen=True)
class ChangePreview:
    """The invoice a plan change would make, from Stripe's preview; nothing changed yet.

    A change now with ``create_prorations`` shows the next invoice (the prorations
    and the next period); with ``always_invoice`` the invoice made at once; a
    change at the period end shows the first invoice at the new price.
    """

    subscription_id: str
    price_id: str
    #: ``now`` or ``period_end``.
    when: str
    amount_due: int | None
    currency: str | None
    subtotal: int | None
    total: int | None
    lines: tuple[PreviewLine, ...]


def preview_change(
    state: BillingState, who: Who, price_id: str, *, at_period_end: bool = False
) -> ChangePreview:
    """What moving to ``price_id`` would invoice (Stripe's ``create_preview``)."""
    now = current(state, who)
    price = changes.check_price(price_id, state.settings, now.facts)
    item = changes.changed_item(now.subscription, state.settings)
    proration = "none" if at_period_end else state.settings.proration_behavior
    invoice = state.require_stripe().preview_invoice(
        changes.preview_params(now.subscription, item, price, proration, state.settings)
    )
    return ChangePreview(
        subscription_id=now.facts.id,
        price_id=price,
        when="period_end" if at_period_end else "now",
        amount_due=_int(invoice.get("amount_due")),
        currency=_text(invoice.get("currency")),
        subtotal=_int(invoice.get("subtotal")),
        total=_int(invoice.get("total")),
        lines=tuple(_line(line) for line in _data(invoice.get("lines"))),
    )


def _line(line: Mapping[str, Any]) -> PreviewLine:
    """A preview line; ``proration`` sits under ``parent`` since the 2025-03-31 API."""
    parent = line.get("parent")
    details = parent.get("subscription_item_details") if isinstance(parent, Mapping) else None
    proration = details.get("proration") if isinstance(details, Mapping) else line.get("proration")
    return PreviewLine(
        _text(line.get("description")), _int(line.get("amount")) or 0, bool(proration)
    )


def _data(value: Any) -> list[Mapping[str, Any]]:
    data = value.get("data") if isinstance(value, Mapping) else None
    return [item for item in data or [] if isinstance(item, Mapping)]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
