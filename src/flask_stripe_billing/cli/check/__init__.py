"""What ``flask billing check`` finds: settings, versions, the event log and, online, Stripe.

Never shows a secret: an API key appears as its kind, mode and last four
characters, webhook signing secrets only as a count.
"""

from __future__ import annotations

from typing import Any

from ...actions.prices import lookup_prices
from ...config import (
    DEFAULT_API_CONNECT_TIMEOUT,
    DEFAULT_API_MAX_RETRIES,
    DEFAULT_API_READ_TIMEOUT,
    DEFAULT_MAX_WEBHOOK_BYTES,
    DEFAULT_PRO_PLAN,
    DEFAULT_PRORATION_BEHAVIOR,
    DEFAULT_TOLERANCE_SECONDS,
    LOOKUP_KEY_PREFIX,
    Settings,
)
from ...core.checkout import portal_return_url
from ...errors import BillingError, NotConfiguredError, StripeServiceError
from ...redact import describe_error
from ...state import BillingState
from ...stores.base import EVENTS_TABLE, TableInspection
from ...stripe_api import StripeGateway
from ..reports import error_text, truncate
from .findings import Finding
from .online import key_mode, mode_mismatch, thin_destinations, webhook_endpoints
from .settings import check_versions, thin_secrets, webhook_secrets

#: A key shorter than this is not a Stripe key: its last four characters are not shown.
MIN_KEY_LENGTH = 20


KEY_KINDS = {"sk": "secret key", "rk": "restricted key", "pk": "publishable key"}


#: Currencies whose amounts Stripe gives in whole units, not hundredths.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)


def check_settings(settings: Settings) -> list[Finding]:
    """Each setting: set, missing or default, and what a missing one turns off."""
    found = [
        webhook_secrets(settings.webhook_secrets, thin=bool(settings.thin_webhook_secrets)),
        thin_secrets(settings),
        _api_key(settings.api_key),
    ]
    no_price = not settings.configured_prices
    for name, value, interval in (
        ("STRIPE_PRICE_PRO_MONTHLY", settings.price_pro_monthly, "monthly"),
        ("STRIPE_PRICE_PRO_YEARLY", settings.price_pro_yearly, "yearly"),
    ):
        if value:
            found.append(Finding("set", name, value))
        else:
            effect = (
                "Checkout has no price to sell"
                if no_price
                else f'{{"interval": "{interval}"}} answers 503'
            )
            found.append(Finding("missing", name, effect))
    for name, value in (
        ("STRIPE_SUCCESS_URL", settings.success_url),
        ("STRIPE_CANCEL_URL", settings.cancel_url),
    ):
        found.append(
            Finding("set", name, value)
            if value
            else Finding("missing", name, "Checkout answers 503")
        )
    found.append(_portal_return_url(settings))
    plans = ", ".join(f"{price} → {plan}" for price, plan in settings.plans.items())
    found.append(
        Finding("set", "STRIPE_BILLING_PLANS", plans)
        if plans
        else Finding(
            "default", "STRIPE_BILLING_PLANS", f"none: every price grants {settings.pro_plan_name}"
        )
    )
    products = ", ".join(f"{price} → {key}" for price, key in settings.products.items())
    found.append(
        Finding("set", "STRIPE_BILLING_PRODUCTS", products)
        if products
        else Finding(
            "default", "STRIPE_BILLING_PRODUCTS", "none: Checkout sells no one-time product"
        )
    )
    granted = "; ".join(
        f"{key}: {', '.join(features) or '-'}"
        for key, features in settings.product_features.items()
    )
    found.append(
        Finding("set", "STRIPE_BILLING_PRODUCT_FEATURES", granted)
        if granted
        else Finding(
            "default", "STRIPE_BILLING_PRODUCT_FEATURES", "none: a purchase grants no feature"
        )
    )
    with_defaults: tuple[tuple[str, object, object], ...] = (
        ("PRO_PLAN_NAME", settings.pro_plan_name, DEFAULT_PRO_PLAN),
        ("STRIPE_PAST_DUE_KEEPS_PLAN", settings.past_due_keeps_plan, True),
        ("STRIPE_ALLOW_PROMOTION_CODES", settings.allow_promotion_codes, False),
        ("STRIPE_WEBHOOK_MAX_BYTES", settings.max_webhook_bytes, DEFAULT_MAX_WEBHOOK_BYTES),
        ("STRIPE_WEBHOOK_TOLERANCE", settings.webhook_tolerance, DEFAULT_TOLERANCE_SECONDS),
        ("STRIPE_API_CONNECT_TIMEOUT", settings.api_connect_timeout, DEFAULT_API_CONNECT_TIMEOUT),
        ("STRIPE_API_READ_TIMEOUT", settings.api_read_timeout, DEFAULT_API_READ_TIMEOUT),
        ("STRIPE_API_MAX_RETRIES", settings.api_max_retries, DEFAULT_API_MAX_RETRIES),
        ("STRIPE_PRORATION_BEHAVIOR", settings.proration_behavior, DEFAULT_PRORATION_BEHAVIOR),
        ("STRIPE_BILLING_MANAGEMENT_ROUTES", settings.management_routes, False),
    )
    for setting, current, default in with_defaults:
        state = "default" if current == default else "set"
        found.append(Finding(state, setting, _value_text(current)))
    found.append(_refetch(settings))
    found.extend(_gates(settings))
    found.extend(_offers(settings))
    found.extend(check_versions())
    return found


def check_event_log(state: BillingState) -> Finding:
    """Whether the event log can be used: its table exists (a log that can tell,
    :class:`TableInspection`) or it answers a read."""
    log = state.event_log
    hint = ""
    if isinstance(log, TableInspection):
        hint = log.create_tables_hint()
        name = log.library_tables()[EVENTS_TABLE]
        try:
            missing = log.missing_tables()
        except Exception as error:
            return Finding("failed", "event log", f"database unreachable: {_one_line(error)}", True)
        if name not in missing:
            return mode_mismatch(state) or Finding("ok", "event log", f"table {name} exists")
        return Finding(
            "missing",
            "event log",
            f"table {name} does not exist: {hint} (the webhook answers 503 until then)",
            problem=True,
        )
    try:
        with log.transaction():
            log.list_events(limit=1)
    except Exception as error:
        return Finding("failed", "event log", _one_line(error), problem=True)
    return mode_mismatch(state) or Finding("ok", "event log", f"{type(log).__name__} answers")


def check_online(settings: Settings, gateway: StripeGateway | None) -> list[Finding]:
    """Stripe's view: the API key is accepted, each configured price exists and is recurring
    (a product's: one-time), the webhook endpoints (and, with thin events on, the event
    destinations) send what the package handles."""
    if gateway is None:
        return [Finding("missing", "API key", "STRIPE_API_KEY is not set: nothing to check", True)]
    try:
        gateway.retrieve_balance()
    except StripeServiceError as error:
        status = error.details.get("status")
        if status == 401:
            return [Finding("failed", "API key", f"refused by Stripe ({_where(error)})", True)]
        if status != 403:  # a restricted key may not read the balance; it was accepted
            return [Finding("failed", "API key", error_text(error), True)]
    found = [Finding("ok", "API key", "accepted by Stripe")]
    settings, lookup = _lookup_keys(settings, gateway)
    found.extend(lookup)
    for price_id, used_by in _prices(settings):
        found.append(_price(gateway, price_id, used_by))
    for price_id, product in settings.products.items():
        if not price_id.startswith(LOOKUP_KEY_PREFIX):  # resolved, or not checked
            found.append(_product_price(gateway, price_id, product))
    found.extend(webhook_endpoints(gateway, key_mode(settings.api_key)))
    if settings.thin_webhook_secrets:
        found.extend(thin_destinations(gateway, key_mode(settings.api_key)))
    return found


def describe_key(key: str) -> tuple[str, bool]:
    """``secret key, test mode, ending in 4f2a`` and whether it can call the API; never the key."""
    kind, _, rest = key.partition("_")
    mode = rest.partition("_")[0]
    if kind not in KEY_KINDS or mode not in ("test", "live") or len(key) < MIN_KEY_LENGTH:
        return "not a Stripe API key (sk_test_..., sk_live_..., rk_...)", False
    text = f"{KEY_KINDS[kind]}, {mode} mode, ending in {key[-4:]}"
    if kind == "pk":
        return (
            f"{text}: publishable keys cannot call the API; use a secret or restricted key",
            False,
        )
    return text, True


def _api_key(key: str | None) -> Finding:
    name = "STRIPE_API_KEY"
    if not key:
        return Finding("missing", name, "Checkout, the portal and sync answer 503 without it")
    text, usable = describe_key(key)
    return Finding("set" if usable else "invalid", name, text, problem=not usable)


def _portal_return_url(settings: Settings) -> Finding:
    name = "STRIPE_PORTAL_RETURN_URL"
    if settings.portal_return_url:
        return Finding("set", name, settings.portal_return_url)
    try:
        return Finding("default", name, f"{portal_return_url(settings)} (the success URL's origin)")
    except NotConfiguredError:
        return Finding("missing", name, "the portal answers 503 (no success URL to fall back on)")


def _refetch(settings: Settings) -> Finding:
    name = "STRIPE_REFETCH_SUBSCRIPTIONS"
    if not settings.refetch_subscriptions:
        return Finding("default", name, "false")
    if settings.api_key:
        return Finding("set", name, "true")
    return Finding(
        "invalid", name, "true, but STRIPE_API_KEY is missing: subscription events fail", True
    )


def _lookup_keys(settings: Settings, gateway: StripeGateway) -> tuple[Settings, list[Finding]]:
    """The settings with their price lookup keys resolved by Stripe, and what that found
    (an unresolved key stays as it is, and its price is not checked)."""
    if not settings.lookup_keys:
        return settings, []
    subject = "price lookup keys"
    try:
        resolved = lookup_prices(settings, gateway)
    except NotConfiguredError as error:
        return settings, [Finding("missing", subject, m, True) for m in error.details["missing"]]
    except StripeServiceError as error:
        return settings, [Finding("failed", subject, error_text(error), True)]
    shown = ", ".join(f"{key} → {price_id}" for key, price_id in sorted(resolved.items()))
    return settings.with_prices(resolved), [Finding("ok", subject, shown)]


def _prices(settings: Settings) -> list[tuple[str, str]]:
    """Each configured price once, with the settings that name it."""
    uses: dict[str, list[str]] = {}
    for price_id, used_by in (
        (settings.price_pro_monthly, "STRIPE_PRICE_PRO_MONTHLY"),
        (settings.price_pro_yearly, "STRIPE_PRICE_PRO_YEARLY"),
        *((price, f"plan {plan}") for price, plan in settings.plans.items()),
    ):
        if price_id and not price_id.startswith(LOOKUP_KEY_PREFIX):  # resolved, or not checked
            uses.setdefault(price_id, []).append(used_by)
    return [(price_id, ", ".join(names)) for price_id, names in uses.items()]


def _price(gateway: StripeGateway, price_id: str, used_by: str) -> Finding:
    subject = f"price {price_id}"
    price = _retrieved_price(gateway, price_id)
    if isinstance(price, Finding):
        return price
    if price.get("type") != "recurring" or not price.get("recurring"):
        return Finding(
            "invalid",
            subject,
            f"a one-time price ({used_by}); a subscription needs a recurring price",
            True,
        )
    if not price.get("active", True):
        return Finding("invalid", subject, f"archived ({used_by}); Checkout refuses it", True)
    return Finding("ok", subject, f"{_amount(price)} ({used_by})")


def _product_price(gateway: StripeGateway, price_id: str, product: str) -> Finding:
    """A product's price: it must exist, be one-time (Checkout in ``payment`` mode refuses
    a recurring one) and active."""
    subject = f"price {price_id}"
    price = _retrieved_price(gateway, price_id)
    if isinstance(price, Finding):
        return price
    if price.get("type") != "one_time":
        return Finding(
            "invalid",
            subject,
            f"a recurring price (product {product}); a one-time purchase needs a one-time "
            "price, and Checkout refuses this one",
            True,
        )
    if not price.get("active", True):
        return Finding(
            "invalid", subject, f"archived (product {product}); Checkout refuses it", True
        )
    return Finding("ok", subject, f"{_one_time_amount(price)} (product {product})")


def _retrieved_price(gateway: StripeGateway, price_id: str) -> dict[str, Any] | Finding:
    """The price from Stripe, or the finding that says why it could not be read."""
    subject = f"price {price_id}"
    try:
        return gateway.retrieve_price(price_id)
    except StripeServiceError as error:
        if error.details.get("status") == 404:
            return Finding(
                "missing", subject, f"no such price for this key ({_where(error)})", True
            )
        return Finding("failed", subject, error_text(error), True)


def _one_time_amount(price: dict[str, Any]) -> str:
    """``one-time, 5.00 USD`` from a price object."""
    shown = _money(price)
    return f"one-time, {shown}" if shown else "one-time"


def _money(price: dict[str, Any]) -> str | None:
    """``10.00 USD`` (``1000 JPY``) from a price's ``unit_amount``; None without one."""
    amount = price.get("unit_amount")
    currency = str(price.get("currency") or "").upper()
    if not isinstance(amount, int):
        return None
    whole = currency.lower() in ZERO_DECIMAL_CURRENCIES
    return f"{amount if whole else f'{amount / 100:.2f}'} {currency}"


def _amount(price: dict[str, Any]) -> str:
    """``recurring, 10.00 USD every month`` from a price object."""
    recurring = price.get("recurring") or {}
    count, interval = recurring.get("interval_count") or 1, recurring.get("interval")
    every = f"every {interval}" if count == 1 else f"every {count} {interval}s"
    shown = _money(price)
    return f"recurring, {shown} {every}" if shown else f"recurring, {every}"


def _where(error: BillingError) -> str:
    parts = [f"HTTP {error.details['status']}" if error.details.get("status") else ""]
    request_id = error.details.get("request_id")
    parts.append(f"request {request_id}" if request_id else "")
    return ", ".join(part for part in parts if part)


def _gates(settings: Settings) -> list[Finding]:
    """What the view gates read: the features per plan and where they send browsers."""
    features = "; ".join(
        f"{plan}: {', '.join(keys) or '-'}" for plan, keys in settings.features.items()
    )
    settings_and_defaults = (
        (
            "STRIPE_BILLING_FEATURES",
            features,
            "none: feature gates follow Stripe Entitlements alone",
        ),
        (
            "STRIPE_BILLING_PRICING_URL",
            settings.pricing_url,
            "none: gates answer browsers with a plain HTML 402/403 page",
        ),
        (
            "STRIPE_BILLING_LOGIN_URL",
            settings.login_url,
            "none: gates use Flask-Login's login_view, else the pricing URL",
        ),
    )
    return [
        Finding("set", name, value) if value else Finding("default", name, default)
        for name, value, default in settings_and_defaults
    ]


def _offers(settings: Settings) -> list[Finding]:
    """What Checkout offers beyond the price: trial days, a cardless trial, seats."""
    days = [f"{price}: {n}" for price, n in settings.trial_days_by_price.items()]
    if settings.trial_days is not None:
        days.insert(0, f"every price: {settings.trial_days}")
    cardless = f"true (at the end without a card: {settings.trial_end_behavior})"
    seats = f"{settings.seats_min} to {settings.seats_max}"
    return [
        Finding("set", "STRIPE_TRIAL_DAYS", ", ".join(days))
        if days
        else Finding("default", "STRIPE_TRIAL_DAYS", "none: Checkout gives no trial"),
        Finding("set", "STRIPE_TRIAL_WITHOUT_CARD", cardless)
        if settings.trial_without_card
        else Finding("default", "STRIPE_TRIAL_WITHOUT_CARD", "false: a trial asks for a card"),
        Finding("set", "STRIPE_SEATS_MIN/MAX", seats)
        if settings.seats_max > 1 or settings.seats_min > 1
        else Finding("default", "STRIPE_SEATS_MIN/MAX", "1 to 1: Checkout sells one seat"),
    ]


def _value_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _one_line(error: BaseException) -> str:
    return truncate(describe_error(error), 120)
