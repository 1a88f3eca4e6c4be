"""What templates see of billing: ``billing_account``, the current user's account."""

from __future__ import annotations

from flask import has_request_context

from .account import BillingAccount
from .gates import current_account_or_none
from .state import get_state


def billing_template_context() -> dict[str, BillingAccount | None]:
    """``billing_account``: the signed-in user's account, None when anonymous.

    A context processor: Flask calls it when a template is rendered, never
    on a request that renders none.
    """
    if not has_request_context():
        return {"billing_account": None}
    return {"billing_account": current_account_or_none(get_state())}
