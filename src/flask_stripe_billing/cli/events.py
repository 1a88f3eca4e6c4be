"""How long the event log keeps each status: the policy ``flask billing prune`` applies.

Finished events (processed, ignored, stale) go after the days asked for. Events
still waiting for a replay (unmatched, failed, received) are kept longer, by
default 90 days, but not forever: past that, Stripe's own retries are long
over and the event can only be read in the Dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import click
from flask.cli import with_appcontext

from .._util import utcnow
from ..actions.link import link_customer
from ..core.limits import INT64_LIMIT
from ..core.outcomes import FINAL_STATUSES, RETRYABLE_STATUSES, EventStatus
from ..errors import BillingError
from ..pipeline import intake
from ..state import app_object, get_state
from .common import Days, NotFound, StripeId, reported_errors
from .reports import TIME_FORMAT, describe_replay, error_text, event_table, plural

#: Days an unresolved event (unmatched, failed, received) is kept by default.
DEFAULT_UNRESOLVED_DAYS = 90


def retention_days(older_than: int, keep: Mapping[str, int]) -> dict[str, int]:
    """Days to keep each status: ``older_than`` for finished events, at least
    :data:`DEFAULT_UNRESOLVED_DAYS` for unresolved ones, then ``keep`` per status."""
    unresolved = max(DEFAULT_UNRESOLVED_DAYS, older_than)
    days = {status: older_than for status in FINAL_STATUSES}
    days |= {status: unresolved for status in RETRYABLE_STATUSES}
    unknown = set(keep) - set(days)
    if unknown:
        raise ValueError(f"no event status {', '.join(sorted(unknown))}")
    return dict(sorted((days | dict(keep)).items()))


ALL_STATUSES = (
    EventStatus.RECEIVED,
    EventStatus.PROCESSED,
    EventStatus.IGNORED,
    EventStatus.STALE,
    EventStatus.UNMATCHED,
    EventStatus.FAILED,
)


DEFAULT_LIMIT = 50


@click.command("events")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(ALL_STATUSES),
    help="Only events with this status (repeatable).",
)
@click.option(
    "--type", "event_type", type=StripeId("type"), metavar="TYPE", help="Only events of this type."
)
@click.option(
    "--customer",
    "customer_id",
    type=StripeId("customer"),
    metavar="CUSTOMER",
    help="Only this customer's.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0, max=INT64_LIMIT - 2),  # limit + 1 is asked of the database
    default=DEFAULT_LIMIT,
    show_default=True,
    help="At most this many, newest first (0: all).",
)
@with_appcontext
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


@click.command("replay")
@click.argument("event_ids", nargs=-1, type=StripeId("id"), metavar="[EVENT_ID]...")
@click.option(
    "--all", "replay_all", is_flag=True, help="Every failed, unmatched or received event."
)
@with_appcontext
def replay_command(event_ids: tuple[str, ...], replay_all: bool) -> None:
    """Process failed, unmatched or received events again.

    Oldest first, by Stripe's creation time. An event already finished is
    reported as a duplicate and changes nothing. An event still unmatched is
    skipped, with the reason (it waits for `flask billing link`, or for the
    prune policy). Exit code 1 if any is still failed (or could not be
    replayed) afterwards, 2 for an id that is not stored (then nothing is
    replayed); so a daily `replay --all` exits 0 once nothing can be done.
    """
    if bool(event_ids) == replay_all:
        raise click.UsageError("Give event ids or --all (not both).")
    state = get_state()
    log = state.event_log
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
    failed = skipped = 0
    for record in records:
        try:
            outcome = intake.run_stored(state, app_object(), record.id)
        except (BillingError, LookupError) as error:
            click.echo(f"{record.id} {record.type}: not replayed: {error_text(error)}")
            failed += 1
            continue
        click.echo(f"{record.id} {record.type}: {describe_replay(record, outcome)}")
        if outcome.status == EventStatus.FAILED:
            failed += 1
        elif outcome.status == EventStatus.UNMATCHED:
            skipped += 1
    done = len(records) - failed - skipped
    click.echo(
        f"Replayed {plural(len(records), 'event')}: {done} done, "
        f"{skipped} skipped (still unmatched), {failed} still failed."
    )
    if failed:
        raise click.exceptions.Exit(1)


@click.command("link")
@click.argument("user_id", type=StripeId("user_id"), metavar="USER_ID")
@click.argument("customer_id", type=StripeId("customer"), metavar="CUSTOMER")
@with_appcontext
def link_command(user_id: str, customer_id: str) -> None:
    """Link an account to a Stripe customer by hand, replacing any customer it had.

    Events never re-link an account that has another customer (a Payment Link
    lets the payer choose whom it names); they wait as unmatched. After
    checking who the customer really is, link here, then run `flask billing
    replay --all` to apply what waited.
    """
    try:
        with reported_errors():
            linked = link_customer(get_state(), user_id, customer_id)
    except LookupError as error:
        raise NotFound(error_text(error)) from None
    account, previous, waiting = linked.account, linked.previous_customer_id, linked.waiting
    click.echo(
        f"Linked user {account.user_id} to customer {customer_id} (was {previous or 'none'})."
    )
    if waiting:
        click.echo(
            f"{plural(len(waiting), 'unmatched event')} of {customer_id} wait: "
            "run `flask billing replay --all` to apply them."
        )


def parse_keep(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, int]:
    """``--keep unmatched=180`` (repeatable) as {status: days}, the days as --older-than's."""
    keep = {}
    for value in values:
        status, _, days = value.partition("=")
        if status not in ALL_STATUSES or not days.isdigit() or int(days) < 1:
            raise click.BadParameter(
                f"{value!r}: give STATUS=DAYS, a status of {', '.join(ALL_STATUSES)} "
                "and a whole number of days from 1"
            )
        keep[status] = Days().convert(days, param, ctx)
    return keep


@click.command("prune")
@click.option(
    "--older-than",
    "days",
    type=Days(),
    required=True,
    metavar="DAYS",
    help="Delete processed, ignored and stale events received more than DAYS days ago.",
)
@click.option(
    "--keep",
    multiple=True,
    metavar="STATUS=DAYS",
    callback=parse_keep,
    help="Keep events of STATUS this many days instead (repeatable); unmatched, failed "
    f"and received ones are kept {DEFAULT_UNRESOLVED_DAYS} days (at least DAYS) unless told.",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def prune_command(days: int, keep: dict[str, int], dry_run: bool, yes: bool) -> None:
    """Delete old events from the log, each status after its own number of days.

    Finished events (processed, ignored, stale) go after --older-than DAYS;
    events still waiting for a replay (unmatched, failed, received) are kept
    longer, but not forever. For a daily cron line, see the operations docs.
    """
    now = utcnow()
    cutoffs = {
        status: now - timedelta(days=kept) for status, kept in retention_days(days, keep).items()
    }
    log = get_state().event_log
    with reported_errors(), log.transaction():
        counts = {
            status: log.count_events(before=before, statuses=[status])
            for status, before in cutoffs.items()
        }
    verb = "Would delete" if dry_run else "Deleting"
    for status, before in cutoffs.items():
        click.echo(
            f"{verb} {plural(counts[status], status + ' event')} received before "
            f"{before:{TIME_FORMAT}} UTC ({(now - before).days} days)."
        )
    total = sum(counts.values())
    if dry_run or total == 0:
        click.echo("Nothing was deleted." if dry_run else "Nothing to delete.")
        return
    if not yes:
        click.confirm(f"Delete {plural(total, 'event')}?", abort=True)
    with reported_errors(), log.transaction():
        deleted = sum(
            log.delete_events(before=before, statuses=[status])
            for status, before in cutoffs.items()
        )
    click.echo(f"Deleted {plural(deleted, 'event')}.")
