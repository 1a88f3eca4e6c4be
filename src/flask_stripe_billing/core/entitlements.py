"""Stripe Entitlements: a customer's active feature lookup keys and their own watermark.

Pure: no Flask, no HTTP, no database. Stripe sends
``entitlements.active_entitlement_summary.updated`` with the customer's whole
list of active entitlements (at most 10 of them inline). The library keeps one
record per customer, so a summary is stored even before any account is linked
to its customer, and the account reads its features once it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .._util import as_utc, utcnow

#: The snapshot event type carrying a customer's active entitlements.
SUMMARY_EVENT = "entitlements.active_entitlement_summary.updated"


#: ``object`` of the summary in that event.
SUMMARY_OBJECT = "entitlements.active_entitlement_summary"


#: How many entitlements a summary lists inline; more are read from Stripe's API.
SUMMARY_PAGE_SIZE = 10


@dataclass(frozen=True)
class SummaryFacts:
    """What an active entitlement summary says."""

    customer_id: str
    #: The lookup keys of the active entitlements listed (each feature's ``lookup_key``).
    features: frozenset[str]
    #: Whether Stripe left entitlements out (``has_more``): the list is then incomplete.
    truncated: bool


@dataclass(frozen=True)
class EntitlementRecord:
    """A row of the library's entitlement table: one customer's active features."""

    customer_id: str
    features: frozenset[str]
    #: Creation time of the summary applied last (or when Stripe's API was read): the
    #: ordering watermark. None for a record not yet written.
    last_event_at: datetime | None
    #: The id of that event (``sync_entitlements_<customer>`` when read from Stripe's API).
    last_event_id: str | None = None
    updated_at: datetime | None = None

    @classmethod
    def blank(cls, customer_id: str) -> EntitlementRecord:
        """The record a store creates for a customer it has none of yet: no features, no
        watermark (so any summary supersedes it)."""
        return cls(customer_id, frozenset(), None, None, utcnow())

    def in_utc(self) -> EntitlementRecord:
        """The same record with every time in UTC (what stores keep and give back)."""
        return replace(
            self, last_event_at=as_utc(self.last_event_at), updated_at=as_utc(self.updated_at)
        )


def read_summary(obj: Mapping[str, Any]) -> SummaryFacts | None:
    """A summary object as its facts; None when it names no customer."""
    customer = obj.get("customer")
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    if not isinstance(customer, str) or not customer:
        return None
    listing = obj.get("entitlements")
    items = listing.get("data") if isinstance(listing, Mapping) else None
    return SummaryFacts(
        customer_id=customer,
        features=lookup_keys(items if isinstance(items, list) else []),
        truncated=isinstance(listing, Mapping) and bool(listing.get("has_more")),
    )


def lookup_keys(entitlements: Iterable[Any]) -> frozenset[str]:
    """The lookup keys of active entitlement objects (as listed in a summary or the API)."""
    keys = set()
    for entitlement in entitlements:
        key = entitlement.get("lookup_key") if isinstance(entitlement, Mapping) else None
        if isinstance(key, str) and key:
            keys.add(key)
    return frozenset(keys)


def supersedes(
    created: datetime, features: frozenset[str], record: EntitlementRecord | None
) -> bool:
    """Whether a summary created at ``created`` listing ``features`` replaces ``record``.

    A newer summary replaces an older one. Stripe's ``created`` has one-second
    resolution, so a tie between two different summaries is settled by their
    content alone (more features, then the greater sorted list), never by
    which arrived first or by which path (webhook, thin event, API) brought
    it: any delivery order then ends on the same features.
    """
    if record is None or record.last_event_at is None:
        return True
    watermark = as_utc(record.last_event_at)
    assert watermark is not None
    moment = as_utc(created)
    assert moment is not None
    if moment != watermark:
        return moment > watermark
    return _tie_key(features) > _tie_key(record.features)


def _tie_key(features: frozenset[str]) -> tuple[int, tuple[str, ...]]:
    return (len(features), tuple(sorted(features)))


def encode_features(features: Iterable[str]) -> str:
    """Features as stored in a text column: a JSON list, sorted (lookup keys are free text)."""
    return json.dumps(sorted(features))


def decode_features(text: str | None) -> frozenset[str]:
    """The features of a stored text column (see :func:`encode_features`)."""
    if not text:
        return frozenset()
    value = json.loads(text)
    return frozenset(str(key) for key in value) if isinstance(value, list) else frozenset()
