"""The side of the timestamp tolerance stripe-python leaves open: signatures dated ahead."""

from __future__ import annotations

import logging
import time

from .errors import ValidationError

logger = logging.getLogger("flask_stripe_billing")


def check_not_future(header: str, tolerance: int, now: float | None = None) -> None:
    """Refuse a verified ``Stripe-Signature`` whose ``t=`` is over ``tolerance`` s ahead.

    stripe-python only refuses old signatures; a signature dated in the future
    (a wrong clock, or a header made to be replayed later) is refused the same way.
    Call it after ``stripe.WebhookSignature.verify_header`` accepted the header.
    """
    timestamp = _timestamp(header)
    current = time.time() if now is None else now
    if timestamp is not None and timestamp > current + tolerance:
        reason = f"Timestamp outside the tolerance zone ({timestamp}, in the future)"
        logger.warning("Stripe webhook signature rejected: %s", reason)
        raise ValidationError(f"Invalid webhook signature: {reason}")


def _timestamp(header: str) -> int | None:
    """The header's ``t=`` value, read as stripe-python reads it (the first one)."""
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None
