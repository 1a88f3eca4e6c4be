"""Purchase events built from the real payloads in tests/fixtures/: payment-mode Checkout
sessions (API 2020-08-27 and 2026-03-25 "dahlia"), charges, refunds and disputes (Stripe's
own fixture objects, and stripe-ruby-mock's old layouts)."""

from __future__ import annotations

from typing import Any

from support import NOW, envelope, load, load_object

PRODUCTS = {"price_credits_100": "credits_100", "price_lifetime": "lifetime"}
PRODUCT_FEATURES = {"lifetime": ["export"], "credits_100": []}
CONFIG = {"STRIPE_BILLING_PRODUCTS": PRODUCTS, "STRIPE_BILLING_PRODUCT_FEATURES": PRODUCT_FEATURES}

#: The payment-mode session of each layout, and the API version it comes from.
SESSION_FIXTURES = {
    "2020": ("events/stripe-ruby-mock__checkout.session.completed.json", "2020-08-27"),
    "dahlia": (
        "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_payment.open.json",
        "2026-03-25.dahlia",
    ),
}
SESSION_LAYOUTS = tuple(SESSION_FIXTURES)
PI = "pi_3PurchaseTest000001"
CHARGE = "ch_3PurchaseTest000001"


def session_event(
    event_type: str = "checkout.session.completed",
    *,
    payment_intent: str | None = PI,
    payment_status: str = "paid",
    user_id: str | None = "1",
    customer: str | None = "cus_test",
    product: str | None = "credits_100",
    quantity: int | None = 2,
    amount: int = 3000,
    line_items: list[tuple[str, int]] | None = None,
    layout: str = "dahlia",
    session_id: str = "cs_test_purchase_1",
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A payment-mode session event as our Checkout makes it (metadata names the product),
    or, with ``product=None`` and ``line_items``, one made elsewhere (a Payment Link)."""
    name, api_version = SESSION_FIXTURES[layout]
    obj = load_object(name)
    metadata: dict[str, str] = {}
    if product is not None:
        metadata["stripe_billing_product"] = product
        if quantity is not None:
            metadata["stripe_billing_quantity"] = str(quantity)
    if user_id is not None:
        metadata["user_id"] = user_id
    obj.update(
        id=session_id,
        customer=customer,
        mode="payment",
        status="complete",
        payment_status=payment_status,
        payment_intent=payment_intent,
        client_reference_id=user_id,
        metadata=metadata,
        amount_total=amount,
        amount_subtotal=amount,
        url=None,
    )
    if line_items is not None:
        obj["line_items"] = {
            "object": "list",
            "data": [
                {
                    "id": f"li_{n}",
                    "object": "item",
                    "amount_total": amount,
                    "currency": "usd",
                    "price": {"id": price, "object": "price", "type": "one_time"},
                    "quantity": count,
                }
                for n, (price, count) in enumerate(line_items)
            ],
            "has_more": False,
        }
    return envelope(event_type, obj, event_id=event_id, created=created, api_version=api_version)


def charge_refunded_event(
    *,
    amount_refunded: int,
    amount: int = 3000,
    payment_intent: str | None = PI,
    customer: str | None = "cus_test",
    layout: str = "dahlia",
    invoice: str | None = None,
    refund_id: str | None = None,
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """``charge.refunded``: Stripe's charge object (dahlia: no refunds listed), pay-rails'
    (``2020``: its refunds as a list object, before 2022-11-15), or stripe-ruby-mock's
    oldest one (``old``: its refunds as a plain list, without ids). ``refund_id`` names
    the refund the ``2020`` layout lists (default: the fixture's)."""
    if layout == "old":
        obj = load_object("events/stripe-ruby-mock__charge.refunded.json")
        obj["refunds"] = [dict(obj["refunds"][0], amount=amount_refunded)]
        obj["invoice"] = invoice
        api_version = "2013-08-13"
    elif layout == "2020":
        obj = load_object("events/pay-rails__charge.refunded.DATA_ONLY.json")
        obj = {"object": "charge", **obj}  # pay-rails' copy dropped it; Stripe sends it
        listed = obj["refunds"]["data"][0]
        listed.update(amount=amount_refunded, charge=CHARGE, payment_intent=payment_intent)
        listed["id"] = refund_id or listed["id"]
        obj["refunds"]["url"] = f"/v1/charges/{CHARGE}/refunds"
        obj["invoice"] = invoice
        api_version = "2020-08-27"
    else:
        obj = load("stripe-openapi/charge.json")
        obj["invoice"] = invoice
        api_version = "2026-03-25.dahlia"
    obj.update(
        id=CHARGE,
        amount=amount,
        amount_captured=amount,
        amount_refunded=amount_refunded,
        refunded=amount_refunded >= amount,
        payment_intent=payment_intent,
        customer=customer,
    )
    return envelope(
        "charge.refunded", obj, event_id=event_id, created=created, api_version=api_version
    )


def refund_event(
    event_type: str = "refund.created",
    *,
    refund_id: str = "re_3PurchaseTest000001",
    amount: int = 1000,
    status: str = "succeeded",
    payment_intent: str | None = PI,
    refund_created: int | None = None,
    layout: str = "dahlia",
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A refund event: Stripe's refund object (``dahlia``), or stripe-ruby-mock's of API
    2020-08-27 (``2020``: no ``customer``, no ``destination_details``), with the payment and
    status given, made at ``refund_created`` (default: the event's time)."""
    if layout == "2020":
        obj = load_object("events/stripe-ruby-mock__charge.refund.updated.json")
        api_version = "2020-08-27"
    else:
        obj = load("stripe-openapi/refund.json")
        api_version = "2026-03-25.dahlia"
    obj.update(
        id=refund_id,
        amount=amount,
        status=status,
        payment_intent=payment_intent,
        charge=CHARGE,
        created=refund_created if refund_created is not None else (created or NOW),
    )
    return envelope(event_type, obj, event_id=event_id, created=created, api_version=api_version)


#: The layouts each builder above has, oldest first.
CHARGE_LAYOUTS = ("old", "2020", "dahlia")
REFUND_LAYOUTS = ("2020", "dahlia")
DISPUTE_LAYOUTS = ("old", "dahlia")


def dispute_event(
    event_type: str = "charge.dispute.created",
    *,
    status: str = "needs_response",
    dispute_id: str = "dp_3PurchaseTest000001",
    payment_intent: str | None = PI,
    layout: str = "dahlia",
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A dispute event: Stripe's dispute object, or stripe-ruby-mock's (API 2018-01-23)."""
    if layout == "old":
        obj = load_object("events/stripe-ruby-mock__charge.dispute.closed.json")
        api_version = "2018-01-23"
    else:
        obj = load("stripe-openapi/dispute.json")
        api_version = "2026-03-25.dahlia"
    obj.update(
        id=dispute_id, status=status, payment_intent=payment_intent, charge=CHARGE, amount=3000
    )
    return envelope(event_type, obj, event_id=event_id, created=created, api_version=api_version)


__all__ = ["CONFIG", "NOW", "PI", "PRODUCTS"]
