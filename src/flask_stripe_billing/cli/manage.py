"""``flask billing cancel / resume / change-plan``: an operator changes a user's subscription.

Each prints the account before and after. ``--dry-run`` reads the subscription
from Stripe and checks the change is allowed, but changes nothing at Stripe
(change-plan shows Stripe's invoice preview instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click
from flask.cli import with_appcontext

from ..actions import management
from ..actions.management import ChangePreview, Current, SubscriptionChange, preview_change
from ..core import changes
from ..core.account import BillingAccount
from ..state import BillingState, app_object, get_state
from .common import NotFound, StripeId, reported_errors
from .reports import plural

T = TypeVar("T")


DRY_RUN_HELP = "Check and show the change; change nothing at Stripe."


@click.command("cancel")
@click.argument("user_id", type=StripeId("user_id"))
@click.option("--now", "now_", is_flag=True, help="End now, not at the period end.")
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@with_appcontext
def cancel_command(user_id: str, now_: bool, dry_run: bool) -> None:
    """End USER_ID's subscription at the period end (or --now)."""
    state = _state()
    with reported_errors():
        if dry_run:
            current = _current(state, user_id)
            changes.check_cancel(current.facts, at_period_end=not now_)
            _dry_run(current, "end now" if now_ else "end at the period end")
            return
        change = _run(
            lambda: management.cancel(state, app_object(), user_id, at_period_end=not now_)
        )
    _report(change)


@click.command("resume")
@click.argument("user_id", type=StripeId("user_id"))
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@with_appcontext
def resume_command(user_id: str, dry_run: bool) -> None:
    """Undo the pending end of USER_ID's subscription."""
    state = _state()
    with reported_errors():
        if dry_run:
            current = _current(state, user_id)
            changes.check_resume(current.facts)
            _dry_run(current, "renew again (the pending end is undone)")
            return
        change = _run(lambda: management.resume(state, app_object(), user_id))
    _report(change)


@click.command("change-plan")
@click.argument("user_id", type=StripeId("user_id"))
@click.argument("price_id", type=StripeId("id"))
@click.option("--at-period-end", is_flag=True, help="At the period end, through a schedule.")
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP + " Shows Stripe's invoice preview.")
@with_appcontext
def change_plan_command(user_id: str, price_id: str, at_period_end: bool, dry_run: bool) -> None:
    """Move USER_ID's subscription to PRICE_ID (a configured price), now or at the period end."""
    state = _state()
    with reported_errors():
        if dry_run:
            preview = _run(
                lambda: preview_change(state, user_id, price_id, at_period_end=at_period_end)
            )
            _show_preview(state, user_id, preview)
            return
        change = _run(
            lambda: management.change_plan(
                state, app_object(), user_id, price_id, at_period_end=at_period_end
            )
        )
    _report(change)


def _state() -> BillingState:
    state = get_state()
    if state.stripe is None:
        raise click.ClickException("STRIPE_API_KEY is not set: subscriptions change at Stripe.")
    return state


def _current(state: BillingState, user_id: str) -> Current:
    return _run(lambda: management.current(state, user_id))


def _run(call: Callable[[], T]) -> T:
    """Call, turning an unknown user into exit code 2."""
    try:
        return call()
    except LookupError:
        raise NotFound("No such user; nothing was changed.") from None


def _dry_run(current: Current, what: str) -> None:
    click.echo(f"before: {describe(current.account)}")
    click.echo(f"Dry run: {current.facts.id} would {what}; nothing was changed.")


def _show_preview(state: BillingState, user_id: str, preview: ChangePreview) -> None:
    with state.event_log.transaction():
        account = state.account_of(user_id)
    click.echo(f"before: {describe(account)}")
    when = "at the period end" if preview.when == "period_end" else "now"
    click.echo(
        f"Dry run: {preview.subscription_id} would move to {preview.price_id} {when}; "
        f"Stripe's preview invoice: {_money(preview.amount_due, preview.currency)} due "
        f"({plural(len(preview.lines), 'line')}). Nothing was changed."
    )


def _report(change: SubscriptionChange) -> None:
    click.echo(f"before: {describe(change.before)}")
    click.echo(f"after:  {describe(change.after)}")
    if change.scheduled_price_id and change.effective_at:
        click.echo(
            f"{change.subscription_id} moves to {change.scheduled_price_id} on "
            f"{change.effective_at:%Y-%m-%d} (schedule {change.schedule_id})."
        )


def describe(account: BillingAccount) -> str:
    """One line: user, plan, status, subscription, seats, renewal or end."""
    parts = [
        f"user {account.user_id}",
        f"plan {account.plan}",
        f"status {account.subscription_status or '-'}",
        f"subscription {account.stripe_subscription_id or '-'}",
    ]
    if account.subscription_quantity is not None:
        parts.append(f"quantity {account.subscription_quantity}")
    if account.current_period_end is not None:
        verb = "ends" if account.cancel_at_period_end else "renews"
        parts.append(f"{verb} {account.current_period_end:%Y-%m-%d}")
    return ", ".join(parts)


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None:
        return "?"
    return f"{amount / 100:.2f} {(currency or '').upper()}".strip()
