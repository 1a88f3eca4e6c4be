"""Reading the settings of what Checkout offers: trial days per price, cardless trials, seats.

Kept apart from :mod:`.config` so that module stays about the settings object;
each function turns one raw value (``app.config`` or the environment) into a
checked one, or raises ``ValueError`` naming the setting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
