"""Checkout and portal requests: which price, which parameters. Pure: no Flask, no HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..config import Settings
from ..errors import ConflictError, NotConfiguredError, NotFoundError, ValidationError
from .account import PAID_STATUSES, BillingAccount, SubscriptionRecord

#: The ``interval`` values a client may ask for, and the setting naming each price.
INTERVAL_SETTINGS = {
    "monthly": "STRIPE_PRICE_PRO_MONTHLY",
    "yearly": "STRIPE_PRICE_PRO_YEARLY",
}


#: Double clicks within this many seconds get the same Checkout session back.
SESSION_DEDUP_SECONDS = 60


#: The most of one product a single Checkout sells: a whole number from 1 to this.
MAX_PRODUCT_QUANTITY = 100


#: The metadata keys naming what a one-time purchase's session (and its payment) sells.
PRODUCT_METADATA = "stripe_billing_product"
QUANTITY_METADATA = "stripe_billing_quantity"


def choose_price(body: Any, settings: Settings) -> str:
    """The configured price the request body asks for; never a price the client invents."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    if body.get("price_id") is not None:
        price_id = body["price_id"]
        if not isinstance(price_id, str) or price_id not in settings.configured_prices:
            raise ValidationError(
                "price_id is not one of the configured prices", {"field": "price_id"}
            )
        return price_id
    interval = body.get("interval", "monthly")
    if not isinstance(interval, str) or interval not in INTERVAL_SETTINGS:
        raise ValidationError('interval must be "monthly" or "yearly"', {"field": "interval"})
    price_id = settings.price_pro_monthly if interval == "monthly" else settings.price_pro_yearly
    if price_id is None:
        raise NotConfiguredError([INTERVAL_SETTINGS[interval]])
    return price_id


def choose_product(body: Any, settings: Settings) -> tuple[str, str] | None:
    """The configured product the body asks for (``product``) and its one-time price;
    None when it names no product (a subscription). A price never comes from the client."""
    if not isinstance(body, dict) or body.get("product") is None:
        return None
    product = body["product"]
    price_id = settings.price_for_product(product) if isinstance(product, str) else None
    if price_id is None:
        raise ValidationError("product is not one of the configured products", {"field": "product"})
    if body.get("price_id") is not None or body.get("interval") is not None:
        raise ValidationError(
            "Send product alone, without price_id or interval", {"field": "product"}
        )
    return product, price_id


def choose_product_quantity(body: Any) -> int:
    """How many of the product the body asks for (``quantity``): 1 when not given, else a
    whole number from 1 to :data:`MAX_PRODUCT_QUANTITY`; anything else is a 400."""
    value = body.get("quantity") if isinstance(body, dict) else None
    if value is None:
        return 1
    details = {"field": "quantity", "min": 1, "max": MAX_PRODUCT_QUANTITY}
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("quantity must be a whole number", details)
    if not 1 <= value <= MAX_PRODUCT_QUANTITY:
        raise ValidationError(f"quantity must be from 1 to {MAX_PRODUCT_QUANTITY}", details)
    return value


def choose_quantity(body: Any, settings: Settings) -> int:
    """The seats the body asks for (``quantity``), within STRIPE_SEATS_MIN..MAX.

    No quantity: the minimum. Anything but a whole number in the bounds is a 400.
    """
    value = body.get("quantity") if isinstance(body, dict) else None
    if value is None:
        return settings.seats_min
    return check_seats(value, settings)


def check_seats(value: Any, settings: Settings) -> int:
    """``value`` if it is a whole number within STRIPE_SEATS_MIN..MAX; a 400 otherwise.

    Checkout and a seat change (``billing.change_quantity``) keep to the same bounds.
    """
    low, high = settings.seats_min, settings.seats_max
    details = {"field": "quantity", "min": low, "max": high}
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("quantity must be a whole number", details)
    if not low <= value <= high:
        wanted = f"{low}" if low == high else f"from {low} to {high}"
        raise ValidationError(f"quantity must be {wanted}", details)
    return value


def trial_allowed(account: BillingAccount, records: Sequence[SubscriptionRecord]) -> bool:
    """Whether a Checkout may start with a trial: only for an account that never subscribed.

    Any subscription record (ended, failed or live) or a subscription on the
    account means it had its chance, so cancelling and coming back gives no new trial.
    """
    return not records and account.stripe_subscription_id is None


def trial_options(price_id: str, settings: Settings, allowed: bool) -> dict[str, Any]:
    """The trial part of a Checkout session: days for this price, and a cardless trial."""
    days = settings.trial_days_for(price_id) if allowed else None
    if days is None:
        return {}
    subscription: dict[str, Any] = {"trial_period_days": days}
    options: dict[str, Any] = {"subscription_data": subscription}
    if settings.trial_without_card:
        options["payment_method_collection"] = "if_required"
        subscription["trial_settings"] = {
            "end_behavior": {"missing_payment_method": settings.trial_end_behavior}
        }
    return options


def ensure_can_subscribe(account: BillingAccount, portal_url: str) -> None:
    """Refuse a second subscription to a user who already has a paying one."""
    # Not grants_plan: a past_due subscription may be replaced by a new Checkout, grace or not.
    if account.stripe_subscription_id and account.subscription_status in PAID_STATUSES:
        raise ConflictError(
            "You already have an active subscription; manage it in the billing portal",
            {"subscription_status": account.subscription_status, "portal": portal_url},
        )


def sessions_to_expire(
    sessions: Sequence[Mapping[str, Any]], new_session_id: str, product: str | None = None
) -> list[str]:
    """The customer's other open Checkout sessions for the same thing as the new one: each
    could still be paid beside it (two tabs, an old link), so each is expired.

    For a subscription (``product`` None), the other subscription sessions; a one-time
    purchase's session is left alone. For a ``product``, the other open purchases of that
    product made by this library (its ``metadata.stripe_billing_product``); a subscription,
    another product and a session of the app's own are left alone. The new session (or the
    one a double click was given back) is never expired."""
    return [
        str(session["id"])
        for session in sessions
        if _same_purchase(session, product)
        and session.get("status") == "open"
        and isinstance(session.get("id"), str)
        and session["id"] != new_session_id
    ]


def _same_purchase(session: Mapping[str, Any], product: str | None) -> bool:
    """Whether ``session`` sells what the new session sells: a subscription, or ``product``."""
    if product is None:
        return session.get("mode") == "subscription"
    metadata = session.get("metadata")
    return (
        session.get("mode") == "payment"
        and isinstance(metadata, Mapping)
        and metadata.get(PRODUCT_METADATA) == product
    )


def expire_key(session_id: str) -> str:
    """The one idempotency key of a session's expiry."""
    return f"flask-stripe-billing-expire-{session_id}"


def redirect_urls(settings: Settings) -> tuple[str, str]:
    """Checkout's success and cancel URLs; both must be configured."""
    missing = [
        name
        for name, value in (
            ("STRIPE_SUCCESS_URL", settings.success_url),
            ("STRIPE_CANCEL_URL", settings.cancel_url),
        )
        if not value
    ]
    if missing or settings.success_url is None or settings.cancel_url is None:
        raise NotConfiguredError(missing)
    return settings.success_url, settings.cancel_url


def portal_return_url(settings: Settings) -> str:
    """STRIPE_PORTAL_RETURN_URL, else the origin of the success URL."""
    if settings.portal_return_url:
        return settings.portal_return_url
    if settings.success_url:
        parts = urlsplit(settings.success_url)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}/"
    raise NotConfiguredError(["STRIPE_PORTAL_RETURN_URL"])


#: The portal's deep links (``flow_data.type``) the portal route offers.
PORTAL_FLOWS = ("payment_method_update", "subscription_cancel", "subscription_update")


def portal_params(
    account: BillingAccount, return_url: str, settings: Settings, flow: str | None
) -> dict[str, Any]:
    """The Billing-portal session: the customer, where to come back, the configuration,
    and a deep link into one flow (the account's subscription for the subscription flows)."""
    if account.stripe_customer_id is None:
        raise NotFoundError("No Stripe customer for this user yet; subscribe first")
    params: dict[str, Any] = {"customer": account.stripe_customer_id, "return_url": return_url}
    if settings.portal_configuration:
        params["configuration"] = settings.portal_configuration
    if flow is None:
        return params
    if flow not in PORTAL_FLOWS:
        raise ValidationError(f"flow must be one of {', '.join(PORTAL_FLOWS)}", {"field": "flow"})
    flow_data: dict[str, Any] = {"type": flow}
    if flow != "payment_method_update":
        if account.stripe_subscription_id is None:
            raise ConflictError("No subscription to change yet; subscribe first", {"flow": flow})
        flow_data[flow] = {"subscription": account.stripe_subscription_id}
    params["flow_data"] = flow_data
    return params


def customer_params(account: BillingAccount) -> dict[str, Any]:
    """The Stripe customer for a user: e-mail and ``metadata.user_id``."""
    params: dict[str, Any] = {"metadata": {"user_id": account.user_id}}
    if account.email:
        params["email"] = account.email
    return params


def customer_idempotency_key(account: BillingAccount) -> str:
    """One key per user and e-mail, so two concurrent clicks make one customer."""
    return "flask-stripe-billing-customer-" + _digest(account.user_id, account.email or "")


def session_params(
    account: BillingAccount,
    customer_id: str,
    price_id: str,
    settings: Settings,
    *,
    quantity: int = 1,
    trial: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Checkout session: one line of the price for ``quantity`` seats and a line of
    each metered price of its plan (:func:`line_items`), linked to the user three ways;
    ``trial`` is :func:`trial_options`' answer."""
    success_url, cancel_url = redirect_urls(settings)
    metadata = {"user_id": account.user_id, "price_id": price_id}
    trial = dict(trial or {})
    subscription_data = {
        "metadata": {"user_id": account.user_id},
        **trial.pop("subscription_data", {}),
    }
    return {
        "mode": "subscription",
        "customer": customer_id,
        "line_items": line_items(price_id, quantity, settings),
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": account.user_id,
        "metadata": metadata,
        "subscription_data": subscription_data,
        **trial,
        **checkout_options(settings),
    }


def purchase_params(
    account: BillingAccount,
    customer_id: str,
    product: str,
    price_id: str,
    quantity: int,
    settings: Settings,
) -> dict[str, Any]:
    """The Checkout session of a one-time purchase (mode ``payment``): ``quantity`` of the
    product's price, linked to the user as a subscription's is, the product and quantity
    in the session's metadata and its payment's (so charges, refunds and disputes name
    them too). The coupon is for plans: promotion codes are offered when allowed."""
    success_url, cancel_url = redirect_urls(settings)
    metadata = {
        "user_id": account.user_id,
        PRODUCT_METADATA: product,
        QUANTITY_METADATA: str(quantity),
    }
    return {
        "mode": "payment",
        "customer": customer_id,
        "line_items": [{"price": price_id, "quantity": quantity}],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": account.user_id,
        "metadata": metadata,
        "payment_intent_data": {"metadata": dict(metadata)},
        **checkout_options(settings, coupon=False),
    }


def line_items(price_id: str, quantity: int, settings: Settings) -> list[dict[str, Any]]:
    """The licensed price for ``quantity`` seats, then each metered price of its plan
    (STRIPE_BILLING_METERED_PRICES) without a quantity: Stripe refuses one on a metered
    price, whose usage is billed from its meter."""
    metered = [{"price": metered} for metered in settings.metered_prices_for(price_id)]
    return [{"price": price_id, "quantity": quantity}, *metered]


def checkout_options(settings: Settings, *, coupon: bool = True) -> dict[str, Any]:
    """The Checkout options the settings ask for, and only those.

    A coupon replaces promotion codes (Stripe takes one or the other); ``coupon=False``
    (a one-time purchase) leaves STRIPE_CHECKOUT_COUPON, a plan's offer, out. With
    Stripe Tax or tax ids, the customer we pass must take the address and name
    the buyer enters, so that tax is computed and invoiced on them.
    """
    options: dict[str, Any] = {}
    if coupon and settings.checkout_coupon:
        options["discounts"] = [{"coupon": settings.checkout_coupon}]
    else:
        options["allow_promotion_codes"] = settings.allow_promotion_codes
    customer_update = {}
    if settings.checkout_automatic_tax:
        options["automatic_tax"] = {"enabled": True}
        customer_update["address"] = "auto"
    if settings.checkout_tax_id_collection:
        options["tax_id_collection"] = {"enabled": True}
        customer_update["name"] = "auto"
    if customer_update:
        options["customer_update"] = customer_update
    if settings.checkout_billing_address:
        options["billing_address_collection"] = settings.checkout_billing_address
    if settings.checkout_locale:
        options["locale"] = settings.checkout_locale
    return options


def session_idempotency_key(
    account: BillingAccount, price_id: str, now: float, quantity: int = 1
) -> str:
    """The same key for the same user, price and seats within a short window (double
    clicks); another quantity is another request, so another key."""
    window = int(now // SESSION_DEDUP_SECONDS)
    parts = (account.user_id, price_id, str(window), str(quantity))
    return "flask-stripe-billing-checkout-" + _digest(*parts)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
