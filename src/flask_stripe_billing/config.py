"""Reading the settings of what Checkout offers: trial days per price, cardless trials, seats.

Kept apart from :mod:`.config` so that module stays about the settings object;
each function turns one raw value (``app.config`` or the environment) into a
checked one, or raises ``ValueError`` naming the setting.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

#: Stripe's bounds of ``subscription_data[trial_period_days]``.
MAX_TRIAL_DAYS = 730


#: What Stripe may do when a cardless trial ends without a payment method
#: (``trial_settings.end_behavior.missing_payment_method``).
TRIAL_END_BEHAVIORS = ("cancel", "pause", "create_invoice")


DEFAULT_TRIAL_END_BEHAVIOR = "cancel"


def trial_days(value: Any) -> tuple[int | None, dict[str, int]]:
    """``STRIPE_TRIAL_DAYS``: days for every price, or price id → days.

    A number (``14``, ``"14"``) applies to every price; a mapping, a JSON
    object or ``price_a=14,price_b=30`` text names the prices that get a trial.
    """
    if value is None:
        return None, {}
    if isinstance(value, Mapping):
        return None, {str(price): _days(days, str(price)) for price, days in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return _days(value, None), {}
    text = str(value).strip()
    if text.startswith("{"):
        loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError("STRIPE_TRIAL_DAYS must be a number or a JSON object")
        return trial_days(loaded)
    if "=" not in text:
        return _days(text, None), {}
    by_price = {}
    for item in (part for part in text.split(",") if part.strip()):
        price, _, days = item.partition("=")
        if not price.strip() or not days.strip():
            raise ValueError("STRIPE_TRIAL_DAYS must look like price_id=days,...")
        by_price[price.strip()] = _days(days, price.strip())
    return None, by_price


def _days(value: Any, price: str | None) -> int:
    """One number of trial days, 1 to 730 (Stripe's bounds)."""
    name = "STRIPE_TRIAL_DAYS" if price is None else f"STRIPE_TRIAL_DAYS[{price!r}]"
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else -1
    except ValueError:
        raise ValueError(f"{name} must be a whole number of days, not {value!r}") from None
    if not 1 <= number <= MAX_TRIAL_DAYS:
        raise ValueError(f"{name} must be from 1 to {MAX_TRIAL_DAYS} days, not {value!r}")
    return number


def seat_bounds(low: Any, high: Any) -> tuple[int, int]:
    """``STRIPE_SEATS_MIN`` (default 1) and ``STRIPE_SEATS_MAX`` (default: the minimum)."""
    seats_min = _seats(low, "STRIPE_SEATS_MIN", 1)
    seats_max = _seats(high, "STRIPE_SEATS_MAX", seats_min)
    if seats_max < seats_min:
        raise ValueError(
            f"STRIPE_SEATS_MAX ({seats_max}) must not be below STRIPE_SEATS_MIN ({seats_min})"
        )
    return seats_min, seats_max


def _seats(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else 0
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be at least 1, not {value!r}")
    return number


DEFAULT_PRO_PLAN = "pro"


#: A configured price given by its Stripe lookup key rather than its id:
#: ``lookup_key:pro_monthly`` (the same configuration in test and live mode).
LOOKUP_KEY_PREFIX = "lookup_key:"
#: The usage sender's defaults: the payload key of Stripe's default meter, rows per claim,
#: meter events posted at once (a cap keeps a pass within Stripe's rate limits).
DEFAULT_USAGE_CUSTOMER_KEY = "stripe_customer_id"


DEFAULT_USAGE_BATCH_SIZE = 100


DEFAULT_USAGE_CONCURRENCY = 4


#: The 1,000 meter events a second Stripe's live mode allows (per account: with several
#: senders, give each its share).
DEFAULT_USAGE_RATE = 1000.0


MAX_USAGE_CONCURRENCY = 16


#: What Checkout's ``billing_address_collection`` accepts.
BILLING_ADDRESS_CHOICES = ("auto", "required")


#: What Stripe's ``proration_behavior`` accepts for a plan or quantity change.
PRORATION_CHOICES = ("create_prorations", "always_invoice", "none")


DEFAULT_PRORATION_BEHAVIOR = "create_prorations"


#: What Stripe's ``payment_behavior`` accepts for a plan or quantity change made now;
#: ``pending_if_incomplete`` holds the change until its payment goes through (3-D Secure).
PAYMENT_BEHAVIOR_CHOICES = (
    "allow_incomplete",
    "default_incomplete",
    "error_if_incomplete",
    "pending_if_incomplete",
)


#: What the pipeline does about a second live paid subscription of an account's plans:
#: send ``duplicate_subscription`` only, or also cancel the newer one with a refund.
DUPLICATES_SIGNAL = "signal"


DUPLICATES_CANCEL = "cancel_newest_and_refund"


DUPLICATE_CHOICES = (DUPLICATES_SIGNAL, DUPLICATES_CANCEL)


DEFAULT_MAX_WEBHOOK_BYTES = 1024 * 1024


DEFAULT_TOLERANCE_SECONDS = 300


#: Seconds to open a connection to Stripe's API, and to wait for its answer, per attempt.
DEFAULT_API_CONNECT_TIMEOUT = 2.0


DEFAULT_API_READ_TIMEOUT = 3.0


#: Attempts after the first (Stripe's idempotency keys make them safe). Worst case with
#: the defaults: 2 x (2 + 3) s + 0.5 s back-off, about 10 s, under gunicorn's 30 s.
DEFAULT_API_MAX_RETRIES = 1


#: Requests a second one app sends to Stripe's API, over every path: under Stripe's
#: test-mode limit of 25 a second (live mode allows 100), with room for the Dashboard.
DEFAULT_API_RATE = 20.0


#: Seconds one call may take in all: its waits for the pace and its retries (a 429's).
DEFAULT_API_DEADLINE = 10.0


#: Pages one listing of a customer's objects may read (100 objects each), and seconds
#: it may take in all, before it gives up; under gunicorn's 30 s worker timeout.
DEFAULT_MAX_PAGES = 20


DEFAULT_PAGING_DEADLINE = 15.0


#: The highest pace STRIPE_BILLING_API_RATE accepts (Stripe's live mode allows 100).
MAX_API_RATE = 1000.0


@dataclass(frozen=True)
class Settings:
    """Typed, validated configuration of one app; no Flask, so the rules can use it."""

    #: Masked in ``repr`` (error reporters capture reprs of frame locals).
    api_key: str | None = field(default=None, repr=False)
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    #: Signing secrets of event destinations that send thin (v2) event notifications.
    thin_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    price_pro_monthly: str | None = None
    price_pro_yearly: str | None = None
    success_url: str | None = None
    cancel_url: str | None = None
    portal_return_url: str | None = None
    #: The Billing-portal configuration (``bpc_...``); None: the account's default.
    portal_configuration: str | None = None
    pro_plan_name: str = DEFAULT_PRO_PLAN
    #: Price ID → plan name, for apps with more than one paid plan.
    plans: Mapping[str, str] = field(default_factory=dict)
    #: Whether a ``past_due`` subscription keeps its plan while Stripe retries.
    past_due_keeps_plan: bool = True
    max_webhook_bytes: int = DEFAULT_MAX_WEBHOOK_BYTES
    webhook_tolerance: int = DEFAULT_TOLERANCE_SECONDS
    #: Whether Checkout lets customers enter promotion codes.
    allow_promotion_codes: bool = False
    #: Re-read a subscription from Stripe's API before deciding (its latest state wins).
    refetch_subscriptions: bool = False
    #: Bounds of each call to Stripe's API: seconds to connect, to read, and retries.
    api_connect_timeout: float = DEFAULT_API_CONNECT_TIMEOUT
    api_read_timeout: float = DEFAULT_API_READ_TIMEOUT
    api_max_retries: int = DEFAULT_API_MAX_RETRIES
    #: The pace of calls to Stripe's API (requests a second, shared by every path), and
    #: the seconds one call may take with its waits for the pace and for 429 retries.
    api_rate: float = DEFAULT_API_RATE
    api_deadline: float = DEFAULT_API_DEADLINE
    #: Bounds of one listing of a customer's objects: pages, and seconds in all.
    max_pages: int = DEFAULT_MAX_PAGES
    paging_deadline: float = DEFAULT_PAGING_DEADLINE
    #: Plan → the feature keys it includes (what ``feature_required`` checks).
    features: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Plan name (or licensed price id) → the metered prices that come with it: Checkout
    #: adds them, ``change_plan`` moves them (``STRIPE_BILLING_METERED_PRICES``).
    metered_prices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: One-time price id (or ``lookup_key:NAME``) → product key: what Checkout sells in
    #: ``payment`` mode as ``{"product": key}`` (``STRIPE_BILLING_PRODUCTS``).
    products: Mapping[str, str] = field(default_factory=dict)
    #: Product key → the feature keys a purchase of it grants for life
    #: (``STRIPE_BILLING_PRODUCT_FEATURES``).
    product_features: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Where a gate sends a signed-in user without the plan: a URL or an endpoint name.
    pricing_url: str | None = None
    #: Where a gate sends an anonymous user (default: the pricing page).
    login_url: str | None = None
    #: Checkout options: Stripe Tax, tax ids, the billing address, a coupon, the locale.
    checkout_automatic_tax: bool = False
    checkout_tax_id_collection: bool = False
    checkout_billing_address: str | None = None
    checkout_coupon: str | None = None
    checkout_locale: str | None = None
    #: How a plan or quantity change made now is charged (Stripe's ``proration_behavior``).
    proration_behavior: str = DEFAULT_PRORATION_BEHAVIOR
    #: Whether the JSON routes under ``/billing/subscription/`` answer (off: 404).
    management_routes: bool = False
    #: The ``payment_behavior`` of a plan or quantity change made now (None: Stripe's).
    payment_behavior: str | None = None
    #: ``signal`` or ``cancel_newest_and_refund``: what a duplicate subscription gets.
    duplicates: str = DUPLICATES_SIGNAL
    #: Trial days for every price (None: no trial), and per price (wins over it).
    trial_days: int | None = None
    trial_days_by_price: Mapping[str, int] = field(default_factory=dict)
    #: A trial without a card, and what Stripe does when it ends without one.
    trial_without_card: bool = False
    trial_end_behavior: str = DEFAULT_TRIAL_END_BEHAVIOR
    #: How many seats (``quantity``) a Checkout may ask for.
    seats_min: int = 1
    seats_max: int = 1
    #: Connected accounts (Connect) whose events are applied; ``*``: every one. Empty: an
    #: event or thin notification from a connected account is recorded ``ignored``.
    connect_accounts: frozenset[str] = frozenset()
    #: Match accounts by an object's Accounts v2 ``customer_account`` (the store's customer
    #: id column holds ``acct_...`` ids) before its ``customer``.
    match_customer_account: bool = False
    #: Whether ``client_reference_id`` names an account only when the app signed it.
    signed_references: bool = False
    #: The key signed references are made with (``STRIPE_REFERENCE_SECRET``, else the
    #: app's ``SECRET_KEY``).
    reference_secret: str | None = field(default=None, repr=False)
    #: Whether the blueprint answers ``GET /billing/success`` (sync the Checkout session,
    #: then redirect with a flash message).
    success_route: bool = True
    #: Where that route sends the user: a path, a URL or an endpoint name (default ``/``).
    after_checkout_url: str | None = None
    #: Price id → the lookup key it was configured by, once :meth:`with_prices` resolved it.
    price_lookup_keys: Mapping[str, str] = field(default_factory=dict)
    #: Plan → meter event name → how much of it a period includes (``usage_remaining``).
    usage_quotas: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: The meter's ``customer_mapping`` payload key the account's customer id is sent as.
    usage_customer_key: str = DEFAULT_USAGE_CUSTOMER_KEY
    #: Rows the usage sender claims per transaction, and meter events it posts at once.
    usage_batch_size: int = DEFAULT_USAGE_BATCH_SIZE
    usage_concurrency: int = DEFAULT_USAGE_CONCURRENCY
    #: Meter events a second the sender posts: a pace of its own (Stripe limits the
    #: meter-event endpoint apart from the rest of its API).
    usage_rate: float = DEFAULT_USAGE_RATE
    #: Send pending usage after each request that reported some (small apps: no worker).
    usage_flush_after_request: bool = False

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from ``config``, falling back to ``environ`` key by key."""
        env = os.environ if environ is None else environ

        def get(name: str) -> Any:
            value = config.get(name)
            if value is None or value == "":
                value = env.get(name)
            return None if value == "" else value

        settings = cls(
            api_key=_text(get("STRIPE_API_KEY")),
            webhook_secrets=_secrets(get("STRIPE_WEBHOOK_SECRET")),
            thin_webhook_secrets=_secrets(get("STRIPE_THIN_WEBHOOK_SECRET")),
            price_pro_monthly=_text(get("STRIPE_PRICE_PRO_MONTHLY")),
            price_pro_yearly=_text(get("STRIPE_PRICE_PRO_YEARLY")),
            success_url=_text(get("STRIPE_SUCCESS_URL")),
            cancel_url=_text(get("STRIPE_CANCEL_URL")),
            portal_return_url=_text(get("STRIPE_PORTAL_RETURN_URL")),
            portal_configuration=_text(get("STRIPE_PORTAL_CONFIGURATION")),
            pro_plan_name=_text(get("PRO_PLAN_NAME")) or DEFAULT_PRO_PLAN,
            plans=_plans(get("STRIPE_BILLING_PLANS")),
            past_due_keeps_plan=_flag(get("STRIPE_PAST_DUE_KEEPS_PLAN"), default=True),
            max_webhook_bytes=_positive_int(
                get("STRIPE_WEBHOOK_MAX_BYTES"), DEFAULT_MAX_WEBHOOK_BYTES
            ),
            webhook_tolerance=_positive_int(
                get("STRIPE_WEBHOOK_TOLERANCE"), DEFAULT_TOLERANCE_SECONDS
            ),
            allow_promotion_codes=_flag(get("STRIPE_ALLOW_PROMOTION_CODES"), default=False),
            refetch_subscriptions=_flag(get("STRIPE_REFETCH_SUBSCRIPTIONS"), default=False),
            api_connect_timeout=_seconds(
                get("STRIPE_API_CONNECT_TIMEOUT"), DEFAULT_API_CONNECT_TIMEOUT
            ),
            api_read_timeout=_seconds(get("STRIPE_API_READ_TIMEOUT"), DEFAULT_API_READ_TIMEOUT),
            api_max_retries=_count(get("STRIPE_API_MAX_RETRIES"), DEFAULT_API_MAX_RETRIES),
            api_rate=_rate(get("STRIPE_BILLING_API_RATE"), DEFAULT_API_RATE),
            api_deadline=_seconds(get("STRIPE_BILLING_API_DEADLINE"), DEFAULT_API_DEADLINE),
            max_pages=_positive_int(get("STRIPE_BILLING_MAX_PAGES"), DEFAULT_MAX_PAGES),
            paging_deadline=_seconds(
                get("STRIPE_BILLING_PAGING_DEADLINE"), DEFAULT_PAGING_DEADLINE
            ),
            features=_features(get("STRIPE_BILLING_FEATURES")),
            metered_prices=_metered_prices(get("STRIPE_BILLING_METERED_PRICES")),
            products=_products(get("STRIPE_BILLING_PRODUCTS")),
            product_features=_plan_lists(
                get("STRIPE_BILLING_PRODUCT_FEATURES"),
                "STRIPE_BILLING_PRODUCT_FEATURES",
                "features",
                "feature keys",
            ),
            pricing_url=_text(get("STRIPE_BILLING_PRICING_URL")),
            login_url=_text(get("STRIPE_BILLING_LOGIN_URL")),
            checkout_automatic_tax=_flag(get("STRIPE_CHECKOUT_AUTOMATIC_TAX"), default=False),
            checkout_tax_id_collection=_flag(
                get("STRIPE_CHECKOUT_TAX_ID_COLLECTION"), default=False
            ),
            checkout_billing_address=_choice(
                get("STRIPE_CHECKOUT_BILLING_ADDRESS"),
                "STRIPE_CHECKOUT_BILLING_ADDRESS",
                BILLING_ADDRESS_CHOICES,
            ),
            checkout_coupon=_text(get("STRIPE_CHECKOUT_COUPON")),
            checkout_locale=_text(get("STRIPE_CHECKOUT_LOCALE")),
            proration_behavior=_choice(
                get("STRIPE_PRORATION_BEHAVIOR"), "STRIPE_PRORATION_BEHAVIOR", PRORATION_CHOICES
            )
            or DEFAULT_PRORATION_BEHAVIOR,
            management_routes=_flag(get("STRIPE_BILLING_MANAGEMENT_ROUTES"), default=False),
            payment_behavior=_choice(
                get("STRIPE_BILLING_PAYMENT_BEHAVIOR"),
                "STRIPE_BILLING_PAYMENT_BEHAVIOR",
                PAYMENT_BEHAVIOR_CHOICES,
            ),
            duplicates=_choice(
                get("STRIPE_BILLING_DUPLICATES"), "STRIPE_BILLING_DUPLICATES", DUPLICATE_CHOICES
            )
            or DUPLICATES_SIGNAL,
            success_route=_flag(get("STRIPE_BILLING_SUCCESS_ROUTE"), default=True),
            after_checkout_url=_text(get("STRIPE_BILLING_AFTER_CHECKOUT_URL")),
            **_offers(get),
            **_accounts(get, config),
            **_usage(get),
        )
        _check_products_apart(settings)
        return settings

    def __repr__(self) -> str:
        """Every field, the API key as kind, mode and last four, signing secrets as a count."""
        shown = [
            f"api_key={mask_key(self.api_key) if self.api_key else None!r}",
            f"webhook_secrets=<{len(self.webhook_secrets)} signing secrets>",
            f"thin_webhook_secrets=<{len(self.thin_webhook_secrets)} signing secrets>",
            *(f"{item.name}={getattr(self, item.name)!r}" for item in fields(self) if item.repr),
        ]
        return f"Settings({', '.join(shown)})"

    @property
    def configured_prices(self) -> frozenset[str]:
        """Every price a Checkout session may be created for."""
        prices = {self.price_pro_monthly, self.price_pro_yearly, *self.plans}
        return frozenset(p for p in prices if p)

    def metered_prices_for(self, price_id: str) -> tuple[str, ...]:
        """The metered prices a subscription to the licensed ``price_id`` carries: those
        listed for the price itself, else for its plan (none by default)."""
        if price_id in self.metered_prices:
            return self.metered_prices[price_id]
        return self.metered_prices.get(self.plan_for_prices((price_id,)), ())

    @property
    def every_metered_price(self) -> frozenset[str]:
        """Every configured metered price, of any plan (what a plan change may remove)."""
        return frozenset(price for prices in self.metered_prices.values() for price in prices)

    @property
    def lookup_keys(self) -> frozenset[str]:
        """The Stripe price lookup keys configured in place of price ids (``lookup_key:NAME``),
        not resolved yet: :meth:`with_prices` replaces them."""
        named = (
            self.price_pro_monthly,
            self.price_pro_yearly,
            *self.plans,
            *self.products,
            *self.trial_days_by_price,
        )
        return frozenset(
            value.removeprefix(LOOKUP_KEY_PREFIX)
            for value in named
            if value and value.startswith(LOOKUP_KEY_PREFIX)
        )

    def with_prices(self, resolved: Mapping[str, str]) -> Settings:
        """These settings with each ``lookup_key:NAME`` replaced by the price id
        ``resolved[NAME]`` (every configured lookup key must be there)."""

        def price(value: str) -> str:
            if not value.startswith(LOOKUP_KEY_PREFIX):
                return value
            return resolved[value.removeprefix(LOOKUP_KEY_PREFIX)]

        return replace(
            self,
            price_pro_monthly=self.price_pro_monthly and price(self.price_pro_monthly),
            price_pro_yearly=self.price_pro_yearly and price(self.price_pro_yearly),
            plans={price(key): plan for key, plan in self.plans.items()},
            products={price(key): product for key, product in self.products.items()},
            trial_days_by_price={
                price(key): days for key, days in self.trial_days_by_price.items()
            },
            price_lookup_keys={
                **self.price_lookup_keys,
                **{resolved[key]: key for key in self.lookup_keys},
            },
        )

    def trial_days_for(self, price_id: str) -> int | None:
        """The trial days a Checkout of ``price_id`` gives (None: no trial)."""
        return self.trial_days_by_price.get(price_id, self.trial_days)

    def price_for_product(self, product: str) -> str | None:
        """The one-time price a Checkout of ``product`` sells (None: not configured)."""
        for price_id, key in self.products.items():
            if key == product:
                return price_id
        return None

    def product_for_prices(self, price_ids: tuple[str, ...]) -> str | None:
        """The product key of the first of these prices configured as a product."""
        for price_id in price_ids:
            if price_id in self.products:
                return self.products[price_id]
        return None

    def plan_rank(self, plan: str) -> int:
        """How high ``plan`` ranks: its place in STRIPE_BILLING_PLANS (later is higher).

        The default paid plan, when the map does not name it, ranks below them all.
        """
        ranked = list(dict.fromkeys(self.plans.values()))
        return ranked.index(plan) if plan in ranked else -1

    def plan_for_prices(self, price_ids: tuple[str, ...]) -> str:
        """The paid plan a subscription to these prices grants (default: the pro plan)."""
        for price_id in price_ids:
            if price_id in self.plans:
                return self.plans[price_id]
        return self.pro_plan_name


def _offers(get: Any) -> dict[str, Any]:
    """The trial and seat settings (:mod:`.offer_settings` reads each)."""
    days, by_price = trial_days(get("STRIPE_TRIAL_DAYS"))
    seats_min, seats_max = seat_bounds(get("STRIPE_SEATS_MIN"), get("STRIPE_SEATS_MAX"))
    behavior = _choice(
        get("STRIPE_TRIAL_END_BEHAVIOR"), "STRIPE_TRIAL_END_BEHAVIOR", TRIAL_END_BEHAVIORS
    )
    return {
        "trial_days": days,
        "trial_days_by_price": by_price,
        "trial_without_card": _flag(get("STRIPE_TRIAL_WITHOUT_CARD"), default=False),
        "trial_end_behavior": behavior or DEFAULT_TRIAL_END_BEHAVIOR,
        "seats_min": seats_min,
        "seats_max": seats_max,
    }


#: What ``STRIPE_CONNECT_ACCOUNTS`` says to apply the events of every connected account.
ALL_CONNECT_ACCOUNTS = "*"


def _accounts(get: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """Which Stripe accounts' events apply and how customers and references are matched."""
    return {
        "connect_accounts": connect_accounts(get("STRIPE_CONNECT_ACCOUNTS")),
        "match_customer_account": _flag(get("STRIPE_MATCH_CUSTOMER_ACCOUNT"), default=False),
        "signed_references": _flag(get("STRIPE_SIGNED_REFERENCES"), default=False),
        "reference_secret": _text(get("STRIPE_REFERENCE_SECRET"))
        or _text(config.get("SECRET_KEY")),
    }


def connect_accounts(value: Any) -> frozenset[str]:
    """``STRIPE_CONNECT_ACCOUNTS``: ``acct_...`` ids (comma-separated or a list), or ``*``."""
    accounts = frozenset(_secrets(value))
    for account in accounts:
        if account != ALL_CONNECT_ACCOUNTS and not account.startswith("acct_"):
            raise ValueError(
                f"STRIPE_CONNECT_ACCOUNTS must list acct_... ids or be '*', not {account!r}"
            )
    return accounts


def _usage(get: Any) -> dict[str, Any]:
    """The usage-based billing settings."""
    key = _text(get("STRIPE_BILLING_USAGE_CUSTOMER_KEY")) or DEFAULT_USAGE_CUSTOMER_KEY
    concurrency = _positive_int(get("STRIPE_BILLING_USAGE_CONCURRENCY"), DEFAULT_USAGE_CONCURRENCY)
    if concurrency > MAX_USAGE_CONCURRENCY:
        raise ValueError(
            f"STRIPE_BILLING_USAGE_CONCURRENCY must be at most {MAX_USAGE_CONCURRENCY}, "
            f"not {concurrency}"
        )
    return {
        "usage_quotas": _quotas(get("STRIPE_BILLING_USAGE_QUOTAS")),
        "usage_customer_key": key,
        "usage_batch_size": _positive_int(
            get("STRIPE_BILLING_USAGE_BATCH_SIZE"), DEFAULT_USAGE_BATCH_SIZE
        ),
        "usage_concurrency": concurrency,
        "usage_rate": _rate(get("STRIPE_BILLING_USAGE_RATE"), DEFAULT_USAGE_RATE),
        "usage_flush_after_request": _flag(get("STRIPE_BILLING_USAGE_FLUSH"), default=False),
    }


def _quotas(value: Any) -> dict[str, dict[str, int]]:
    """A mapping or a JSON object of plan → {meter event name: whole number}."""
    if value is None:
        return {}
    loaded = json.loads(value) if isinstance(value, str) else value
    if not isinstance(loaded, Mapping):
        raise ValueError("STRIPE_BILLING_USAGE_QUOTAS must map plan names to {meter: quantity}")
    quotas: dict[str, dict[str, int]] = {}
    for plan, meters in loaded.items():
        if not isinstance(meters, Mapping):
            raise ValueError(f"STRIPE_BILLING_USAGE_QUOTAS[{plan!r}] must map meters to numbers")
        quotas[str(plan)] = {}
        for meter, quantity in meters.items():
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
                raise ValueError(
                    f"STRIPE_BILLING_USAGE_QUOTAS[{plan!r}][{meter!r}] must be a whole "
                    f"number, not {quantity!r}"
                )
            quotas[str(plan)][str(meter)] = quantity
    return quotas


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str | None:
    """One of ``choices``, or None when unset; anything else is a configuration error."""
    text = _text(value)
    if text is not None and text not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {text!r}")
    return text


def _text(value: Any) -> str | None:
    return None if value is None else str(value).strip() or None


def _secrets(value: Any) -> tuple[str, ...]:
    """One secret, a comma-separated string of them, or a list."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(s for s in (str(item).strip() for item in items) if s)


def _plans(value: Any, name: str = "STRIPE_BILLING_PLANS") -> dict[str, str]:
    """A mapping, a JSON object, or ``price_a=plan,price_b=plan`` text (``name``: the setting)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    text = str(value).strip()
    if text.startswith("{"):
        loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError(f"{name} must be a JSON object")
        return {str(k): str(v) for k, v in loaded.items()}
    pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
    plans = {}
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"{name} must look like price_id=name,...")
        plans[pair[0].strip()] = pair[1].strip()
    return plans


def _products(value: Any) -> dict[str, str]:
    """Like :func:`_plans` (price → product key), each product sold by one price."""
    products = _plans(value, "STRIPE_BILLING_PRODUCTS")
    keys = list(products.values())
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(
            f"STRIPE_BILLING_PRODUCTS names each product once; {', '.join(repeated)} "
            "has more than one price"
        )
    return products


def _check_products_apart(settings: Settings) -> None:
    """Refuse a price configured both as a plan's and as a product's: a one-time price
    cannot be subscribed to, nor a recurring one bought once (Stripe refuses either)."""
    both = sorted(settings.configured_prices & set(settings.products))
    if both:
        raise ValueError(
            f"STRIPE_BILLING_PRODUCTS names {', '.join(both)}, which is also a plan's price; "
            "a product needs a one-time price of its own"
        )


def _features(value: Any) -> dict[str, tuple[str, ...]]:
    """A mapping or a JSON object of plan → list of feature keys."""
    return _plan_lists(value, "STRIPE_BILLING_FEATURES", "features", "feature keys")


def _metered_prices(value: Any) -> dict[str, tuple[str, ...]]:
    """A mapping or a JSON object of plan name (or licensed price id) → metered price ids."""
    return _plan_lists(value, "STRIPE_BILLING_METERED_PRICES", "metered prices", "price ids")


def _plan_lists(value: Any, name: str, things: str, items: str) -> dict[str, tuple[str, ...]]:
    """A mapping or a JSON object of plan → list of text (``name`` is the setting)."""
    if value is None:
        return {}
    loaded = json.loads(value) if isinstance(value, str) else value
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{name} must map plan names to lists of {things}")
    lists = {}
    for plan, keys in loaded.items():
        if isinstance(keys, str) or not isinstance(keys, list | tuple | set | frozenset):
            raise ValueError(f"{name}[{plan!r}] must be a list of {items}")
        lists[str(plan)] = tuple(str(key) for key in keys)
    return lists


def _flag(value: Any, *, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in {"0", "false", "no", "off"}


def _positive_int(value: Any, default: int) -> int:
    if value is None:
        return default
    number = int(value)
    if number <= 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return number


def _seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    number = float(value)
    if not 0 < number <= 600:
        raise ValueError(f"expected seconds between 0 and 600, got {value!r}")
    return number


def _rate(value: Any, default: float) -> float:
    """Requests a second: more than 0, at most :data:`MAX_API_RATE`."""
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0 < number <= MAX_API_RATE:
        raise ValueError(
            f"STRIPE_BILLING_API_RATE must be more than 0 and at most {MAX_API_RATE:g} "
            f"requests a second, not {value!r}"
        )
    return number


def _count(value: Any, default: int) -> int:
    if value is None:
        return default
    number = int(value)
    if not 0 <= number <= 10:
        raise ValueError(f"expected a number from 0 to 10, got {value!r}")
    return number


#: Shorter keys show nothing of themselves, not even their last four characters.
MIN_MASKED_KEY_LENGTH = 20


def mask_key(key: str) -> str:
    """A key as a repr may show it: ``sk_test_...4f2a`` (kind, mode, last four), or ``[set]``."""
    match = re.match(r"(?:sk|rk|pk)_(?:live|test)_", key)
    if match is None or len(key) < MIN_MASKED_KEY_LENGTH:
        return "[set]"
    return f"{match.group()}...{key[-4:]}"
