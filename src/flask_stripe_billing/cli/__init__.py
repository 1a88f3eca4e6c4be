"""The ``flask billing`` command group, added to each app the extension is set up on."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from ..actions import prices
from ..errors import BillingError
from .dev import check_command, create_webhook_endpoint_command, trigger_command
from .events import events_command, link_command, prune_command, replay_command
from .manage import cancel_command, change_plan_command, resume_command
from .schema import schema_command
from .sync import sync_command
from .usage import usage_command

GROUP_NAME = "billing"


#: The commands that decide events or change subscriptions: with price lookup keys
#: configured they need them resolved (the plan of a price depends on it).
DECIDING_COMMANDS = frozenset({"replay", "link", "sync", "cancel", "resume", "change-plan"})


@click.group(
    GROUP_NAME,
    cls=AppGroup,
    help="Stripe billing: the webhook event log, replays, sync from Stripe, "
    "offline test events, a configuration check, subscription changes, the SQL schema "
    "and usage sent to Stripe's meters.",
)
@with_appcontext
def billing_group() -> None:
    """Resolve the price lookup keys before a command that decides with them."""
    if click.get_current_context().invoked_subcommand not in DECIDING_COMMANDS:
        return
    try:
        prices.resolved(current_app._get_current_object())  # type: ignore[attr-defined]
    except BillingError as error:
        missing = error.details.get("missing")
        raise click.ClickException(
            f"Price lookup keys not resolved: {error.message}"
            + (f" ({missing})" if missing else "")
        ) from None


for command in (
    events_command,
    replay_command,
    link_command,
    sync_command,
    prune_command,
    trigger_command,
    check_command,
    create_webhook_endpoint_command,
    cancel_command,
    resume_command,
    change_plan_command,
    schema_command,
    usage_command,
):
    billing_group.add_command(command)


def register_commands(app: Flask) -> None:
    """Add ``flask billing`` to ``app``, once; a host's own ``billing`` command wins."""
    if GROUP_NAME not in app.cli.commands:
        app.cli.add_command(billing_group)
