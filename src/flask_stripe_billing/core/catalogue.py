"""The configured plans and prices as data, for pricing and settings pages: what
``billing.plans`` and ``billing.prices`` answer. Pure: read from the settings alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..config import Settings
from .account import FREE_PLAN

#: The interval of each of the two named price settings.
INTERVALS = (("monthly", "price_pro_monthly"), ("yearly", "price_pro_yearly"))


@dataclass(frozen=True)
class Price:
    """A price Checkout and plan changes accept (never another)."""

    #: Stripe's price id (a configured lookup key already resolved to it).
    id: str
    #: The plan a subscription to it grants.
    plan: str
    #: ``monthly`` or ``yearly`` for STRIPE_PRICE_PRO_MONTHLY / _YEARLY; None otherwise.
    interval: str | None
    #: The lookup key it was configured by (``lookup_key:NAME``), if any.
    lookup_key: str | None
    #: Trial days a first Checkout of it gives (STRIPE_TRIAL_DAYS); None: no trial.
    trial_days: int | None


@dataclass(frozen=True)
class Plan:
    """A plan: its name, the prices that grant it, the features it includes."""

    name: str
    prices: tuple[Price, ...]
    #: Its feature keys in STRIPE_BILLING_FEATURES.
    features: tuple[str, ...]

    @property
    def is_free(self) -> bool:
        """Whether it is the free plan (no price grants it)."""
        return self.name == FREE_PLAN


@dataclass(frozen=True)
class Prices:
    """Every configured price, in order: monthly, yearly, then STRIPE_BILLING_PLANS'."""

    #: STRIPE_PRICE_PRO_MONTHLY and STRIPE_PRICE_PRO_YEARLY, when set.
    monthly: Price | None
    yearly: Price | None
    all: tuple[Price, ...]

    def __iter__(self) -> Iterator[Price]:
        return iter(self.all)

    def __len__(self) -> int:
        return len(self.all)

    def __contains__(self, price_id: object) -> bool:
        return any(price.id == price_id for price in self.all)

    def get(self, price_id: str) -> Price | None:
        """The configured price with this id; None for any other."""
        return next((price for price in self.all if price.id == price_id), None)


def prices(settings: Settings) -> Prices:
    """The configured prices (lookup keys must be resolved first)."""
    named = {interval: getattr(settings, name) for interval, name in INTERVALS}
    ids = [*(price_id for price_id in named.values() if price_id), *settings.plans]
    intervals = {price_id: interval for interval, price_id in named.items() if price_id}
    listed = tuple(
        Price(
            id=price_id,
            plan=settings.plan_for_prices((price_id,)),
            interval=intervals.get(price_id),
            lookup_key=settings.price_lookup_keys.get(price_id),
            trial_days=settings.trial_days_for(price_id),
        )
        for price_id in dict.fromkeys(ids)
    )
    by_id = {price.id: price for price in listed}
    return Prices(
        monthly=by_id.get(named["monthly"] or ""),
        yearly=by_id.get(named["yearly"] or ""),
        all=listed,
    )


def plans(settings: Settings) -> tuple[Plan, ...]:
    """Every plan from lowest to highest: free, then the paid plans by rank."""
    listed = prices(settings).all
    names = sorted(dict.fromkeys(price.plan for price in listed), key=settings.plan_rank)
    return tuple(
        Plan(
            name=name,
            prices=tuple(price for price in listed if price.plan == name),
            features=settings.features.get(name, ()),
        )
        for name in (FREE_PLAN, *(n for n in names if n != FREE_PLAN))
    )
