"""Helpers for a host app's tests: build, sign and post Stripe events; check accounts.

The events come from templates copied from real Stripe payloads (see
``event_templates/README.md``), so the code under test meets Stripe's real
shapes. Nothing here calls Stripe.

``StoreContract`` holds the store contract's tests, for a host to run against its
own store; it needs pytest, so it is imported (from ``store_contract``) only when
first used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from blinker import NamedSignal
from flask import Flask

from .. import signals
from ..core.account import BillingAccount, SubscriptionRecord
from ..core.notifications import build_notification
from ..core.rules import HANDLED_EVENT_TYPES
from ..core.templates import (
    API_LAYOUTS,
    DEFAULT_CUSTOMER,
    DEFAULT_PRICE,
    DEFAULT_SUBSCRIPTION,
    ApiLayout,
    build_event,
)
from ..state import get_state
from ..stores.base import UserStore
from ..web.delivery import post_stripe_event, sign_payload, thin_webhook_path, webhook_path
from .stripe_standin import MeterEventStandIn, point_stripe_at

if TYPE_CHECKING:
    from .store_contract import StoreContract

#: The contract kit's module, whose asserts pytest rewrites (detailed failures) when it runs.
STORE_CONTRACT = f"{__name__}.store_contract"
if "pytest" in sys.modules:  # under pytest, before the kit is imported
    sys.modules["pytest"].register_assert_rewrite(STORE_CONTRACT)

__all__ = [
    "API_LAYOUTS",
    "DEFAULT_CUSTOMER",
    "DEFAULT_PRICE",
    "DEFAULT_SUBSCRIPTION",
    "HANDLED_EVENT_TYPES",
    "ApiLayout",
    "MeterEventStandIn",
    "SignalRecorder",
    "StoreContract",
    "assert_plan",
    "assert_subscription_status",
    "build_event",
    "build_notification",
    "get_account",
    "get_subscriptions",
    "point_stripe_at",
    "post_stripe_event",
    "record_signals",
    "sign_payload",
    "thin_webhook_path",
    "webhook_path",
]


def __getattr__(name: str) -> Any:
    """``StoreContract``, imported on first use: the kit needs pytest, the rest does not."""
    if name == "StoreContract":
        return importlib.import_module(STORE_CONTRACT).StoreContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_account(app_or_store: Flask | UserStore, user_id: str | int) -> BillingAccount | None:
    """A user's billing account as the extension's store has it now (None: no such user).

    Given the app, it reads through the store the extension was set up with, in
    an app context and a transaction of its own, with the account's Stripe
    Entitlements in ``features``; given a store, it just asks it.
    """
    if not isinstance(app_or_store, Flask):
        return app_or_store.get(str(user_id))
    with app_or_store.app_context():
        state = get_state(app_or_store)
        with state.event_log.transaction():
            account = state.user_store.get(str(user_id))
            return None if account is None else state.with_features(account)


def get_subscriptions(app: Flask, user_id: str | int) -> list[SubscriptionRecord]:
    """The subscription records of a user's account, oldest first (by Stripe's ``created``)."""
    with app.app_context():
        state = get_state(app)
        with state.event_log.transaction():
            records = state.subscription_log.subscriptions_of(str(user_id))
    return sorted(records, key=lambda record: (record.created is None, record.created, record.id))


def assert_plan(app_or_store: Flask | UserStore, user_id: str | int, plan: str) -> BillingAccount:
    """Fail unless the user's plan is ``plan``; return the account for further checks."""
    __tracebackhide__ = True
    account = _existing_account(app_or_store, user_id)
    if account.plan != plan:
        raise AssertionError(
            f"user {user_id} has plan {account.plan!r}, expected {plan!r} ({_summary(account)})"
        )
    return account


def assert_subscription_status(
    app_or_store: Flask | UserStore, user_id: str | int, status: str | None
) -> BillingAccount:
    """Fail unless the user's subscription status is ``status`` (None: no subscription yet)."""
    __tracebackhide__ = True
    account = _existing_account(app_or_store, user_id)
    if account.subscription_status != status:
        raise AssertionError(
            f"user {user_id} has subscription status {account.subscription_status!r}, "
            f"expected {status!r} ({_summary(account)})"
        )
    return account


@dataclass
class SignalRecorder:
    """The signals sent while recording: ``recorder["plan_changed"]`` lists their kwargs."""

    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> list[dict[str, Any]]:
        if name not in _signal_names():
            raise KeyError(f"no signal {name!r}; the signals are {', '.join(_signal_names())}")
        return self.calls.get(name, [])


@contextmanager
def record_signals() -> Iterator[SignalRecorder]:
    """Record every signal of :mod:`flask_stripe_billing.signals` sent inside the block.

    Each call is stored as its keyword arguments plus ``sender`` (the app).
    """
    recorder = SignalRecorder()
    connected = []
    for name in _signal_names():
        signal: NamedSignal = getattr(signals, name)

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            recorder.calls.setdefault(_name, []).append({"sender": sender, **kwargs})

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
    try:
        yield recorder
    finally:
        for signal, receiver in connected:
            signal.disconnect(receiver)


def _existing_account(app_or_store: Flask | UserStore, user_id: str | int) -> BillingAccount:
    __tracebackhide__ = True
    account = get_account(app_or_store, user_id)
    if account is None:
        store = get_state(app_or_store).user_store if isinstance(app_or_store, Flask) else None
        raise AssertionError(f"no user {user_id!r} in {type(store or app_or_store).__name__}")
    return account


def _summary(account: BillingAccount) -> str:
    return (
        f"plan {account.plan}, status {account.subscription_status or 'none'}, "
        f"customer {account.stripe_customer_id or 'none'}, "
        f"subscription {account.stripe_subscription_id or 'none'}"
    )


@cache
def _signal_names() -> tuple[str, ...]:
    return tuple(name for name, value in vars(signals).items() if isinstance(value, NamedSignal))
