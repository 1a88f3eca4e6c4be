"""``flask billing usage``: the usage rows by status, and ``usage send``, the sender."""

from __future__ import annotations

import time

import click
from flask.cli import with_appcontext

from ..actions.usage import UsageSendReport, send_usage, usage_log_of
from ..core.usage import UsageStatus
from ..state import app_object, get_state
from .common import reported_errors
from .reports import TIME_FORMAT, plural

DEFAULT_LIMIT = 50


#: Seconds ``usage send --watch`` waits between passes that found nothing to send.
DEFAULT_INTERVAL = 5.0


@click.group("usage", invoke_without_command=True)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(UsageStatus.ALL),
    help="Only rows with this status (repeatable).",
)
@click.option("--limit", default=DEFAULT_LIMIT, show_default=True, help="Rows to list.")
@click.pass_context
@with_appcontext
def usage_command(ctx: click.Context, statuses: tuple[str, ...], limit: int) -> None:
    """List reported usage (newest first) with the count of each status: pending rows wait
    for the sender (or for the account's Stripe customer), failed ones say why."""
    if ctx.invoked_subcommand is not None:
        return
    with reported_errors():
        log = usage_log_of(get_state())
        counts = log.count_usage()
        rows = log.list_usage(statuses=statuses or None, limit=limit)
    click.echo(", ".join(f"{counts.get(status, 0)} {status}" for status in UsageStatus.ALL))
    for row in rows:
        customer = row.customer_id or "(no customer yet)"
        line = (
            f"{row.timestamp.strftime(TIME_FORMAT)}  {row.status:<7}  {row.event_name}  "
            f"{row.value}  user {row.user_id}  {customer}  {row.identifier}"
        )
        if row.error:
            line += f"  {row.error}"
        click.echo(line)


@usage_command.command("send")
@click.option("--watch", is_flag=True, help="Keep sending: a pass, then wait, until stopped.")
@click.option(
    "--interval",
    default=DEFAULT_INTERVAL,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between passes with --watch.",
)
@with_appcontext
def usage_send_command(watch: bool, interval: float) -> None:
    """Send pending usage to Stripe as meter events (one pass, or --watch)."""
    while True:
        with reported_errors():
            report = send_usage(get_state(), app_object())
        click.echo(describe_send(report))
        if not watch:
            return
        time.sleep(interval)


def describe_send(report: UsageSendReport) -> str:
    """One line saying what a pass did."""
    return (
        f"{plural(report.sent, 'row')} sent, {report.failed} failed, "
        f"{report.retrying} to retry, {report.waiting} waiting for a Stripe customer"
    )
