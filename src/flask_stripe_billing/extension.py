"""The ``StripeBilling`` extension object: per-app set-up, state and the blueprint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app
from flask.blueprints import BlueprintSetupState

from .config import Settings
from .errors import NotConfiguredError
from .events import StripeEvent, parse_event
from .stores.base import EventLog, UserStore
from .stripe_api import StripeGateway, make_client
from .webhook import (
    Outcome,
    announce,
    announce_changes,
    apply_snapshot,
    process_event,
    read_event,
    refresh_subscription,
)

EXTENSION_KEY = "stripe_billing"

CurrentUserId = Callable[[], "str | None"]
#: Hands a recorded event's id to the host's queue (dispatch mode).
Dispatch = Callable[[str], object]


@dataclass(frozen=True)
class BillingState:
    """What the extension keeps per app, in ``app.extensions["stripe_billing"]``."""

    settings: Settings
    user_store: UserStore
    event_log: EventLog
    current_user_id: CurrentUserId
    #: Stripe's API, when STRIPE_API_KEY is set (checkout, portal, sync, re-fetch).
    stripe: StripeGateway | None
    #: Dispatch mode's hand-off to a queue; None processes events inline.
    dispatch: Dispatch | None = None

    def require_stripe(self) -> StripeGateway:
        """The Stripe gateway, or a 503 naming the missing key."""
        if self.stripe is None:
            raise NotConfiguredError(["STRIPE_API_KEY"])
        return self.stripe

    def handle(self, event: StripeEvent, payload: str) -> Outcome:
        """Process one verified event (re-reading its subscription first in re-fetch mode)."""
        if self.settings.refetch_subscriptions:
            event = refresh_subscription(event, self.require_stripe())
        return process_event(event, payload, self.user_store, self.event_log, self.settings)


class StripeBilling:
    """Stripe subscriptions for a Flask app.

    Either ``StripeBilling(app, user_store=...)``, or construct it first and call
    :meth:`init_app` (app factories), or register :attr:`blueprint` yourself,
    e.g. under a ``url_prefix``. Options given to ``init_app`` win over the
    constructor's, so one extension object may serve several apps.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        user_store: UserStore | None = None,
        current_user_id: CurrentUserId | None = None,
        event_log: EventLog | None = None,
        dispatch: Dispatch | None = None,
    ) -> None:
        from .views import create_blueprint

        self.user_store = user_store
        self.current_user_id = current_user_id
        self.event_log = event_log
        self.dispatch = dispatch
        self.blueprint: Blueprint = create_blueprint()
        self.blueprint.record_once(self._on_blueprint_registered)
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: Flask,
        *,
        user_store: UserStore | None = None,
        current_user_id: CurrentUserId | None = None,
        event_log: EventLog | None = None,
        dispatch: Dispatch | None = None,
    ) -> None:
        """Set the extension up on ``app`` and register the blueprint at the root.

        ``dispatch``: a callable taking an event id. The webhook then only records
        the event and hands its id over; a worker calls :meth:`process_event`.
        """
        self._set_up(app, user_store, current_user_id, event_log, dispatch)
        app.register_blueprint(self.blueprint)

    def process_event(self, event_id: str) -> Outcome:
        """Process a stored event again (one that failed or had no account yet).

        Needs an app context. Idempotent: an event already processed is reported
        as a duplicate and changes nothing.
        """
        state = get_state()
        record = state.event_log.get_event(event_id)
        if record is None:
            raise LookupError(f"no stored event {event_id!r}")
        event = read_event(record.payload)
        outcome = state.handle(event, record.payload)
        announce(current_app._get_current_object(), outcome)  # type: ignore[attr-defined]
        return outcome

    def sync_checkout_session(self, session_id: str) -> Outcome:
        """Apply a completed Checkout session at once, from Stripe's API.

        For the success page, when the user comes back before the webhook does.
        Idempotent with the ``checkout.session.completed`` webhook that follows.
        Needs an app context.
        """
        state = get_state()
        session = state.require_stripe().retrieve_checkout_session(session_id)
        event = parse_event(
            {
                "id": f"sync_{session_id}",
                "object": "event",
                "type": "checkout.session.completed",
                "created": session.get("created"),
                "data": {"object": session},
            }
        )
        outcome = apply_snapshot(event, state.user_store, state.event_log, state.settings)
        announce_changes(current_app._get_current_object(), outcome)  # type: ignore[attr-defined]
        return outcome

    def _on_blueprint_registered(self, setup: BlueprintSetupState) -> None:
        if EXTENSION_KEY not in setup.app.extensions:
            self._set_up(setup.app, None, None, None, None)  # type: ignore[arg-type]

    def _set_up(
        self,
        app: Flask,
        user_store: UserStore | None,
        current_user_id: CurrentUserId | None,
        event_log: EventLog | None,
        dispatch: Dispatch | None,
    ) -> None:
        store = user_store or self.user_store
        if store is None:
            raise TypeError("StripeBilling needs a user_store")
        log = event_log or self.event_log or (store if isinstance(store, EventLog) else None)
        if log is None:
            raise TypeError(f"{type(store).__name__} keeps no event log; pass event_log=...")
        settings = Settings.from_config(app.config)
        app.extensions[EXTENSION_KEY] = BillingState(
            settings=settings,
            user_store=store,
            event_log=log,
            current_user_id=current_user_id or self.current_user_id or flask_login_user_id,
            stripe=(
                StripeGateway(make_client(settings.api_key, settings)) if settings.api_key else None
            ),
            dispatch=dispatch or self.dispatch,
        )
        from .cli import register_commands  # here: cli.py imports this module

        register_commands(app, self)


def get_state(app: Flask | None = None) -> BillingState:
    """The extension's state for ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    try:
        state: BillingState = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("StripeBilling is not set up on this app; call init_app(app)") from None
    return state


def flask_login_user_id() -> str | None:
    """The signed-in user's id from Flask-Login, when it is installed."""
    try:
        from flask_login import current_user  # type: ignore[import-untyped]
    except ImportError:
        return None
    if getattr(current_app, "login_manager", None) is None:
        return None  # installed, but this app does not use it
    if current_user and current_user.is_authenticated:
        user_id: Any = current_user.get_id()
        return None if user_id is None else str(user_id)
    return None
