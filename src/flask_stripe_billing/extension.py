"""The ``StripeBilling`` extension object: per-app set-up and the Python API."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypedDict, Unpack, cast

from flask import Blueprint, Flask, current_app
from flask.blueprints import BlueprintSetupState

try:  # optional: the default current_user_id when the app uses Flask-Login
    from flask_login import current_user  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - Flask-Login is not installed
    current_user = None
from . import signals
from .actions import management, meters, prices, sync
from .actions import purchases as bought
from .actions import usage as reported_usage
from .actions.duplicates import on_duplicate
from .actions.invoices import Invoice, list_invoices
from .actions.management import ChangePreview, SubscriptionChange, Who, preview_change
from .actions.meters import UsageSummary
from .cli import register_commands
from .config import Settings
from .core import catalogue
from .core.account import BillingAccount
from .core.catalogue import Plan, Prices
from .core.outcomes import Outcome
from .core.purchases import PurchaseRecord
from .core.usage import UsageRecord
from .pipeline import intake, references
from .state import EXTENSION_KEY, BillingState, CurrentUserId, Dispatch, app_object, get_state
from .stores.base import EventLog, SubscriptionLog, UserStore, check_store
from .stores.upgrade import SchemaWatch
from .stripe_api import Pacer, StripeGateway
from .web import gates
from .web.admin import AdminCheck, SectionSource, create_admin_blueprint
from .web.blueprint import create_blueprint, exempt_webhook_from_csrf
from .web.buttons import TEMPLATE_GLOBALS
from .web.gates import ViewDecorator, billing_template_context
from .web.manage_forms import add_management_form_routes
from .web.management import add_management_routes
from .web.success import add_success_route
from .web.usage import add_usage_flush, mark_reported


class Options(TypedDict, total=False):
    """What ``StripeBilling(...)`` and ``init_app(...)`` take besides the app.

    ``user_store``: the host's accounts (and, for the shipped stores, the library's
    logs); ``event_log`` / ``subscription_log``: separate logs for a store that keeps
    none; ``current_user_id``: who is calling (default: Flask-Login's user);
    ``dispatch``: a callable taking an event id (the webhook then only records the
    event and hands its id over; a worker calls :meth:`StripeBilling.process_event`).
    """

    user_store: UserStore
    current_user_id: CurrentUserId
    event_log: EventLog
    subscription_log: SubscriptionLog
    dispatch: Dispatch


class StripeBilling:
    """Stripe subscriptions for a Flask app.

    Either ``StripeBilling(app, user_store=...)``, or construct it first and call
    :meth:`init_app` (app factories), or register :attr:`blueprint` yourself,
    e.g. under a ``url_prefix``. Options given to ``init_app`` win over the
    constructor's, so one extension object may serve several apps; each app's
    state lives in ``app.extensions["stripe_billing"]``. The store is checked
    against the store contract then, once: see :class:`~.errors.StoreContractError`.
    """

    def __init__(self, app: Flask | None = None, **options: Unpack[Options]) -> None:
        self.options: Options = _given(options)
        self.blueprint: Blueprint = create_blueprint()
        add_management_routes(self.blueprint)
        add_management_form_routes(self.blueprint)
        add_usage_flush(self.blueprint)
        self.blueprint.record_once(self._on_blueprint_registered)
        add_success_route(self.blueprint)  # after the set-up above: it reads the settings
        if app is not None:
            self.init_app(app)

    @property
    def user_store(self) -> UserStore | None:
        """The constructor's ``user_store`` (an app's own is ``get_state(app).user_store``)."""
        return self.options.get("user_store")

    def init_app(self, app: Flask, **options: Unpack[Options]) -> None:
        """Set the extension up on ``app`` and register the blueprint at the root.

        ``options`` (see :class:`Options`) win over the constructor's, for this app.
        """
        self._set_up(app, _given(options))
        app.register_blueprint(self.blueprint)

    def process_event(self, event_id: str) -> Outcome:
        """Process a stored event again (one that failed or had no account yet).

        Needs an app context. Idempotent: an event already processed is reported
        as a duplicate and changes nothing.
        """
        return intake.run_stored(prices.resolved(app_object()), app_object(), event_id)

    def sync_checkout_session(self, session_id: str) -> Outcome:
        """Apply a completed Checkout session at once, from Stripe's API.

        For the success page, when the user comes back before the webhook does.
        Idempotent with the ``checkout.session.completed`` webhook that follows.
        Needs an app context.
        """
        return sync.sync_checkout_session(prices.resolved(app_object()), app_object(), session_id)

    @property
    def prices(self) -> Prices:
        """The current app's configured prices (iterable; ``.monthly``, ``.yearly``,
        ``.get(id)``), lookup keys resolved. Needs an app context."""
        return catalogue.prices(prices.resolved(app_object()).settings)

    @property
    def settings(self) -> Settings:
        """The current app's settings (lookup keys resolved), e.g. for
        ``account.has_feature(name, billing.settings)``. Needs an app context."""
        return prices.resolved(app_object()).settings

    @property
    def plans(self) -> tuple[Plan, ...]:
        """The current app's plans, free first, then the paid plans by rank, each with its
        prices and features. Needs an app context."""
        return catalogue.plans(prices.resolved(app_object()).settings)

    def account(self, user_id: str | int) -> BillingAccount:
        """A user's billing account with its active Stripe Entitlements (``features``).

        Needs an app context; raises LookupError for a user the store does not know.
        """
        return get_state().account_of(user_id)

    def invoices(
        self, account_or_user_id: BillingAccount | str | int, limit: int = 10
    ) -> list[Invoice]:
        """The newest invoices of a user's Stripe customer (none without one), from Stripe.

        For a billing page's receipts. Needs an app context and ``STRIPE_API_KEY``;
        raises :class:`~.errors.StripeServiceError` when Stripe fails.
        """
        return list_invoices(get_state(), account_or_user_id, limit)

    def usage(
        self,
        account_or_user_id: BillingAccount | str | int,
        meter: str,
        start: datetime,
        end: datetime,
        *,
        grouping: str | None = None,
    ) -> list[UsageSummary]:
        """A user's usage of a Stripe meter (its id or ``event_name``) from ``start`` to
        ``end`` (whole minutes), as Stripe aggregated it: its meter event summaries.

        For a usage page. ``grouping`` (``hour`` or ``day``): one summary per window.
        None without a Stripe customer. Needs an app context and ``STRIPE_API_KEY``;
        raises :class:`~.errors.StripeServiceError` when Stripe fails.
        """
        return meters.usage(get_state(), account_or_user_id, meter, start, end, grouping=grouping)

    def portal_url(
        self, account_or_user_id: BillingAccount | str | int, flow: str | None = None
    ) -> str:
        """A Billing-portal session's URL for a user, opened on ``flow`` if given.

        ``flow``: ``payment_method_update``, ``subscription_cancel`` or
        ``subscription_update`` (the account's subscription), e.g. for the link
        in a payment-failed e-mail. Needs an app context and ``STRIPE_API_KEY``.
        """
        state = get_state()
        return management.portal_url(state, state.account_of(account_or_user_id), flow)

    # Managing the subscription (needs an app context and STRIPE_API_KEY). Each reads the
    # subscription from Stripe, raises ConflictError (409) when its state does not allow
    # the change and StripeServiceError (502) when Stripe fails, with nothing applied;
    # else the change is applied to the account at once. See docs/managing.md. Price
    # lookup keys are resolved first (they decide the plan the answer is mapped to).

    def cancel(self, who: Who, *, at_period_end: bool = True) -> SubscriptionChange:
        """End the user's subscription at the period end (default), or now."""
        return management.cancel(
            prices.resolved(app_object()), app_object(), who, at_period_end=at_period_end
        )

    def resume(self, who: Who) -> SubscriptionChange:
        """Undo a pending end of the user's subscription."""
        return management.resume(prices.resolved(app_object()), app_object(), who)

    def change_plan(
        self,
        who: Who,
        price_id: str,
        *,
        at_period_end: bool = False,
        proration_behavior: str | None = None,
        payment_behavior: str | None = None,
    ) -> SubscriptionChange:
        """Move the user's subscription to a configured price: now (prorated as
        STRIPE_PRORATION_BEHAVIOR says) or, ``at_period_end``, through a schedule.
        ``payment_behavior="pending_if_incomplete"`` holds a change made now until its
        payment goes through (default: STRIPE_BILLING_PAYMENT_BEHAVIOR)."""
        return management.change_plan(
            prices.resolved(app_object()),
            app_object(),
            who,
            price_id,
            at_period_end=at_period_end,
            proration_behavior=proration_behavior,
            payment_behavior=payment_behavior,
        )

    def preview_change(
        self, who: Who, price_id: str, *, at_period_end: bool = False
    ) -> ChangePreview:
        """What :meth:`change_plan` would invoice, from Stripe's invoice preview."""
        return preview_change(
            prices.resolved(app_object()), who, price_id, at_period_end=at_period_end
        )

    def change_quantity(
        self,
        who: Who,
        quantity: int,
        *,
        proration_behavior: str | None = None,
        payment_behavior: str | None = None,
    ) -> SubscriptionChange:
        """Set the number of seats of the user's subscription, now (``payment_behavior`` as
        for :meth:`change_plan`)."""
        return management.change_quantity(
            prices.resolved(app_object()),
            app_object(),
            who,
            quantity,
            proration_behavior=proration_behavior,
            payment_behavior=payment_behavior,
        )

    # Usage-based billing (Stripe Billing Meters). See docs/usage.md.

    def report_usage(
        self,
        user_or_account: BillingAccount | str | int,
        meter_event_name: str,
        value: int,
        *,
        identifier: str | None = None,
        timestamp: datetime | None = None,
    ) -> UsageRecord:
        """Record ``value`` of a meter for the user, in the transaction in progress.

        The row commits or rolls back with the host's own work (SQLAlchemy: the host's
        ``db.session``; DB-API: the store's transaction); a sender delivers it to Stripe.
        ``identifier`` (default: a new unique one) is the meter event's: reporting the
        same one again writes nothing. Raises :class:`~.errors.ValidationError` for usage
        Stripe would refuse (older than 35 days, more than 5 minutes ahead, not a whole
        number). Needs an app context.
        """
        record, _ = reported_usage.report_usage(
            get_state(),
            user_or_account,
            meter_event_name,
            value,
            identifier=identifier,
            timestamp=timestamp,
        )
        mark_reported()
        return record

    def send_usage(self, *, limit: int | None = None) -> reported_usage.UsageSendReport:
        """Send pending usage to Stripe as meter events, in batches, until none is due.

        What ``flask billing usage send``, an RQ job and the after-request flush run.
        Needs an app context and ``STRIPE_API_KEY``.
        """
        return reported_usage.send_usage(get_state(), app_object(), limit=limit)

    def usage_remaining(
        self, user_or_account: BillingAccount | str | int, meter_event_name: str
    ) -> int | None:
        """What is left this period of the plan's quota of a meter
        (``STRIPE_BILLING_USAGE_QUOTAS``), from the usage reported; None: no quota."""
        return reported_usage.usage_remaining(get_state(), user_or_account, meter_event_name)

    # One-time purchases (docs/purchases.md)

    def purchases(self, user_or_account: BillingAccount | str | int) -> list[PurchaseRecord]:
        """The user's one-time purchases, newest first, whatever their status (none when
        the store keeps no purchases). Needs an app context."""
        return bought.purchases_of(get_state(), user_or_account)

    def has_purchased(self, user_or_account: BillingAccount | str | int, product: str) -> bool:
        """Whether the user has a purchase of ``product`` (a key of ``STRIPE_BILLING_PRODUCTS``)
        that grants it: paid, not fully refunded, and no dispute of it lost."""
        return bought.has_purchased(get_state(), user_or_account, product)

    def refund(
        self,
        purchase: PurchaseRecord | str,
        amount: int | None = None,
        reason: str | None = None,
    ) -> PurchaseRecord:
        """Refund ``amount`` (the currency's smallest unit; default: all that is left) of a
        purchase (or its id) at Stripe and apply the refund at once; the purchase as it
        is now. ``reason``: ``duplicate``, ``fraudulent`` or ``requested_by_customer``.

        Raises ValidationError (400) for a bad amount or reason, ConflictError (409) when
        nothing is left to refund, StripeServiceError (502) when Stripe fails (nothing
        applied), LookupError for an unknown purchase. Needs ``STRIPE_API_KEY``.
        """
        return bought.refund(get_state(), app_object(), purchase, amount, reason)

    def plan_required(self, *plans: str) -> ViewDecorator:
        """Decorate a view so that only users on one of ``plans`` see it.

        No plan given: any paid plan. Anonymous callers get the login page
        (or 401), others without the plan the pricing page (or 402).
        """
        return gates.guard(gates.plan_check(plans))

    def feature_required(self, feature: str) -> ViewDecorator:
        """Decorate a view so that only users whose plan includes ``feature`` see it.

        Features per plan come from ``STRIPE_BILLING_FEATURES``. Anonymous
        callers get the login page (or 401), others the pricing page (or 403).
        """
        return gates.guard(gates.feature_check(feature))

    def require_plan_for_blueprint(self, blueprint: Blueprint, *plans: str) -> None:
        """Gate every view of ``blueprint`` like :meth:`plan_required`.

        Uses ``blueprint.before_request``, so only that blueprint's requests are
        checked; call it before the blueprint is registered.
        """
        gates.guard_blueprint(blueprint, gates.plan_check(plans))

    def require_feature_for_blueprint(self, blueprint: Blueprint, feature: str) -> None:
        """Gate every view of ``blueprint`` like :meth:`feature_required`."""
        gates.guard_blueprint(blueprint, gates.feature_check(feature))

    def admin_blueprint(
        self,
        admin_required: AdminCheck | None = None,
        *,
        url_prefix: str = "/billing/admin",
        name: str = "stripe_billing_admin",
        account_sections: Iterable[SectionSource] = (),
    ) -> Blueprint:
        """The operations page (event log, accounts, replay / link / sync), a new blueprint
        for ``app.register_blueprint`` after :meth:`init_app`.

        ``admin_required``: called on every request to the page, truthy lets the caller
        in (else 403); without it the app's ``STRIPE_BILLING_ADMIN`` callable; with
        neither, registering raises RuntimeError. See docs/operations.md.
        """
        return create_admin_blueprint(
            admin_required, name=name, url_prefix=url_prefix, account_sections=account_sections
        )

    def _on_blueprint_registered(self, setup: BlueprintSetupState) -> None:
        if EXTENSION_KEY not in setup.app.extensions:
            self._set_up(setup.app, Options())  # type: ignore[arg-type]

    def _set_up(self, app: Flask, options: Options) -> None:
        """Check the store once and keep the app's state: ``options`` over the constructor's."""
        merged: Options = {**self.options, **options}
        parts = check_store(
            merged.get("user_store"),
            event_log=merged.get("event_log"),
            subscription_log=merged.get("subscription_log"),
        )
        settings = Settings.from_config(app.config)
        app.extensions[EXTENSION_KEY] = BillingState(
            settings=settings,
            user_store=parts.user_store,
            event_log=parts.event_log,
            subscription_log=parts.subscription_log,
            steps=parts.steps,
            current_user_id=merged.get("current_user_id") or flask_login_user_id,
            stripe=(StripeGateway(settings.api_key, settings) if settings.api_key else None),
            dispatch=merged.get("dispatch"),
            entitlement_log=parts.entitlement_log,
            schema=SchemaWatch(parts.user_store, parts.event_log),
            usage_log=parts.usage_log,
            purchase_log=parts.purchase_log,
            usage_stripe=(
                StripeGateway(settings.api_key, settings, pacer=Pacer(settings.usage_rate))
                if settings.api_key
                else None
            ),
        )
        with app.app_context():  # the one start-up inspection of the tables and columns
            app.extensions[EXTENSION_KEY].schema.start()
        # Cancels a duplicate subscription after the commit, when the app opts in.
        signals.duplicate_subscription.connect(on_duplicate, sender=app, weak=False)
        if settings.lookup_keys:
            app.before_request(prices.resolve_before_request(app, self.blueprint.name))
        exempt_webhook_from_csrf(app)
        app.context_processor(billing_template_context)
        app.jinja_env.globals.update(TEMPLATE_GLOBALS)
        register_commands(app)

    def client_reference(self, user_id: str | int) -> str:
        """A signed ``client_reference_id`` naming ``user_id``, for a pricing table's
        ``client-reference-id`` (or any Checkout the app does not create itself).

        Needs an app context and ``SECRET_KEY`` (or ``STRIPE_REFERENCE_SECRET``).
        """
        return references.sign_reference(user_id, get_state().settings)

    def payment_link_url(self, url: str, user_id: str | int) -> str:
        """The Payment Link ``url`` with a signed ``client_reference_id`` naming ``user_id``.

        With ``STRIPE_SIGNED_REFERENCES`` on, only such references link a customer.
        """
        return references.payment_link_url(url, user_id, get_state().settings)


def _given(options: Options) -> Options:
    """The options actually given (a ``None`` one is left to the default), each known."""
    unknown = set(options) - Options.__optional_keys__
    if unknown:
        raise TypeError(f"StripeBilling got unexpected options: {', '.join(sorted(unknown))}")
    return cast(Options, {name: value for name, value in options.items() if value is not None})


def flask_login_user_id() -> str | None:
    """The signed-in user's id from Flask-Login, when it is installed."""
    if current_user is None or getattr(current_app, "login_manager", None) is None:
        return None  # installed, but this app does not use it
    if current_user and current_user.is_authenticated:
        user_id: Any = current_user.get_id()
        return None if user_id is None else str(user_id)
    return None
