"""The ``flask billing`` command group, added to each app the extension is set up on."""

from __future__ import annotations

from flask import Flask
from flask.cli import AppGroup

from .dev import check_command, create_webhook_endpoint_command, trigger_command
from .events import events_command, link_command, prune_command, replay_command
from .manage import cancel_command, change_plan_command, resume_command
from .schema import schema_command
from .sync import sync_command
from .usage import usage_command

GROUP_NAME = "billing"


billing_group = AppGroup(
    GROUP_NAME,
    help="Stripe billing: the webhook event log, replays, sync from Stripe, "
    "offline test events, a configuration check, subscription changes, the SQL schema "
    "and usage sent to Stripe's meters.",
)


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
