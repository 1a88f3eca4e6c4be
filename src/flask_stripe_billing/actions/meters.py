"""Usage read back from Stripe's Billing Meters: a customer's meter event summaries, for a
usage page (what Stripe has aggregated, and so will bill)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..core.account import BillingAccount
from ..core.events import timestamp
from ..errors import NotFoundError, StripeServiceError, ValidationError
from ..state import BillingState
from ..stripe_api import StripeGateway

#: The prefix of a meter's id: ``meter`` given so is used as it is, with no look-up.
METER_ID_PREFIX = "mtr_"


#: What ``grouping`` may be: Stripe's ``value_grouping_window`` (None: one summary for
#: the whole range).
GROUPINGS = ("hour", "day")


@dataclass(frozen=True)
class UsageSummary:
    """What Stripe aggregated of one meter for one customer over ``start``..``end``."""

    #: The window, as aware UTC datetimes (``start`` included, ``end`` not).
    start: datetime
    end: datetime
    #: The meter's aggregate (sum, count or last, as the meter is set up) over the window.
    aggregated_value: float


def usage(
    state: BillingState,
    account_or_user_id: BillingAccount | str | int,
    meter: str,
    start: datetime,
    end: datetime,
    *,
    grouping: str | None = None,
) -> list[UsageSummary]:
    """The account's usage of ``meter`` (its id, or its ``event_name``) from ``start`` to
    ``end``, as Stripe's meter event summaries, oldest first; none for an account that has
    no Stripe customer yet (no call to Stripe).

    ``start`` and ``end`` are whole minutes (Stripe's rule); ``grouping`` (``hour`` or
    ``day``) asks for one summary per window instead of one for the whole range. Every
    page is read, within STRIPE_BILLING_MAX_PAGES and STRIPE_BILLING_PAGING_DEADLINE.
    Raises :class:`LookupError` for an unknown user, :class:`~.errors.ValidationError`
    for a bad range or grouping, :class:`~.errors.NotFoundError` for a meter Stripe does
    not have, :class:`~.errors.StripeServiceError` when Stripe fails.
    """
    params = _range(start, end, grouping)
    account = state.account_of(account_or_user_id)
    if account.stripe_customer_id is None:
        return []
    gateway = state.require_stripe()
    meter_id = meter_id_of(gateway, meter)
    params["customer"] = account.stripe_customer_id
    listed = gateway.list_meter_event_summaries(meter_id, params).objects
    summaries = [_summary(obj) for obj in listed]
    return sorted(summaries, key=lambda summary: summary.start)


def meter_id_of(gateway: StripeGateway, meter: str) -> str:
    """The id of ``meter``: itself when it is one (``mtr_...``), else the meter whose
    ``event_name`` it is, from the app's meters (listed once; again for a name not seen)."""
    if not isinstance(meter, str) or not meter:
        raise ValidationError("meter must be a meter id or event name", {"field": "meter"})
    if meter.startswith(METER_ID_PREFIX):
        return meter
    known = gateway.meter_ids.get(meter)
    if known is not None:
        return known
    gateway.meter_ids.update(_by_event_name(gateway.list_meters().objects))
    found = gateway.meter_ids.get(meter)
    if found is None:
        raise NotFoundError(f"Stripe has no meter with event_name {meter!r}", {"meter": meter})
    return found


def _by_event_name(meters: list[dict[str, Any]]) -> dict[str, str]:
    """Event name → meter id; an active meter wins over an inactive one of the same name."""
    ids: dict[str, str] = {}
    for obj in sorted(meters, key=lambda meter: meter.get("status") == "active"):
        name, meter_id = obj.get("event_name"), obj.get("id")
        if isinstance(name, str) and name and isinstance(meter_id, str) and meter_id:
            ids[name] = meter_id
    return ids


def _range(start: datetime, end: datetime, grouping: str | None) -> dict[str, Any]:
    """The summaries' parameters: ``start_time``, ``end_time`` and the grouping window."""
    for name, moment in (("start", start), ("end", end)):
        if not isinstance(moment, datetime) or moment.tzinfo is None:
            raise ValidationError(f"{name} must be an aware datetime", {"field": name})
        if moment.second or moment.microsecond:
            raise ValidationError(
                f"{name} must be a whole minute (Stripe's meter summaries start and end on one)",
                {"field": name},
            )
    if start >= end:
        raise ValidationError("start must be before end", {"field": "start"})
    params: dict[str, Any] = {
        "start_time": int(start.timestamp()),
        "end_time": int(end.timestamp()),
    }
    if grouping is not None:
        if grouping not in GROUPINGS:
            raise ValidationError(
                f"grouping must be one of {', '.join(GROUPINGS)}", {"field": "grouping"}
            )
        params["value_grouping_window"] = grouping
    return params


def _summary(obj: Mapping[str, Any]) -> UsageSummary:
    """A meter event summary as its typed value; a 502 for one without its window or value."""
    start: Any = obj.get("start_time")
    end: Any = obj.get("end_time")
    value: Any = obj.get("aggregated_value")
    try:
        if _is_int(start) and _is_int(end) and _is_number(value):
            return UsageSummary(timestamp(start), timestamp(end), float(value))
    except (OverflowError, OSError, ValueError):
        pass
    raise StripeServiceError(
        "Stripe answered with a meter event summary without its window or value",
        {"service": "Stripe", "summary": obj.get("id")},
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
