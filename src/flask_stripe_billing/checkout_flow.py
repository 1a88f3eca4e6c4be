"""Sending the signed-in account to Checkout or the portal: what the JSON and the form
routes both do, so each route only reads its request and shapes its answer."""

from __future__ import annotations

import time
from typing import Any

from flask import url_for

from . import checkout, signals
from .account import BillingAccount
from .errors import AuthenticationError
from .state import BillingState, app_object
from .stripe_api import StripeGateway


def current_account(state: BillingState) -> BillingAccount:
    """The signed-in user's account; 401 without a user."""
    user_id = state.current_user_id()
    if user_id is None:
        raise AuthenticationError("Sign in to manage billing")
    account = state.user_store.get(str(user_id))
    if account is None:
        raise AuthenticationError("Sign in to manage billing")
    return account


def ensure_customer(state: BillingState, gateway: StripeGateway, account: BillingAccount) -> str:
    """The user's Stripe customer id, creating and storing the customer on first use."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer_id = gateway.create_customer(
        checkout.customer_params(account), checkout.customer_idempotency_key(account)
    )
    state.user_store.set_customer_id(account.user_id, customer_id)
    return customer_id


def start_checkout(state: BillingState, body: Any) -> tuple[str, str]:
    """A Checkout session for the current account and what ``body`` asks for: its id and URL.

    ``body``: ``interval`` or ``price_id``, and ``quantity`` (seats). The trial
    of the price is given only to an account that never had a subscription.
    """
    settings = state.settings
    account = current_account(state)
    gateway = state.require_stripe()
    price_id = checkout.choose_price(body, settings)
    quantity = checkout.choose_quantity(body, settings)
    checkout.redirect_urls(settings)
    checkout.ensure_can_subscribe(account, url_for(".portal"))
    trial = checkout.trial_options(price_id, settings, trial_allowed(state, account, price_id))
    customer_id = ensure_customer(state, gateway, account)
    session_id, url = gateway.create_checkout_session(
        checkout.session_params(
            account, customer_id, price_id, settings, quantity=quantity, trial=trial
        ),
        checkout.session_idempotency_key(account, price_id, time.time(), quantity),
    )
    signals.send_safely(
        signals.checkout_session_created,
        app_object(),
        user_id=account.user_id,
        session_id=session_id,
        price_id=price_id,
    )
    return session_id, url


def trial_allowed(state: BillingState, account: BillingAccount, price_id: str) -> bool:
    """Whether this account may get the price's trial (its records are read only then)."""
    if state.settings.trial_days_for(price_id) is None:
        return False
    return checkout.trial_allowed(account, state.subscription_log.subscriptions_of(account.user_id))


def open_portal(state: BillingState, flow: str | None) -> str:
    """A Billing-portal session's URL for the current account, on ``flow`` if given."""
    account = current_account(state)
    gateway = state.require_stripe()
    return_url = checkout.portal_return_url(state.settings)
    params = checkout.portal_params(account, return_url, state.settings, flow)
    return gateway.create_portal_session(params)
