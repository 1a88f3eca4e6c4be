"""Prices configured by Stripe lookup key (``lookup_key:NAME``): resolved to their ids once
per app, from Stripe's API, so one configuration works in test and live mode.

The first request of the app (or the first ``billing.prices``, ``process_event`` or
``flask billing check --online``) asks Stripe (``GET /v1/prices?lookup_keys[]=...``,
ten keys a call) and keeps the app's settings with the ids in place of the keys. A
failure is not kept: the next request asks again. A lookup key no active price has is
a :class:`~.errors.NotConfiguredError` naming the setting and the key.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from flask import Flask, request

from ..config import LOOKUP_KEY_PREFIX, Settings
from ..errors import BillingError, NotConfiguredError
from ..state import EXTENSION_KEY, BillingState, get_state
from ..stripe_api import StripeGateway

logger = logging.getLogger("flask_stripe_billing")

#: Stripe's most lookup keys in one list call.
KEYS_PER_CALL = 10


def resolved(app: Flask) -> BillingState:
    """The app's state with every configured lookup key resolved to its price id.

    Asks Stripe only while some key is unresolved; raises
    :class:`~.errors.StripeServiceError` (Stripe failed) or :class:`NotConfiguredError`
    (no API key, or a lookup key no active price has: its ``details["missing"]`` names
    the setting and the key).
    """
    state = get_state(app)
    if not state.settings.lookup_keys:
        return state
    found = lookup_prices(state.settings, state.require_stripe())
    state = replace(state, settings=state.settings.with_prices(found))
    app.extensions[EXTENSION_KEY] = state
    logger.info("Stripe price lookup keys resolved", extra={"lookup_keys": found})
    return state


def lookup_prices(settings: Settings, gateway: StripeGateway) -> dict[str, str]:
    """Each configured lookup key → the id of the active price that has it, from Stripe."""
    keys = sorted(settings.lookup_keys)
    found: dict[str, str] = {}
    for start in range(0, len(keys), KEYS_PER_CALL):
        for price in gateway.list_prices_by_lookup_keys(keys[start : start + KEYS_PER_CALL]):
            if price.get("lookup_key") in keys and isinstance(price.get("id"), str):
                found[str(price["lookup_key"])] = str(price["id"])
    missing = [key for key in keys if key not in found]
    if missing:
        raise NotConfiguredError([_missing(settings, key) for key in missing])
    return found


def _missing(settings: Settings, key: str) -> str:
    """What the error names for an unknown lookup key: the setting and the key."""
    value = LOOKUP_KEY_PREFIX + key
    if settings.price_pro_monthly == value:
        setting = "STRIPE_PRICE_PRO_MONTHLY"
    elif settings.price_pro_yearly == value:
        setting = "STRIPE_PRICE_PRO_YEARLY"
    elif value in settings.plans:
        setting = "STRIPE_BILLING_PLANS"
    elif value in settings.products:
        setting = "STRIPE_BILLING_PRODUCTS"
    else:
        setting = "STRIPE_TRIAL_DAYS"
    return (
        f"{setting}: no active price has the lookup key {key!r} "
        "(in this API key's mode: see the Dashboard's product catalogue)"
    )


def resolve_before_request(app: Flask, blueprint_name: str) -> Any:
    """A ``before_request`` hook resolving the lookup keys on the app's first request.

    Once resolved it costs one attribute read. When Stripe cannot resolve them the
    billing routes answer the error (the webhook's 502/503 makes Stripe retry, so no
    event is decided on unresolved prices); the host's own pages go on.
    """

    def resolve_lookup_keys() -> None:
        if not get_state(app).settings.lookup_keys:
            return
        try:
            resolved(app)
        except BillingError as error:
            logger.error(
                "Stripe price lookup keys not resolved: %s %s", error.message, error.details
            )
            if request.blueprint == blueprint_name:
                raise

    return resolve_lookup_keys
