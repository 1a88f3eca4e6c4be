"""The ``flask billing`` commands: list, replay and prune stored events; sync from Stripe.

The developer commands (trigger, check, create-webhook-endpoint) live in ``cli_dev``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .account import BillingAccount
from .clock import utcnow
from .errors import BillingError, StripeServiceError
from .extension import get_state
from .redact import describe_error, describe_traceback, redact
from .reports import (
    TIME_FORMAT,
    describe_replay,
    describe_sync,
    error_text,
    event_table,
    plural,
)
from .stores.base import (
    FINAL_STATUSES,
    RETRYABLE_STATUSES,
    EventStatus,
    StoreUnavailableError,
)
from .sync import sync_customer

if TYPE_CHECKING:
    from .extension import StripeBilling

logger = logging.getLogger("flask_stripe_billing")

GROUP_NAME = "billing"
ALL_STATUSES = (
    EventStatus.RECEIVED,
    EventStatus.PROCESSED,
    EventStatus.IGNORED,
    EventStatus.STALE,
    EventStatus.UNMATCHED,
    EventStatus.FAILED,
)
DEFAULT_LIMIT = 50


class NotFound(click.ClickException):
    """An event or user named on the command line does not exist (exit code 2)."""

    exit_code = 2


def register_commands(app: Flask, billing: StripeBilling) -> None:
    """Add ``flask billing`` to ``app``, once; a host's own ``billing`` command wins."""
    if GROUP_NAME not in app.cli.commands:
        app.cli.add_command(create_cli(billing))


def create_cli(billing: StripeBilling) -> AppGroup:
    """The ``billing`` command group; replays go through ``billing.process_event``."""
    from .cli_dev import add_dev_commands  # here: cli_dev imports this module

    group = AppGroup(
        GROUP_NAME,
        help="Stripe billing: the webhook event log, replays, sync from Stripe, "
        "offline test events and a configuration check.",
    )

    @group.command("events")
    @click.option(
        "--status",
        "statuses",
        multiple=True,
        type=click.Choice(ALL_STATUSES),
        help="Only events with this status (repeatable).",
    )
    @click.option("--type", "event_type", metavar="TYPE", help="Only events of this type.")
    @click.option("--customer", "customer_id", metavar="CUSTOMER", help="Only this customer's.")
    @click.option(
        "--limit",
        type=click.IntRange(min=0),
        default=DEFAULT_LIMIT,
        show_default=True,
        help="At most this many, newest first (0: all).",
    )
    def events_command(
        statuses: tuple[str, ...], event_type: str | None, customer_id: str | None, limit: int
    ) -> None:
        """List stored webhook events, newest received first."""
        log = get_state().event_log
        with reported_errors(), log.transaction():
            records = log.list_events(
                statuses=statuses or None,
                event_type=event_type,
                customer_id=customer_id,
                limit=limit + 1 if limit else None,
            )
        shown = records[:limit] if limit else records
        if not shown:
            click.echo("No stored events match.")
            return
        click.echo(event_table(shown))
        if len(records) > len(shown):
            click.echo(f"(the newest {limit} shown; --limit 0 lists all)")

    @group.command("replay")
    @click.argument("event_ids", nargs=-1, metavar="[EVENT_ID]...")
    @click.option(
        "--all", "replay_all", is_flag=True, help="Every failed, unmatched or received event."
    )
    @click.pass_context
    def replay_command(ctx: click.Context, event_ids: tuple[str, ...], replay_all: bool) -> None:
        """Process failed, unmatched or received events again.

        Oldest first, by Stripe's creation time (a newer event applied first
        would make older ones stale). An event already finished is reported as
        a duplicate and changes nothing. Exit code 1 if any is still failed or
        unmatched afterwards, 2 for an id that is not stored (then nothing is
        replayed).
        """
        if bool(event_ids) == replay_all:
            raise click.UsageError("Give event ids or --all (not both).")
        log = get_state().event_log
        with reported_errors(), log.transaction():
            if replay_all:
                records = log.list_events(statuses=RETRYABLE_STATUSES, oldest_first=True)
            else:
                found = {event_id: log.get_event(event_id) for event_id in dict.fromkeys(event_ids)}
                missing = [event_id for event_id, record in found.items() if record is None]
                if missing:
                    raise NotFound(f"No stored event {', '.join(missing)}; nothing was replayed.")
                records = sorted(
                    (r for r in found.values() if r is not None),
                    key=lambda r: (r.created, r.received_at, r.id),
                )
        if not records:
            click.echo("No failed, unmatched or received events to replay.")
            return
        unresolved = 0
        for record in records:
            try:
                outcome = billing.process_event(record.id)
            except (BillingError, LookupError) as error:
                click.echo(f"{record.id} {record.type}: not replayed: {error_text(error)}")
                unresolved += 1
                continue
            click.echo(f"{record.id} {record.type}: {describe_replay(record, outcome)}")
            if outcome.status in (EventStatus.FAILED, EventStatus.UNMATCHED):
                unresolved += 1
        click.echo(
            f"Replayed {plural(len(records), 'event')}: "
            + (f"{unresolved} still failed or unmatched." if unresolved else "all done.")
        )
        if unresolved:
            ctx.exit(1)

    @group.command("sync")
    @click.argument("user_ids", nargs=-1, metavar="[USER_ID]...")
    @click.option(
        "--all", "sync_all", is_flag=True, help="Every account linked to a Stripe customer."
    )
    @click.pass_context
    def sync_command(ctx: click.Context, user_ids: tuple[str, ...], sync_all: bool) -> None:
        """Apply accounts' current subscriptions as Stripe's API has them.

        For webhooks missed before installation or lost after Stripe's retries.
        Each account gets its customer's current subscription (the newest
        active, trialing or past_due one; else the newest of any status),
        applied by the same rules as a webhook. Exit code 1 if any failed.
        """
        if bool(user_ids) == sync_all:
            raise click.UsageError("Give user ids or --all (not both).")
        state = get_state()
        if state.stripe is None:
            raise click.ClickException(
                "STRIPE_API_KEY is not set: sync reads subscriptions from Stripe's API."
            )
        store = state.user_store
        with reported_errors(), state.event_log.transaction():
            if sync_all:
                listed = getattr(store, "accounts_with_customer", None)
                if listed is None:
                    raise click.ClickException(
                        f"{type(store).__name__} cannot list its accounts "
                        "(it has no accounts_with_customer()); name the user ids instead."
                    )
                accounts: list[BillingAccount] = list(listed())
            else:
                found = {user_id: store.get(user_id) for user_id in dict.fromkeys(user_ids)}
                missing = [user_id for user_id, account in found.items() if account is None]
                if missing:
                    raise NotFound(f"No user {', '.join(missing)}; nothing was synced.")
                accounts = [a for a in found.values() if a is not None]
        if not accounts:
            click.echo("No accounts are linked to a Stripe customer.")
            return
        failures = 0
        for account in accounts:
            line, failed = sync_account(account)
            click.echo(line)
            failures += failed
        click.echo(
            f"Synced {plural(len(accounts), 'account')}"
            + (f"; {failures} failed." if failures else ".")
        )
        if failures:
            ctx.exit(1)

    @group.command("prune")
    @click.option(
        "--older-than",
        "days",
        type=click.IntRange(min=1),
        required=True,
        metavar="DAYS",
        help="Delete events received more than DAYS days ago.",
    )
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def prune_command(days: int, yes: bool) -> None:
        """Delete old processed, ignored and stale events.

        Failed, unmatched and received events are kept whatever their age: they
        still need a replay.
        """
        before = utcnow() - timedelta(days=days)
        if not yes:
            click.confirm(
                f"Delete processed, ignored and stale events received before "
                f"{before:{TIME_FORMAT}} UTC?",
                abort=True,
            )
        log = get_state().event_log
        with reported_errors(), log.transaction():
            deleted = log.delete_events(before=before, statuses=FINAL_STATUSES)
        click.echo(
            f"Deleted {plural(deleted, 'event')} received before {before:{TIME_FORMAT}} UTC "
            "(failed, unmatched and received events are kept)."
        )

    add_dev_commands(group)
    return group


def sync_account(account: BillingAccount) -> tuple[str, bool]:
    """Sync one account from Stripe; its report line and whether it failed."""
    who = f"user {account.user_id}"
    customer_id = account.stripe_customer_id
    if not customer_id:
        return f"{who}: no Stripe customer yet; nothing to sync.", False
    who = f"{who}, customer {customer_id}"
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        outcome = sync_customer(get_state(), app, customer_id, account.stripe_subscription_id)
    except StoreUnavailableError as error:
        raise database_unavailable(error) from None
    except StripeServiceError as error:
        if error.details.get("status") in (401, 403):
            raise click.ClickException(
                f"{error_text(error)}: Stripe refused the API key."
            ) from None
        return f"{who}: {error_text(error)}", True
    except Exception as error:
        logger.error(
            "Stripe subscription sync failed\n%s",
            describe_traceback(error),
            extra={"user_id": account.user_id, "customer_id": customer_id},
        )
        return f"{who}: failed: {describe_error(error)}", True
    if outcome is None:
        return f"{who}: no subscriptions at Stripe; nothing changed.", False
    return f"{who}: {describe_sync(outcome)}", False


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a store or Stripe failure into a one-line CLI error (exit code 1)."""
    try:
        yield
    except StoreUnavailableError as error:
        raise database_unavailable(error) from None
    except BillingError as error:
        raise click.ClickException(error_text(error)) from None


def database_unavailable(error: StoreUnavailableError) -> click.ClickException:
    """The CLI error for a store that cannot be reached."""
    return click.ClickException(f"The database is unavailable: {redact(str(error))}")
