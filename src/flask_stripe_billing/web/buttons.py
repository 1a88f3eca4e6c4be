"""Ready-made "Upgrade" and "Manage billing" buttons for templates: one small form each.

A form works without JavaScript: it POSTs to the blueprint's form routes
(:mod:`.form_views`), which answer with a redirect to Stripe. URLs come from
``url_for``, so a blueprint ``url_prefix`` is followed; the CSRF token is added
only when the template has Flask-WTF's ``csrf_token``, so apps without
``CSRFProtect`` render them too.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, url_for
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

#: The blueprint's name, which its endpoints start with.
BLUEPRINT = "stripe_billing"


@pass_context
def billing_checkout_button(
    context: Context,
    label: str = "Upgrade",
    *,
    interval: str | None = None,
    price_id: str | None = None,
    quantity: int | None = None,
    **attributes: Any,
) -> Markup:
    """A form POSTing to Checkout for ``interval`` or ``price_id`` (and ``quantity`` seats).

    Extra keyword arguments become attributes of the ``<button>`` (``class="btn"``).
    """
    fields = {"interval": interval, "price_id": price_id, "quantity": quantity}
    return _form(context, url_for(f"{BLUEPRINT}.checkout_form"), label, fields, attributes)


@pass_context
def billing_portal_button(
    context: Context, label: str = "Manage billing", *, flow: str | None = None, **attributes: Any
) -> Markup:
    """A form POSTing to the Billing portal, opened on ``flow`` if given."""
    url = url_for(f"{BLUEPRINT}.portal_redirect")
    return _form(context, url, label, {"flow": flow}, attributes)


def _form(
    context: Context,
    action: str,
    label: str,
    fields: dict[str, Any],
    attributes: dict[str, Any],
) -> Markup:
    """``<form method="post">`` with hidden ``fields`` (those set), the CSRF token when the
    template has one, and a submit button."""
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
        '<form method="post" action="{}" class="stripe-billing-form">{}'
        '<button type="submit"{}>{}</button></form>'
    ).format(action, Markup(inputs), Markup(button_attributes), escape(label))


#: The template globals the extension adds to the app.
TEMPLATE_GLOBALS = {
    "billing_checkout_button": billing_checkout_button,
    "billing_portal_button": billing_portal_button,
}
