"""``flask billing sync``: subscriptions as Stripe's API has them, through the pipeline."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import click
from flask.cli import with_appcontext

from ..actions.sync import sync_all, sync_customer, sync_features
from ..core.account import BillingAccount
from ..core.outcomes import EventStatus, Outcome
from ..errors import StoreUnavailableError, StripeServiceError
from ..redact import describe_error, describe_traceback
from ..state import BillingState, app_object, get_state
from ..stores.base import AccountListing
from .common import NotFound, StripeId, WritableFile, database_unavailable, reported_errors
from .reports import describe_features_sync, describe_sync, error_text, plural

logger = logging.getLogger("flask_stripe_billing")

T = TypeVar("T")


@click.command("sync")
@click.argument("user_ids", nargs=-1, type=StripeId("user_id"), metavar="[USER_ID]...")
@click.option("--all", "sync_all_", is_flag=True, help="Every subscription of the Stripe account.")
@click.option(
    "--starting-after",
    type=StripeId("subscription"),
    metavar="SUBSCRIPTION",
    help="With --all: resume after this subscription id.",
)
@click.option(
    "--checkpoint",
    type=WritableFile(),
    help="With --all: keep the resume point in this file; a rerun continues from it.",
)
@click.option(
    "--features/--no-features",
    default=None,
    help="Also read each account's active Stripe Entitlements "
    "(default: yes for USER_IDs; no for --all, where it costs one API call per account).",
)
@with_appcontext
def sync_command(
    user_ids: tuple[str, ...],
    sync_all_: bool,
    starting_after: str | None,
    checkpoint: Path | None,
    features: bool | None,
) -> None:
    """Apply subscriptions as Stripe's API has them now, by the webhook's rules.

    For webhooks missed before installation, lost after Stripe's retries, or
    an upgrade that adds the subscription table. USER_IDs: each account's
    customer's subscriptions and active entitlements. --all: every
    subscription of the Stripe account, a hundred per API call, each applied
    to the account of its customer (with --features, then each linked
    account's entitlements). Exit code 1 if any failed.
    """
    if bool(user_ids) == sync_all_:
        raise click.UsageError("Give user ids or --all (not both).")
    if (starting_after or checkpoint) and not sync_all_:
        raise click.UsageError("--starting-after and --checkpoint go with --all.")
    state = get_state()
    if state.stripe is None:
        raise click.ClickException(
            "STRIPE_API_KEY is not set: sync reads subscriptions from Stripe's API."
        )
    with_features = (not sync_all_) if features is None else features
    if state.entitlement_log is None:
        with_features = False
    failed = 0
    if sync_all_:
        failed = _sync_everything(state, starting_after, checkpoint)
        if with_features:
            failed += _sync_all_features(state)
    if user_ids:
        failed = _sync_accounts(state, user_ids, with_features)
    if failed:
        raise click.exceptions.Exit(1)


def _sync_accounts(state: BillingState, user_ids: tuple[str, ...], with_features: bool) -> int:
    """Sync the named accounts one by one; how many failed."""
    store = state.user_store
    with reported_errors(), state.event_log.transaction():
        found = {user_id: store.get(user_id) for user_id in dict.fromkeys(user_ids)}
    missing = [user_id for user_id, account in found.items() if account is None]
    if missing:
        raise NotFound(f"No user {', '.join(missing)}; nothing was synced.")
    failures = 0
    for account in found.values():
        assert account is not None
        lines, failed = _sync_account(state, account, with_features)
        for line in lines:
            click.echo(line)
        failures += failed
    click.echo(
        f"Synced {plural(len(found), 'account')}" + (f"; {failures} failed." if failures else ".")
    )
    return failures


def _sync_account(
    state: BillingState, account: BillingAccount, with_features: bool
) -> tuple[list[str], bool]:
    """Sync one account from Stripe; its report lines and whether it failed."""
    who = f"user {account.user_id}"
    customer_id = account.stripe_customer_id
    if not customer_id:
        return [f"{who}: no Stripe customer yet; nothing to sync."], False
    who = f"{who}, customer {customer_id}"
    outcomes, failure = _attempt(account, lambda: sync_customer(state, app_object(), customer_id))
    if outcomes is None:
        return [f"{who}: {failure}"], True
    lines = [f"{who}: {describe_sync(outcome)}" for outcome in outcomes]
    if not outcomes:
        lines = [f"{who}: no subscriptions at Stripe; nothing changed."]
    if not with_features:
        return lines, False
    features, failure = _attempt(account, lambda: sync_features(state, app_object(), customer_id))
    if failure is not None:
        return [*lines, f"{who}: features: {failure}"], True
    if features is not None:
        lines.append(f"{who}: {describe_features_sync(features)}")
    return lines, False


def _attempt(account: BillingAccount, step: Callable[[], T]) -> tuple[T | None, str | None]:
    """Run one sync step: its result, or why it failed in words (a refused key and a
    database outage end the command)."""
    try:
        return step(), None
    except StoreUnavailableError as error:
        raise database_unavailable(error) from None
    except StripeServiceError as error:
        _stop_if_key_refused(error)
        return None, error_text(error)
    except Exception as error:
        logger.error(
            "Stripe subscription sync failed\n%s",
            describe_traceback(error),
            extra={"user_id": account.user_id, "customer_id": account.stripe_customer_id},
        )
        return None, f"failed: {describe_error(error)}"


def _sync_all_features(state: BillingState) -> int:
    """Each linked account's active entitlements, one API call each; how many failed."""
    store = state.user_store
    if not isinstance(store, AccountListing):
        click.echo("This store cannot list its accounts; sync features by user id instead.")
        return 0
    with reported_errors(), state.event_log.transaction():
        accounts = store.accounts_with_customer()
    failures = 0
    for account in accounts:
        customer_id = account.stripe_customer_id
        assert customer_id is not None
        who = f"user {account.user_id}, customer {customer_id}"
        outcome, failure = _attempt(
            account, partial(sync_features, state, app_object(), customer_id)
        )
        if failure is not None:
            click.echo(f"{who}: {failure}")
            failures += 1
        elif outcome is not None and outcome.notices:
            click.echo(f"{who}: {describe_features_sync(outcome)}")
    failed = f"; {failures} failed" if failures else ""
    click.echo(f"Synced the features of {plural(len(accounts), 'account')}{failed}.")
    return failures


def _sync_everything(
    state: BillingState, starting_after: str | None, checkpoint: Path | None
) -> int:
    """Sync every subscription, page by page, saving the resume point; how many failed."""
    if starting_after is None and checkpoint is not None and checkpoint.exists():
        starting_after = checkpoint.read_text().strip() or None
        if starting_after:
            click.echo(f"Resuming after {starting_after} (from {checkpoint}).")
    counts: Counter[str] = Counter()
    cursor = starting_after
    pages = sync_all(state, app_object(), starting_after)
    try:
        with click.progressbar(pages, label=_sync_label(state), file=sys.stderr) as bar:
            for page in bar:
                for outcome in page.outcomes:
                    counts[_tally(outcome)] += 1
                cursor = page.cursor or cursor
                if checkpoint is not None and cursor:
                    checkpoint.write_text(cursor)
    except StoreUnavailableError as error:
        raise database_unavailable(error) from None
    except StripeServiceError as error:
        _stop_if_key_refused(error)
        where = f" --starting-after {cursor}" if cursor else ""
        raise click.ClickException(
            f"{error_text(error)}; resume with: flask billing sync --all{where}"
        ) from None
    if checkpoint is not None and checkpoint.exists():
        checkpoint.unlink()
    click.echo(
        f"Synced {plural(counts.total(), 'subscription')}: "
        f"{plural(counts['changed'], 'account')} changed, "
        f"{counts['unchanged']} unchanged, {counts['unmatched']} without an account here, "
        f"{counts['failed']} failed."
    )
    return counts["failed"]


def _sync_label(state: BillingState) -> str:
    """The progress line of ``sync --all``: what it does, and the pace it keeps to."""
    rate = state.require_stripe().pacer.rate
    return f"Syncing subscriptions, paced at {rate:g} requests/s (STRIPE_BILLING_API_RATE)"


def _tally(outcome: Outcome) -> str:
    """Which count a subscription's outcome goes to; changes and failures are shown."""
    if outcome.status == EventStatus.UNMATCHED:
        return "unmatched"
    subscription = outcome.event.subscription
    what = f"subscription {subscription.id}" if subscription else outcome.event.id
    if outcome.status == EventStatus.FAILED:
        error = describe_error(outcome.error) if outcome.error else "unknown error"
        click.echo(f"{what}: failed: {error}")
        return "failed"
    if outcome.before == outcome.after or outcome.after is None:
        return "unchanged"
    click.echo(f"user {outcome.after.user_id}: {describe_sync(outcome)}")
    return "changed"


def _stop_if_key_refused(error: StripeServiceError) -> None:
    """A refused API key ends the whole command, not one account."""
    if error.details.get("status") in (401, 403):
        raise click.ClickException(f"{error_text(error)}: Stripe refused the API key.") from None
