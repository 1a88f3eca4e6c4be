"""The ``StripeBilling`` extension object: per-app set-up, state and the blueprint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app
from flask.blueprints import BlueprintSetupState

from .config import Settings
from .stores.base import EventLog, UserStore
from .webhook import Outcome, announce, process_event, read_event

EXTENSION_KEY = "stripe_billing"

CurrentUserId = Callable[[], "str | None"]


@dataclass(frozen=True)
class BillingState:
    """What the extension keeps per app, in ``app.extensions["stripe_billing"]``."""

    settings: Settings
    user_store: UserStore
    event_log: EventLog
    current_user_id: CurrentUserId


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
    ) -> None:
        from .views import create_blueprint

        self.user_store = user_store
        self.current_user_id = current_user_id
        self.event_log = event_log
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
    ) -> None:
        """Set the extension up on ``app`` and register the blueprint at the root."""
        self._set_up(app, user_store, current_user_id, event_log)
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
        event = read_event(record.payload.encode("utf-8"))
        outcome = process_event(
            event, record.payload, state.user_store, state.event_log, state.settings
        )
        announce(current_app._get_current_object(), outcome)  # type: ignore[attr-defined]
        return outcome

    def _on_blueprint_registered(self, setup: BlueprintSetupState) -> None:
        if EXTENSION_KEY not in setup.app.extensions:
            self._set_up(setup.app, None, None, None)  # type: ignore[arg-type]

    def _set_up(
        self,
        app: Flask,
        user_store: UserStore | None,
        current_user_id: CurrentUserId | None,
        event_log: EventLog | None,
    ) -> None:
        store = user_store or self.user_store
        if store is None:
            raise TypeError("StripeBilling needs a user_store")
        log = event_log or self.event_log or (store if isinstance(store, EventLog) else None)
        if log is None:
            raise TypeError(f"{type(store).__name__} keeps no event log; pass event_log=...")
        app.extensions[EXTENSION_KEY] = BillingState(
            settings=Settings.from_config(app.config),
            user_store=store,
            event_log=log,
            current_user_id=current_user_id or self.current_user_id or flask_login_user_id,
        )


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
    if current_user and current_user.is_authenticated:
        user_id: Any = current_user.get_id()
        return None if user_id is None else str(user_id)
    return None
