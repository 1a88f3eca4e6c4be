"""Subscription management for server-rendered apps: the form routes behind the cancel,
resume, change-plan and seats buttons.

Each takes a plain HTML form (CSRF-aware as the checkout form: Flask-WTF's token when
``CSRFProtect`` is on, else ``Sec-Fetch-Site`` / ``Origin``), makes the change the JSON
routes of :mod:`.management` make, under the same rules, and answers a browser with a
303 back to the page it came from and a flash message: what changed, or why nothing
did (409, 502, a bad field). A JSON caller (``Accept: application/json``) gets the JSON
routes' answers instead. On with ``STRIPE_BILLING_MANAGEMENT_ROUTES``, as those are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, request
from werkzeug.wrappers import Response

from ..actions import management
from ..actions.management import SubscriptionChange
from ..config import Settings
from ..core import checkout
from ..core.account import BillingAccount
from ..core.changes import check_when
from ..errors import AuthenticationError, BillingError, ValidationError
from ..state import BillingState, app_object, get_state
from .blueprint import Route, add_routes
from .checkout import ensure_own_site, read_form
from .gates import current_account_or_none, login_target, refusal, wants_json
from .management import answer_change, ensure_routes_on

#: The form routes' common prefix (the JSON routes' is ``/billing/subscription``).
PREFIX = "/billing/manage"


#: The form fields any of the routes reads; ``next`` is the page to go back to.
FIELDS = ("at_period_end", "interval", "price_id", "when", "quantity", "next")


#: Flash categories of a change made and of a change refused.
DONE, REFUSED = "success", "error"


#: What a form route does for the signed-in account, given its form fields.
Act = Callable[[BillingState, BillingAccount, dict[str, Any]], SubscriptionChange]


def add_management_form_routes(blueprint: Blueprint) -> None:
    """Add the form routes (and their 405 answers) to the extension's blueprint."""
    add_routes(
        blueprint,
        (
            Route(f"{PREFIX}/cancel", cancel_form, ("POST",)),
            Route(f"{PREFIX}/resume", resume_form, ("POST",)),
            Route(f"{PREFIX}/change-plan", change_plan_form, ("POST",)),
            Route(f"{PREFIX}/seats", change_seats_form, ("POST",)),
        ),
    )


def cancel_form() -> Response:
    """``at_period_end``: ``true`` (default) ends at the period end, ``false`` now."""
    return _manage(_cancel)


def resume_form() -> Response:
    """Undo a pending cancel."""
    return _manage(_resume)


def change_plan_form() -> Response:
    """``price_id`` or ``interval``, and ``when``: ``now`` (default) or ``period_end``."""
    return _manage(_change_plan)


def change_seats_form() -> Response:
    """``quantity``: the number of seats, now."""
    return _manage(_change_seats)


def _cancel(
    state: BillingState, account: BillingAccount, form: dict[str, Any]
) -> SubscriptionChange:
    at_period_end = _yes_or_no(form.get("at_period_end", "true"), "at_period_end")
    return management.cancel(state, app_object(), account, at_period_end=at_period_end)


def _resume(
    state: BillingState, account: BillingAccount, form: dict[str, Any]
) -> SubscriptionChange:
    return management.resume(state, app_object(), account)


def _change_plan(
    state: BillingState, account: BillingAccount, form: dict[str, Any]
) -> SubscriptionChange:
    price_id = checkout.choose_price(form, state.settings)
    at_period_end = check_when(form.get("when", "now"))
    return management.change_plan(
        state, app_object(), account, price_id, at_period_end=at_period_end
    )


def _change_seats(
    state: BillingState, account: BillingAccount, form: dict[str, Any]
) -> SubscriptionChange:
    quantity: Any = form.get("quantity")  # checked by the change: 400 unless a whole number
    return management.change_quantity(state, app_object(), account, quantity)


def _manage(act: Act) -> Response:
    """The routes' common path: on (404), this site's page (403), signed in, then the change.

    An anonymous browser goes to the login page (as a gate sends it); a JSON caller
    gets 401.
    """
    state = get_state()
    ensure_routes_on(state)
    ensure_own_site()
    form = read_form(FIELDS)
    account = current_account_or_none(state)
    if account is None:
        error = AuthenticationError("Sign in to manage billing")
        return refusal(error, login_target(state.settings))
    if wants_json():
        state.require_stripe()
        return answer_change(act(state, account, form))
    back = back_url(form.get("next"))
    try:
        state.require_stripe()
        change = act(state, account, form)
    except BillingError as error:
        flash_message(error.message, REFUSED)
    else:
        flash_message(done_message(change, state.settings), DONE)
    return redirect(back, 303)


def _yes_or_no(value: Any, field: str) -> bool:
    """A form's boolean: ``true``/``1``/``yes`` or ``false``/``0``/``no``; else 400."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValidationError(f"{field} must be true or false", {"field": field})


def back_url(asked: Any) -> str:
    """Where the browser goes back to: the form's ``next`` when it is a path on this site,
    else the ``Referer`` when it is this host's, else the site's root."""
    if isinstance(asked, str) and is_local_path(asked):
        return asked
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host and is_local_path(referrer.path or "/"):
        return referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return request.script_root + "/"


def is_local_path(url: str) -> bool:
    """A path on this site, never another site's URL (``//host``, ``/\\host``, ``https:``)."""
    local = url.startswith("/") and not url.startswith(("//", "/\\"))
    return local and "\r" not in url and "\n" not in url


def flash_message(message: str, category: str) -> None:
    """Flash ``message`` when the app has sessions (a ``SECRET_KEY``); else nothing to show."""
    if current_app.secret_key:
        flash(message, category)


def done_message(change: SubscriptionChange, settings: Settings) -> str:
    """What a change did, in words a settings page shows."""
    after = change.after
    if change.action == "cancel":
        return f"Your subscription is cancelled; it ends on {_day(change.effective_at)}."
    if change.action == "cancel_now":
        return "Your subscription has ended."
    if change.action == "resume":
        return "Your subscription is resumed; it renews as before."
    if change.action == "keep_plan":
        return "Your scheduled plan change is undone; you keep your plan."
    if change.action == "change_quantity":
        return f"Your subscription now has {after.subscription_quantity} seats."
    if change.scheduled_price_id is not None:
        plan = settings.plan_for_prices((change.scheduled_price_id,))
        return f"Your plan changes to {plan} on {_day(change.effective_at)}."
    return f"You are now on the {after.plan} plan."


def _day(moment: datetime | None) -> str:
    """``5 January 2027`` (the period end; "the end of the period" when unknown)."""
    if moment is None:
        return "the end of the period"
    return f"{moment.day} {moment:%B %Y}"
