"""Stripe's event payloads, parsed once into the few typed facts the rules use.

This is the only module that knows Stripe's JSON layouts, old and new: before API
version 2025-03-31 ("basil") a subscription carries ``current_period_end``
itself; since then the period dates live on each subscription item, and an
invoice names its subscription in ``parent.subscription_details`` instead of
``subscription``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ..errors import EventParseError
from .entitlements import SUMMARY_EVENT, SUMMARY_OBJECT, SummaryFacts, read_summary
from .payments import (
    ChargeFacts,
    DisputeFacts,
    RefundFacts,
    read_charge,
    read_dispute,
    read_refund,
)


@dataclass(frozen=True)
class PendingUpdate:
    """A change Stripe holds until its invoice is paid (``pending_update``, made with
    ``payment_behavior=pending_if_incomplete``): the prices and seats it would set."""

    price_ids: tuple[str, ...]
    quantity: int | None
    #: When Stripe drops it unpaid (``customer.subscription.pending_update_expired``).
    expires_at: datetime | None


@dataclass(frozen=True)
class SubscriptionFacts:
    """What a subscription object says, whatever the API version."""

    id: str
    customer_id: str | None
    status: str
    price_ids: tuple[str, ...]
    current_period_end: datetime | None
    cancel_at_period_end: bool
    #: ``metadata.user_id``, set by our own Checkout sessions.
    user_id: str | None
    #: Seats: ``quantity`` on old API versions, else the first item's that has one.
    quantity: int | None = None
    trial_end: datetime | None = None
    cancel_at: datetime | None = None
    ended_at: datetime | None = None
    #: When the subscription itself was created at Stripe.
    created: datetime | None = None
    #: The change waiting for its payment (3-D Secure), None when there is none.
    pending_update: PendingUpdate | None = None
    #: Start of the current period: top-level (old layout), else the items' earliest.
    current_period_start: datetime | None = None


@dataclass(frozen=True)
class CheckoutSessionFacts:
    """What a Checkout session object says."""

    id: str
    customer_id: str | None
    subscription_id: str | None
    mode: str | None
    payment_status: str | None
    #: ``client_reference_id``, else ``metadata.user_id``.
    user_id: str | None
    #: ``metadata.price_id``, set by our own Checkout sessions.
    price_id: str | None
    #: ``client_reference_id`` as Stripe sent it (a Payment Link's may be anything).
    client_reference_id: str | None = None
    #: ``metadata.user_id``: only an API call with the secret key sets it.
    metadata_user_id: str | None = None
    #: Payment mode: the payment it made (None: nothing to pay, or not confirmed yet).
    payment_intent_id: str | None = None
    amount_total: int | None = None
    currency: str | None = None
    created: datetime | None = None
    #: ``metadata.stripe_billing_product`` / ``_quantity``, set by our own Checkout.
    product: str | None = None
    quantity: int | None = None
    #: The prices of the ``line_items`` when Stripe sent them (expanded), and their
    #: quantity summed (sessions made elsewhere: Payment Links, the Dashboard).
    line_item_price_ids: tuple[str, ...] = ()
    line_item_quantity: int | None = None


@dataclass(frozen=True)
class InvoiceFacts:
    """What an invoice object says, whatever the API version (amounts in the smallest unit)."""

    id: str
    customer_id: str | None
    #: ``subscription`` (old layout), else ``parent.subscription_details.subscription``.
    subscription_id: str | None
    number: str | None
    created: datetime | None
    status: str | None
    amount_due: int | None
    amount_paid: int | None
    currency: str | None
    attempt_count: int | None
    next_payment_attempt: datetime | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None


#: A meter error report: Stripe found usage it could not apply to a meter. Stripe sends it
#: as the thin ``v1.billing.meter.error_report_triggered``; its reasons are in the v2
#: event's ``data``, applied as an event of this type (object :data:`METER_ERROR_OBJECT`).
METER_ERROR_EVENT = "billing.meter.error_report_triggered"


#: The ``object`` of a meter error report (the v2 event's ``data`` with its ``meter``).
METER_ERROR_OBJECT = "billing.meter_error_report"


@dataclass(frozen=True)
class MeterErrorType:
    """One kind of error Stripe found in a meter's usage: its code, how many, samples."""

    #: Stripe's code: ``meter_event_customer_not_found``, ``timestamp_too_far_in_past``, ...
    code: str
    error_count: int | None
    #: Stripe's messages of a few of the refused meter events.
    sample_messages: tuple[str, ...]
    #: The ``identifier`` of each sampled meter event (the usage row's).
    sample_identifiers: tuple[str, ...]


@dataclass(frozen=True)
class MeterErrorFacts:
    """What a meter error report says: which meter, the window, and the reasons."""

    meter_id: str | None
    #: Stripe's summary in words (``developer_message_summary``).
    summary: str | None
    error_count: int | None
    error_types: tuple[MeterErrorType, ...]
    validation_start: datetime | None
    validation_end: datetime | None


@dataclass(frozen=True)
class StripeEvent:
    """A verified Stripe event: the envelope plus the facts of its object."""

    id: str
    type: str
    created: datetime
    api_version: str | None
    livemode: bool
    customer_id: str | None
    subscription: SubscriptionFacts | None
    checkout_session: CheckoutSessionFacts | None
    #: The event as Stripe sent it, for signal receivers that need more.
    data: Mapping[str, Any]
    invoice: InvoiceFacts | None = None
    #: An active entitlement summary's facts (Stripe Entitlements).
    entitlements: SummaryFacts | None = None
    #: The connected account the event happened in (Connect); None: the platform's own.
    account: str | None = None
    #: The object's Accounts v2 ``customer_account`` (``acct_...``), beside or instead of
    #: ``customer``.
    customer_account: str | None = None
    #: A meter error report's facts (Stripe Billing Meters).
    meter_errors: MeterErrorFacts | None = None
    #: A charge's, refund's or dispute's facts (purchases' refunds and disputes).
    charge: ChargeFacts | None = None
    refund: RefundFacts | None = None
    dispute: DisputeFacts | None = None


def parse_event(payload: Any) -> StripeEvent:
    """Read a decoded webhook body; raise :class:`EventParseError` if it is no event."""
    if not isinstance(payload, dict):
        raise EventParseError("body is not a JSON object")
    if payload.get("object") == "v2.core.event":
        raise EventParseError(
            "this is a thin event notification: send it to the thin-event endpoint"
        )
    if payload.get("object") != "event":
        raise EventParseError("body is not a Stripe event")
    event_id = payload.get("id")
    event_type = payload.get("type")
    created = payload.get("created")
    data = payload.get("data")
    if not isinstance(event_id, str) or not event_id:
        raise EventParseError("event has no id")
    if not isinstance(event_type, str) or not event_type:
        raise EventParseError("event has no type")
    if not isinstance(created, int) or isinstance(created, bool):
        raise EventParseError("event has no creation time")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise EventParseError("event has no data.object")
    obj: dict[str, Any] = data["object"]
    kind = obj.get("object")
    subscription = _subscription(obj) if kind == "subscription" else None
    checkout = _checkout_session(obj) if kind == "checkout.session" else None
    api_version = payload.get("api_version")
    return StripeEvent(
        id=event_id,
        type=event_type,
        created=timestamp(created),
        api_version=api_version if isinstance(api_version, str) else None,
        livemode=bool(payload.get("livemode")),
        customer_id=obj.get("id") if kind == "customer" else _id(obj.get("customer")),
        subscription=subscription,
        checkout_session=checkout,
        data=payload,
        invoice=read_invoice(obj) if kind == "invoice" else None,
        entitlements=read_summary(obj) if kind == SUMMARY_OBJECT else None,
        account=_id(payload.get("account")),
        customer_account=_id(obj.get("customer_account")),
        meter_errors=read_meter_errors(obj) if kind == METER_ERROR_OBJECT else None,
        charge=read_charge(obj) if kind == "charge" else None,
        refund=read_refund(obj) if kind == "refund" else None,
        dispute=read_dispute(obj) if kind == "dispute" else None,
    )


def with_subscription(event: StripeEvent, obj: Mapping[str, Any]) -> StripeEvent:
    """The event with its subscription facts replaced by ``obj`` (as read from the API)."""
    subscription = _subscription(obj)
    return replace(
        event,
        subscription=subscription,
        customer_id=subscription.customer_id or event.customer_id,
    )


# Synthetic events: the events the package makes itself, one builder per kind.

#: The type a subscription read from Stripe's API is applied as: the object is the
#: subscription's whole current state, whatever changed (sync, management, thin events).
SUBSCRIPTION_SNAPSHOT = "customer.subscription.updated"


def snapshot_event(
    event_id: str,
    event_type: str,
    obj: Mapping[str, Any],
    created: int | None,
    *,
    api_version: str | None,
    livemode: bool = False,
) -> StripeEvent:
    """An object read from Stripe's API as an event of ``event_type`` created ``created``
    (when it was read, so that every event created earlier is older than its state;
    None: :class:`EventParseError`, as for a delivered event without a time)."""
    return parse_event(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": created,
            "api_version": api_version,
            "livemode": livemode,
            "data": {"object": dict(obj)},
        }
    )


def subscription_snapshot(
    subscription: Mapping[str, Any], read_at: int, api_version: str
) -> StripeEvent:
    """A subscription read from Stripe's API as a ``customer.subscription.updated`` event
    (id ``sync_<subscription id>``) created when it was read."""
    return snapshot_event(
        f"sync_{subscription.get('id')}",
        SUBSCRIPTION_SNAPSHOT,
        subscription,
        read_at,
        api_version=api_version,
        livemode=bool(subscription.get("livemode")),
    )


def summary_snapshot(
    customer_id: str, entitlements: list[dict[str, Any]], read_at: int, api_version: str
) -> StripeEvent:
    """An entitlement summary event (id ``sync_entitlements_<customer>``) listing every
    active entitlement read, created when read (the API's list is never truncated)."""
    summary = {
        "object": SUMMARY_OBJECT,
        "customer": customer_id,
        "entitlements": {"object": "list", "data": entitlements, "has_more": False},
    }
    return snapshot_event(
        f"sync_entitlements_{customer_id}", SUMMARY_EVENT, summary, read_at, api_version=api_version
    )


def logged_event(
    event_id: str,
    event_type: str,
    created: datetime,
    livemode: bool,
    data: Mapping[str, Any],
    customer_id: str | None = None,
) -> StripeEvent:
    """An event as the log keeps it without its object: a thin notification, or the
    snapshot event it is the twin of."""
    return StripeEvent(
        id=event_id,
        type=event_type,
        created=created,
        api_version=None,
        livemode=livemode,
        customer_id=customer_id,
        subscription=None,
        checkout_session=None,
        data=data,
    )


def keyed_by_customer_account(event: StripeEvent) -> StripeEvent:
    """The event with its Accounts v2 ``customer_account`` as its customer, for apps whose
    store links users to ``acct_`` ids; unchanged when the object names none."""
    account = event.customer_account
    if account is None:
        return event
    subscription, session, invoice = event.subscription, event.checkout_session, event.invoice
    return replace(
        event,
        customer_id=account,
        subscription=replace(subscription, customer_id=account) if subscription else None,
        checkout_session=replace(session, customer_id=account) if session else None,
        invoice=replace(invoice, customer_id=account) if invoice else None,
    )


def read_invoice(obj: Mapping[str, Any]) -> InvoiceFacts:
    """An invoice object (from an event or Stripe's API) as its facts."""
    return InvoiceFacts(
        id=_required_id(obj),
        customer_id=_id(obj.get("customer")),
        subscription_id=_id(obj.get("subscription")) or _parent_subscription_id(obj),
        number=_str_or_none(obj.get("number")),
        created=_time_or_none(obj.get("created")),
        status=_str_or_none(obj.get("status")),
        amount_due=_int_or_none(obj.get("amount_due")),
        amount_paid=_int_or_none(obj.get("amount_paid")),
        currency=_str_or_none(obj.get("currency")),
        attempt_count=_int_or_none(obj.get("attempt_count")),
        next_payment_attempt=_time_or_none(obj.get("next_payment_attempt")),
        hosted_invoice_url=_str_or_none(obj.get("hosted_invoice_url")),
        invoice_pdf=_str_or_none(obj.get("invoice_pdf")),
    )


def meter_error_report(event: Mapping[str, Any]) -> dict[str, Any]:
    """A thin ``v1.billing.meter.error_report_triggered`` event as Stripe's API answers it
    (with its ``data``) as the object of a :data:`METER_ERROR_EVENT` event: the ``data``,
    and the meter it names (``related_object``)."""
    data = event.get("data")
    related = event.get("related_object")
    meter = related.get("id") if isinstance(related, Mapping) else None
    return {
        **(data if isinstance(data, Mapping) else {}),
        "object": METER_ERROR_OBJECT,
        "meter": meter,
    }


def read_meter_errors(obj: Mapping[str, Any]) -> MeterErrorFacts:
    """A meter error report (:func:`meter_error_report`) as its facts. Times are RFC 3339
    text in v2 events; Unix times are read too."""
    reason = obj.get("reason")
    reason = reason if isinstance(reason, Mapping) else {}
    types = reason.get("error_types")
    return MeterErrorFacts(
        meter_id=_id(obj.get("meter")),
        summary=_str_or_none(obj.get("developer_message_summary") or obj.get("summary")),
        error_count=_int_or_none(reason.get("error_count")),
        error_types=tuple(
            _meter_error_type(kind) for kind in types or [] if isinstance(kind, Mapping)
        )
        if isinstance(types, list)
        else (),
        validation_start=_moment(obj.get("validation_start")),
        validation_end=_moment(obj.get("validation_end")),
    )


def _meter_error_type(kind: Mapping[str, Any]) -> MeterErrorType:
    samples = [s for s in kind.get("sample_errors") or [] if isinstance(s, Mapping)]
    requests = [s.get("request") or s.get("api_request") for s in samples]
    identifiers = (
        r.get("identifier") or r.get("idempotency_key") for r in requests if isinstance(r, Mapping)
    )
    return MeterErrorType(
        code=str(kind.get("code") or ""),
        error_count=_int_or_none(kind.get("error_count")),
        sample_messages=tuple(
            m for m in (s.get("error_message") for s in samples) if isinstance(m, str)
        ),
        sample_identifiers=tuple(i for i in identifiers if isinstance(i, str) and i),
    )


def _moment(value: Any) -> datetime | None:
    """A Unix time or RFC 3339 text as an aware UTC datetime (None when neither)."""
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    return _time_or_none(value)


def read_subscription(obj: Mapping[str, Any]) -> SubscriptionFacts:
    """A subscription object, as Stripe's API answers it, as its facts."""
    return _subscription(obj)


def timestamp(seconds: int) -> datetime:
    """A Unix time from Stripe as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def _subscription(obj: Mapping[str, Any]) -> SubscriptionFacts:
    items = _list_data(obj.get("items"))
    return SubscriptionFacts(
        id=_required_id(obj),
        customer_id=_id(obj.get("customer")),
        status=str(obj.get("status") or ""),
        price_ids=tuple(p for p in (_item_price_id(item) for item in items) if p),
        current_period_end=_period_end(obj, items),
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
        user_id=_metadata_user_id(obj),
        quantity=_quantity(obj, items),
        trial_end=_time_or_none(obj.get("trial_end")),
        cancel_at=_time_or_none(obj.get("cancel_at")),
        ended_at=_time_or_none(obj.get("ended_at")),
        created=_time_or_none(obj.get("created")),
        pending_update=_pending_update(obj.get("pending_update")),
        current_period_start=_period_start(obj, items),
    )


def _pending_update(value: Any) -> PendingUpdate | None:
    """``pending_update``: its items' prices and the first item's quantity, and its expiry."""
    if not isinstance(value, Mapping):
        return None
    items = [item for item in value.get("subscription_items") or [] if isinstance(item, Mapping)]
    prices = tuple(p for p in (_item_price_id(item) for item in items) if p)
    quantity = _quantity({}, items)
    return PendingUpdate(prices, quantity, _time_or_none(value.get("expires_at")))


def _period_start(obj: Mapping[str, Any], items: list[Mapping[str, Any]]) -> datetime | None:
    """Top-level ``current_period_start`` (old layout), else the items' earliest one."""
    top = obj.get("current_period_start")
    if isinstance(top, int):
        return timestamp(top)
    starts = [
        i["current_period_start"] for i in items if isinstance(i.get("current_period_start"), int)
    ]
    return timestamp(min(starts)) if starts else None


def _checkout_session(obj: Mapping[str, Any]) -> CheckoutSessionFacts:
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    price_id = metadata.get("price_id")
    reference = obj.get("client_reference_id")
    items = _list_data(obj.get("line_items"))
    quantities = [q for q in (_int_or_none(item.get("quantity")) for item in items) if q]
    return CheckoutSessionFacts(
        id=_required_id(obj),
        customer_id=_id(obj.get("customer")),
        subscription_id=_id(obj.get("subscription")),
        mode=_str_or_none(obj.get("mode")),
        payment_status=_str_or_none(obj.get("payment_status")),
        user_id=str(reference) if reference else _metadata_user_id(obj),
        price_id=str(price_id) if price_id else None,
        client_reference_id=str(reference) if reference else None,
        metadata_user_id=_metadata_user_id(obj),
        payment_intent_id=_id(obj.get("payment_intent")),
        amount_total=_int_or_none(obj.get("amount_total")),
        currency=_str_or_none(obj.get("currency")),
        created=_time_or_none(obj.get("created")),
        product=_str_or_none(metadata.get("stripe_billing_product")) or None,
        quantity=_positive(metadata.get("stripe_billing_quantity")),
        line_item_price_ids=tuple(p for p in (_item_price_id(item) for item in items) if p),
        line_item_quantity=sum(quantities) if quantities else None,
    )


def _positive(value: Any) -> int | None:
    """A positive whole number, from metadata's text (``"3"``) or a number."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _period_end(obj: Mapping[str, Any], items: list[Mapping[str, Any]]) -> datetime | None:
    """Top-level ``current_period_end`` (old layout), else the items' latest one."""
    top = obj.get("current_period_end")
    if isinstance(top, int):
        return timestamp(top)
    ends = [i["current_period_end"] for i in items if isinstance(i.get("current_period_end"), int)]
    return timestamp(max(ends)) if ends else None


def _quantity(obj: Mapping[str, Any], items: list[Mapping[str, Any]]) -> int | None:
    """Top-level ``quantity`` (old layout), else the first item's that has one (a metered
    item has none: its usage is billed from its meter)."""
    for value in (obj.get("quantity"), *(item.get("quantity") for item in items)):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _parent_subscription_id(obj: Mapping[str, Any]) -> str | None:
    """``parent.subscription_details.subscription``: where invoices name it since 2025-03-31."""
    parent = obj.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
    return _id(details.get("subscription")) if isinstance(details, Mapping) else None


def _time_or_none(value: Any) -> datetime | None:
    return timestamp(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _item_price_id(item: Mapping[str, Any]) -> str | None:
    """The price of a subscription item (``plan`` on very old API versions)."""
    return _id(item.get("price")) or _id(item.get("plan"))


def _list_data(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping) and isinstance(value.get("data"), list):
        return [item for item in value["data"] if isinstance(item, Mapping)]
    return []


def _metadata_user_id(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("user_id"):
        return str(metadata["user_id"])
    return None


def _id(value: Any) -> str | None:
    """An id whether Stripe sent it bare or expanded into an object."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return value["id"] or None
    return None


def _required_id(obj: Mapping[str, Any]) -> str:
    object_id = _id(obj.get("id"))
    if object_id is None:
        raise EventParseError(f"{obj.get('object')} object has no id")
    return object_id


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
