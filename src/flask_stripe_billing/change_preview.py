"""A preview of what a plan change would invoice, from Stripe's ``create_preview``.

Nothing changes at Stripe; the preview is read into small frozen values (both
invoice-line layouts: ``proration`` moved under ``parent`` in the 2025-03-31 API).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import management_rules as rules
from .management import Who, current
from .state import BillingState


@dataclass(frozen=True)
class PreviewLine:
    """One line of a previewed invoice (amount in the currency's smallest unit)."""

    description: str | None
    amount: int
    #: Whether the line is a proration (credit or charge for the rest of the period).
    proration: bool


@dataclass(frozen=True)
class ChangePreview:
    """The invoice a plan change would make, from Stripe's preview; nothing changed yet.

    A change now with ``create_prorations`` shows the next invoice (the prorations
    and the next period); with ``always_invoice`` the invoice made at once; a
    change at the period end shows the first invoice at the new price.
    """

    subscription_id: str
    price_id: str
    #: ``now`` or ``period_end``.
    when: str
    amount_due: int | None
    currency: str | None
    subtotal: int | None
    total: int | None
    lines: tuple[PreviewLine, ...]


def preview_change(
    state: BillingState, who: Who, price_id: str, *, at_period_end: bool = False
) -> ChangePreview:
    """What moving to ``price_id`` would invoice (Stripe's ``create_preview``)."""
    now = current(state, who)
    price = rules.check_price(price_id, state.settings, now.facts)
    item = rules.changed_item(now.subscription, state.settings)
    proration = "none" if at_period_end else state.settings.proration_behavior
    invoice = state.require_stripe().preview_invoice(
        rules.preview_params(now.subscription, item, price, proration)
    )
    return ChangePreview(
        subscription_id=now.facts.id,
        price_id=price,
        when="period_end" if at_period_end else "now",
        amount_due=_int(invoice.get("amount_due")),
        currency=_text(invoice.get("currency")),
        subtotal=_int(invoice.get("subtotal")),
        total=_int(invoice.get("total")),
        lines=tuple(_line(line) for line in _data(invoice.get("lines"))),
    )


def _line(line: Mapping[str, Any]) -> PreviewLine:
    """A preview line; ``proration`` sits under ``parent`` since the 2025-03-31 API."""
    parent = line.get("parent")
    details = parent.get("subscription_item_details") if isinstance(parent, Mapping) else None
    proration = details.get("proration") if isinstance(details, Mapping) else line.get("proration")
    return PreviewLine(
        _text(line.get("description")), _int(line.get("amount")) or 0, bool(proration)
    )


def _data(value: Any) -> list[Mapping[str, Any]]:
    data = value.get("data") if isinstance(value, Mapping) else None
    return [item for item in data or [] if isinstance(item, Mapping)]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
