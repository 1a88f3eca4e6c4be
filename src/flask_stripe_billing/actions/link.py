"""Linking an account to a Stripe customer by hand: the operator's answer to an event kept
``unmatched`` (``flask billing link``, the operations page)."""

from __future__ import annotations

from dataclasses import dataclass

from .._util import utcnow
from ..core.account import BillingAccount
from ..core.outcomes import EventStatus
from ..errors import ConflictError
from ..state import BillingState
from ..stores.base import EventRecord


@dataclass(frozen=True)
class Linked:
    """What a link did: the account as it is now, the customer it had, and the customer's
    events still waiting as unmatched (to replay next)."""

    account: BillingAccount
    previous_customer_id: str | None
    waiting: list[EventRecord]


def link_customer(state: BillingState, user_id: str, customer_id: str) -> Linked:
    """Link the account to the customer, replacing any customer it had, in one transaction.

    Raises LookupError for an unknown user and :class:`~.errors.ConflictError` when
    another account has the customer (nothing is linked then).
    """
    store = state.user_store
    with state.event_log.transaction():
        account = store.get(user_id, lock=True)
        if account is None:
            raise LookupError(f"No user {user_id}; nothing was linked.")
        holder = store.get_by_customer_id(customer_id)
        if holder is not None and holder.user_id != account.user_id:
            raise ConflictError(
                f"Customer {customer_id} is linked to user {holder.user_id}; nothing was linked.",
                {"customer_id": customer_id, "user_id": holder.user_id},
            )
        linked = store.apply(
            account.user_id, {"stripe_customer_id": customer_id, "updated_at": utcnow()}
        )
        waiting = state.event_log.list_events(
            statuses=[EventStatus.UNMATCHED], customer_id=customer_id, oldest_first=True
        )
    return Linked(linked, account.stripe_customer_id, waiting)
