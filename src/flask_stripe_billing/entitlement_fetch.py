"""Stripe Entitlements read from Stripe's API: completing a truncated summary, and a
customer's active entitlements for reconciliation."""

from __future__ import annotations

import logging
from dataclasses import replace

from stripe import RequestOptions

from .entitlements import lookup_keys
from .events import StripeEvent
from .stripe_api import StripeGateway

logger = logging.getLogger("flask_stripe_billing")


def is_truncated(event: StripeEvent) -> bool:
    """Whether the event is an entitlement summary that left entitlements out."""
    return event.entitlements is not None and event.entitlements.truncated


def complete_summary(gateway: StripeGateway | None, event: StripeEvent) -> StripeEvent:
    """A truncated summary with every active entitlement, listed from Stripe's API.

    It keeps the event's own time: Stripe's list is at least as new as the
    event, and a later change comes with a later summary. Without an API key
    the summary is applied as listed (its first 10), with a warning.
    """
    summary = event.entitlements
    assert summary is not None
    if gateway is None:
        logger.warning(
            "Stripe entitlement summary lists only some entitlements; set STRIPE_API_KEY "
            "to read the rest from Stripe's API",
            extra={"event_id": event.id, "customer_id": summary.customer_id},
        )
        return event
    options: RequestOptions = {"headers": {"Stripe-Request-Trigger": f"event={event.id}"}}
    features = lookup_keys(gateway.list_active_entitlements(summary.customer_id, options))
    return replace(event, entitlements=replace(summary, features=features, truncated=False))
