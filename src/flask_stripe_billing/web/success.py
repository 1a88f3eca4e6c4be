"""The default success route, ``GET /billing/success?session_id=...``: where Checkout sends
the user back.

It applies the Checkout session at once from Stripe's API (the user sees the new
plan before the webhook arrives), then redirects to ``STRIPE_BILLING_AFTER_CHECKOUT_URL``
with a flash message. When Stripe fails the user is still sent on, told the plan
follows shortly: the ``checkout.session.completed`` webhook applies it, so nothing is
lost. Off with ``STRIPE_BILLING_SUCCESS_ROUTE=false`` (for an app with its own page).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, redirect, request
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response

from ..actions import sync
from ..core.account import FREE_PLAN
from ..core.outcomes import Outcome
from ..core.rules import SETTLED_PAYMENT_STATUSES
from ..errors import BillingError
from ..state import app_object, get_state
from .gates import current_account_or_none, resolve_url
from .http import WRONG_METHODS, wrong_method
from .manage_forms import DONE, REFUSED, flash_message

logger = logging.getLogger("flask_stripe_billing")

#: The route's path (under the blueprint's prefix); STRIPE_SUCCESS_URL may point here.
SUCCESS_PATH = "/billing/success"


#: A Checkout session id as Stripe makes them (``cs_test_...``, ``cs_live_...``).
SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]{1,250}")


#: Category of the message when Stripe could not be asked (the webhook follows).
LATER = "warning"


def checkout_success() -> Response:
    """Sync the session named by ``session_id``, flash what it did, redirect on."""
    state = get_state()
    target = resolve_url(state.settings.after_checkout_url or "/")
    session_id = request.args.get("session_id", "")
    if not SESSION_ID.fullmatch(session_id):
        flash_message("This link names no Checkout session.", REFUSED)
        return redirect(target, 303)
    try:
        outcome = sync.sync_checkout_session(state, app_object(), session_id)
    except BillingError as error:
        logger.warning(
            "Stripe Checkout session not synced: %s",
            error.message,
            extra={"session_id": session_id},
        )
        flash_message(
            "Thank you! Your payment is being confirmed; your plan changes as soon as "
            "Stripe tells us.",
            LATER,
        )
        return redirect(target, 303)
    if purchase_flashed(outcome):
        return redirect(target, 303)
    account = outcome.after or current_account_or_none(state)
    if account is not None and account.plan != FREE_PLAN:
        flash_message(f"Thank you! You are now on the {account.plan} plan.", DONE)
    else:
        flash_message(
            "Thank you! Your payment is being confirmed; your plan changes in a moment.", LATER
        )
    return redirect(target, 303)


def purchase_flashed(outcome: Outcome) -> bool:
    """For a one-time purchase's session (mode ``payment``), flash its message and say so:
    thanks once paid, "being confirmed" while an asynchronous payment is pending. The plan
    is not what such a session changes, so the plan's message would mislead."""
    session = outcome.event.checkout_session
    if session is None or session.mode != "payment":
        return False
    if session.payment_status in SETTLED_PAYMENT_STATUSES:
        flash_message("Thank you for your purchase!", DONE)
    else:
        flash_message(
            "Thank you! Your payment is being confirmed; your purchase follows in a moment.",
            LATER,
        )
    return True


def add_success_route(blueprint: Blueprint) -> None:
    """Add the route to each app the blueprint is registered on whose settings keep it on
    (the setting is per app, so the route is added at registration, not before)."""

    def add(setup: BlueprintSetupState) -> None:
        app: Any = setup.app
        if not get_state(app).settings.success_route:
            return
        setup.add_url_rule(SUCCESS_PATH, view_func=checkout_success, methods=["GET"])
        setup.add_url_rule(
            SUCCESS_PATH,
            endpoint="checkout_success_wrong_method",
            view_func=wrong_method,
            methods=[other for other in WRONG_METHODS if other != "GET"],
            defaults={"allowed": "GET"},
        )

    blueprint.record(add)
