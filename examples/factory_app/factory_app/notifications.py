"""What the app does when a plan changes (a real app: send a mail, unlock features)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from flask_stripe_billing import BillingAccount


def on_plan_changed(
    app: Flask,
    *,
    user_id: str,
    old_plan: str,
    new_plan: str,
    account: BillingAccount,
    **extra: Any,
) -> None:
    """Receiver of ``signals.plan_changed``; sent after the change is committed."""
    if new_plan == "free":
        app.logger.info("Downgrade: %s is back on free (was %s)", account.email, old_plan)
    else:
        app.logger.info("Welcome to %s, %s! (was %s)", new_plan, account.email, old_plan)
