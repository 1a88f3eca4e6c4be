"""The optional JSON routes that change the signed-in user's subscription.

Off by default (404) until ``STRIPE_BILLING_MANAGEMENT_ROUTES`` is set. The same
rules as the checkout route: a signed-in user (401), a JSON body (a browser
asks before sending one cross-site, so another site's form cannot post here),
only configured prices, errors as JSON.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify

from ..actions import management
from ..actions.management import SubscriptionChange
from ..core import checkout
from ..core.account import BillingAccount
from ..core.changes import check_when
from ..errors import NotFoundError, ValidationError
from ..state import BillingState, app_object, get_state
from .blueprint import Route, add_routes
from .checkout import current_account
from .http import read_json_body

#: The routes' common prefix.
PREFIX = "/billing/subscription"


def add_management_routes(blueprint: Blueprint) -> None:
    """Add the routes (and their 405 answers) to the extension's blueprint."""
    add_routes(
        blueprint,
        (
            Route(f"{PREFIX}/{name}", view, ("POST",))
            for name, view in (
                ("cancel", cancel_subscription),
                ("resume", resume_subscription),
                ("change-plan", change_plan),
                ("preview-change", preview_change),
                ("quantity", change_quantity),
            )
        ),
    )


def cancel_subscription() -> Response:
    """``{"at_period_end": true}`` (default) ends at the period end; false ends now."""
    state, account, body = _request()
    at_period_end = body.get("at_period_end", True)
    if not isinstance(at_period_end, bool):
        raise ValidationError("at_period_end must be true or false", {"field": "at_period_end"})
    return answer_change(
        management.cancel(state, app_object(), account, at_period_end=at_period_end)
    )


def resume_subscription() -> Response:
    """Undo a pending cancel."""
    state, account, _ = _request()
    return answer_change(management.resume(state, app_object(), account))


def change_plan() -> Response:
    """``{"price_id" | "interval", "when": "now" | "period_end"}``."""
    state, account, body = _request()
    price_id = checkout.choose_price(body, state.settings)
    at_period_end = check_when(body.get("when", "now"))
    change = management.change_plan(
        state, app_object(), account, price_id, at_period_end=at_period_end
    )
    return answer_change(change)


def preview_change() -> Response:
    """The invoice ``change-plan`` with the same body would make; nothing changes."""
    state, account, body = _request()
    price_id = checkout.choose_price(body, state.settings)
    at_period_end = check_when(body.get("when", "now"))
    preview = management.preview_change(state, account, price_id, at_period_end=at_period_end)
    return jsonify(asdict(preview))


def change_quantity() -> Response:
    """``{"quantity": N}``: the number of seats, now."""
    state, account, body = _request()
    quantity: Any = body.get("quantity")
    change = management.change_quantity(state, app_object(), account, quantity)
    return answer_change(change)


def _request() -> tuple[BillingState, BillingAccount, dict[str, Any]]:
    """The routes' common checks: on (404), signed in (401), a JSON object body (400)."""
    state = get_state()
    ensure_routes_on(state)
    account = current_account(state)
    body = read_json_body()
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    state.require_stripe()
    return state, account, body


def ensure_routes_on(state: BillingState) -> None:
    """404 unless ``STRIPE_BILLING_MANAGEMENT_ROUTES`` is on (JSON and form routes alike)."""
    if not state.settings.management_routes:
        raise NotFoundError(
            "Subscription management routes are off (STRIPE_BILLING_MANAGEMENT_ROUTES)"
        )


def answer_change(change: SubscriptionChange) -> Response:
    """The change and the account as it is now."""
    return jsonify(
        action=change.action,
        subscription_id=change.subscription_id,
        effective_at=_iso(change.effective_at),
        scheduled_price_id=change.scheduled_price_id,
        account=account_json(change.after),
    )


def account_json(account: BillingAccount) -> dict[str, Any]:
    """What a settings page shows of an account."""
    return {
        "plan": account.plan,
        "subscription_status": account.subscription_status,
        "cancel_at_period_end": account.cancel_at_period_end,
        "current_period_end": _iso(account.current_period_end),
        "quantity": account.subscription_quantity,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
