"""Ready-made buttons for templates, one small form each: "Upgrade" and "Manage billing"
(to Stripe), cancel, resume, change plan and seats (back to the page, with a flash
message), and ``billing_settings()``, a settings-page partial made of them.

A form works without JavaScript: it POSTs to the blueprint's form routes
(:mod:`.checkout`, :mod:`.manage_forms`), which answer with a redirect. URLs come from
``url_for``, so a blueprint ``url_prefix`` is followed; the CSRF token is added
only when the template has Flask-WTF's ``csrf_token``, so apps without
``CSRFProtect`` render them too.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template, request, url_for
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from ..core import catalogue
from ..state import BillingState, get_state
from ..stores.base import SUBSCRIPTIONS_TABLE
from .gates import current_account_or_none

#: The blueprint's name, which its endpoints start with.
BLUEPRINT = "stripe_billing"


@pass_context
def billing_checkout_button(
    context: Context,
    label: str = "Upgrade",
    *,
    interval: str | None = None,
    price_id: str | None = None,
    product: str | None = None,
    quantity: int | None = None,
    **attributes: Any,
) -> Markup:
    """A form POSTing to Checkout for ``interval`` or ``price_id`` (and ``quantity`` seats),
    or, with ``product``, a one-time purchase of ``quantity`` of that product.

    Extra keyword arguments become attributes of the ``<button>`` (``class="btn"``).
    """
    fields = {
        "interval": interval,
        "price_id": price_id,
        "product": product,
        "quantity": quantity,
    }
    return _form(context, url_for(f"{BLUEPRINT}.checkout_form"), label, fields, attributes)


@pass_context
def billing_portal_button(
    context: Context, label: str = "Manage billing", *, flow: str | None = None, **attributes: Any
) -> Markup:
    """A form POSTing to the Billing portal, opened on ``flow`` if given."""
    url = url_for(f"{BLUEPRINT}.portal_redirect")
    return _form(context, url, label, {"flow": flow}, attributes)


@pass_context
def billing_cancel_button(
    context: Context,
    label: str = "Cancel subscription",
    *,
    at_period_end: bool = True,
    next: str | None = None,
    **attributes: Any,
) -> Markup:
    """A form cancelling the subscription at the period end (or, ``at_period_end=False``,
    now); the browser comes back to ``next`` (default: this page)."""
    fields = {"at_period_end": "true" if at_period_end else "false", "next": _back(next)}
    return _form(context, url_for(f"{BLUEPRINT}.cancel_form"), label, fields, attributes)


@pass_context
def billing_resume_button(
    context: Context,
    label: str = "Resume subscription",
    *,
    next: str | None = None,
    **attributes: Any,
) -> Markup:
    """A form undoing a pending cancel."""
    url = url_for(f"{BLUEPRINT}.resume_form")
    return _form(context, url, label, {"next": _back(next)}, attributes)


@pass_context
def billing_change_plan_button(
    context: Context,
    label: str = "Switch plan",
    *,
    interval: str | None = None,
    price_id: str | None = None,
    when: str = "now",
    next: str | None = None,
    **attributes: Any,
) -> Markup:
    """A form moving the subscription to ``interval``'s or ``price_id``'s price, ``when``
    ``now`` (prorated) or at the ``period_end``."""
    fields = {"interval": interval, "price_id": price_id, "when": when, "next": _back(next)}
    return _form(context, url_for(f"{BLUEPRINT}.change_plan_form"), label, fields, attributes)


@pass_context
def billing_seats_form(
    context: Context,
    label: str = "Update seats",
    *,
    quantity: int | None = None,
    next: str | None = None,
    **attributes: Any,
) -> Markup:
    """A form with a number field (``quantity``, within STRIPE_SEATS_MIN..MAX) setting the
    subscription's seats, now."""
    settings = get_state().settings
    number = Markup(
        '<input type="number" name="quantity" min="{}" max="{}" value="{}" required>'
    ).format(settings.seats_min, settings.seats_max, quantity or settings.seats_min)
    url = url_for(f"{BLUEPRINT}.change_seats_form")
    return _form(context, url, label, {"next": _back(next)}, attributes, visible=number)


#: The partial ``billing_settings()`` renders; a template of the same name in the app's own
#: templates folder replaces it.
SETTINGS_TEMPLATE = "stripe_billing/settings.html"


def billing_settings(**options: Any) -> Markup:
    """The signed-in user's billing, for a settings page: the plan, the renewal or end date,
    the seats, and the buttons that change them (cancel or resume, switch plan, seats,
    Manage billing); ``options`` reach the template (``next=``, ``portal=False``)."""
    state = get_state()
    account = current_account_or_none(state)
    price_ids: tuple[str, ...] = ()
    subscription = None if account is None else account.stripe_subscription_id
    # Before the migration adding the records there is no current price to mark.
    if account is not None and subscription is not None and not _lacks_records(state):
        records = state.subscription_log.subscriptions_of(account.user_id)
        price_ids = next((r.price_ids for r in records if r.id == subscription), ())
    html = render_template(
        SETTINGS_TEMPLATE,
        account=account,
        settings=state.settings,
        prices=catalogue.prices(state.settings),
        current_price_ids=price_ids,
        management=state.settings.management_routes,
        options=options,
    )
    return Markup(html)


def _lacks_records(state: BillingState) -> bool:
    """Whether the subscription table is missing (a migration not yet run)."""
    return state.schema.lacking(SUBSCRIPTIONS_TABLE) is not None


def _back(next: str | None) -> str:
    """The page a management form sends the browser back to: ``next``, else this page."""
    return next or request.full_path.rstrip("?")


def _form(
    context: Context,
    action: str,
    label: str,
    fields: dict[str, Any],
    attributes: dict[str, Any],
    visible: Markup | None = None,
) -> Markup:
    """``<form method="post">`` with hidden ``fields`` (those set), the CSRF token when the
    template has one, the ``visible`` fields and a submit button."""
    hidden = [(name, value) for name, value in fields.items() if value is not None]
    csrf_token = context.get("csrf_token")
    if callable(csrf_token):
        hidden.append((current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), csrf_token()))
    inputs = "".join(
        Markup('<input type="hidden" name="{}" value="{}">').format(name, value)
        for name, value in hidden
    )
    button_attributes = "".join(
        Markup(' {}="{}"').format(name.rstrip("_"), value) for name, value in attributes.items()
    )
    return Markup(
        '<form method="post" action="{}" class="stripe-billing-form">{}{}'
        '<button type="submit"{}>{}</button></form>'
    ).format(action, Markup(inputs), visible or "", Markup(button_attributes), escape(label))


#: The template globals the extension adds to the app.
TEMPLATE_GLOBALS = {
    "billing_checkout_button": billing_checkout_button,
    "billing_portal_button": billing_portal_button,
    "billing_cancel_button": billing_cancel_button,
    "billing_resume_button": billing_resume_button,
    "billing_change_plan_button": billing_change_plan_button,
    "billing_seats_form": billing_seats_form,
    "billing_settings": billing_settings,
}
