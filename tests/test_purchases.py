"""One-time purchases through the webhook: payment-mode sessions, refunds and disputes,
built from real payloads of old and new API versions; the success-page sync; the queries
and gates; the refund call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses
from conftest import Host, build_host
from flask import Flask, jsonify
from purchase_support import (
    CHARGE_LAYOUTS,
    CONFIG,
    NOW,
    PI,
    REFUND_LAYOUTS,
    SESSION_LAYOUTS,
    charge_refunded_event,
    dispute_event,
    refund_event,
    session_event,
)
from support import SECRET, load, post_event

from flask_stripe_billing import (
    BillingAccount,
    ConflictError,
    InMemoryUserStore,
    PurchaseRecord,
    StripeBilling,
    StripeServiceError,
    ValidationError,
    signals,
)

API = "https://api.stripe.com/v1"
KEY = "sk_test_51PurchaseTestKey0000000000"
STRIPE_DATE = "Wed, 09 Dec 2026 10:00:00 GMT"
STRIPE_TIME = 1796810400


@pytest.fixture
def host() -> Iterator[Host]:
    host = build_host({**CONFIG, "STRIPE_API_KEY": KEY})
    host.add_user(1, stripe_customer_id="cus_test")
    host.add_user(2)
    yield host
    with host.app.app_context():
        host.db.session.remove()
        host.db.drop_all()


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every purchase signal sent, with its keyword arguments."""
    sent: list[tuple[str, dict[str, Any]]] = []
    receivers = []
    for name in ("purchase_completed", "purchase_refunded", "purchase_disputed"):

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            sent.append((_name, kwargs))

        getattr(signals, name).connect(receiver)
        receivers.append((name, receiver))
    yield sent
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


def deliver(host: Host, *events: dict[str, Any]) -> list[dict[str, Any]]:
    """POST each event; each is answered 200; their event-log rows."""
    for event in events:
        response = post_event(host.client, event)
        assert response.status_code == 200, response.get_json()
    rows = {row["id"]: row for row in host.events()}
    return [rows[event["id"]] for event in events]


def purchases(host: Host, user_id: int | str = 1) -> list[PurchaseRecord]:
    with host.app.app_context():
        return host.billing.purchases(user_id)


def the_purchase(host: Host) -> PurchaseRecord:
    (purchase,) = purchases(host)
    return purchase


# checkout.session.completed in payment mode


@pytest.mark.parametrize("layout", SESSION_LAYOUTS)
def test_paid_session_records_the_purchase_and_signals_once(
    host: Host, received: list[tuple[str, dict[str, Any]]], layout: str
) -> None:
    event = session_event(layout=layout, created=NOW)

    (row,) = deliver(host, event)
    deliver(host, event)  # Stripe delivers it again

    purchase = the_purchase(host)
    assert (purchase.id, purchase.user_id, purchase.customer_id) == (PI, "1", "cus_test")
    assert (purchase.product, purchase.quantity) == ("credits_100", 2)
    assert (purchase.amount, purchase.currency, purchase.status) == (3000, "usd", "paid")
    assert (purchase.payment_intent_id, purchase.checkout_session_id) == (PI, "cs_test_purchase_1")
    assert purchase.amount_refunded == 0
    assert (row["status"], row["user_id"], row["error"]) == ("processed", "1", None)
    assert [name for name, _ in received] == ["purchase_completed"]
    kwargs = received[0][1]
    assert kwargs["purchase"] == purchase
    assert kwargs["account"].user_id == kwargs["user_id"] == "1"
    assert kwargs["event"].id == event["id"]
    assert host.user(1).plan == "free"  # a purchase is no subscription


def test_the_2020_session_without_created_is_dated_by_its_event(host: Host) -> None:
    deliver(host, session_event(layout="2020", created=NOW - 60))

    assert the_purchase(host).created is not None
    assert int(the_purchase(host).created.timestamp()) == NOW - 60  # type: ignore[union-attr]


def test_a_session_links_a_new_customer_like_a_subscription_checkout(host: Host) -> None:
    event = session_event(user_id="2", customer="cus_new")

    (row,) = deliver(host, event)

    assert host.user(2).stripe_customer_id == "cus_new"
    assert purchases(host, 2)[0].status == "paid"
    assert row["user_id"] == "2"


def test_a_session_of_no_known_account_stays_unmatched_and_records_nothing(host: Host) -> None:
    event = session_event(user_id=None, customer="cus_nobody")

    (row,) = deliver(host, event)

    assert row["status"] == "unmatched"
    assert "cus_nobody" in row["error"]
    with host.app.app_context():
        assert host.billing.purchases(1) == []


def test_a_delayed_payment_is_pending_then_paid_and_signalled_when_paid(
    host: Host, received: list[tuple[str, dict[str, Any]]]
) -> None:
    completed = session_event(payment_status="unpaid", created=NOW - 100)
    succeeded = session_event(
        "checkout.session.async_payment_succeeded", payment_status="paid", created=NOW
    )

    deliver(host, completed)
    assert the_purchase(host).status == "pending"
    assert received == []
    deliver(host, succeeded, completed)  # the late completed changes nothing back

    assert the_purchase(host).status == "paid"
    assert [name for name, _ in received] == ["purchase_completed"]


def test_a_delayed_payment_that_fails_is_failed_and_grants_nothing(
    host: Host, received: list[tuple[str, dict[str, Any]]]
) -> None:
    deliver(
        host,
        session_event("checkout.session.async_payment_failed", payment_status="unpaid"),
        session_event(payment_status="unpaid", created=NOW - 100),
    )

    assert the_purchase(host).status == "failed"
    assert received == []
    with host.app.app_context():
        assert not host.billing.has_purchased(1, "credits_100")


def test_a_payment_link_session_is_named_by_its_line_items_prices(host: Host) -> None:
    deliver(
        host,
        session_event(product=None, line_items=[("price_lifetime", 1)], session_id="cs_link"),
    )

    purchase = the_purchase(host)
    assert (purchase.product, purchase.quantity) == ("lifetime", 1)


def test_a_session_of_a_price_the_app_does_not_name_records_an_unknown_product(
    host: Host,
) -> None:
    deliver(host, session_event(product=None, line_items=[("price_other", 3)]))
    deliver(host, session_event(product=None, session_id="cs_bare", payment_intent="pi_bare"))

    by_id = {p.id: p for p in purchases(host)}
    assert (by_id[PI].product, by_id[PI].quantity) == (None, 3)
    assert (by_id["pi_bare"].product, by_id["pi_bare"].quantity) == (None, None)


def test_a_session_that_charged_nothing_is_keyed_by_the_session(host: Host) -> None:
    deliver(host, session_event(payment_intent=None, payment_status="no_payment_required"))

    purchase = the_purchase(host)
    assert (purchase.id, purchase.status, purchase.payment_intent_id) == (
        "cs_test_purchase_1",
        "paid",
        None,
    )


def test_a_subscription_checkout_makes_no_purchase(host: Host) -> None:
    from support import checkout_event

    deliver(host, checkout_event(client_reference_id="1"))

    assert purchases(host) == []
    assert host.user(1).plan == "pro"


# refunds


@pytest.mark.parametrize("layout", CHARGE_LAYOUTS)
def test_charge_refunded_marks_a_partial_then_a_full_refund(
    host: Host, received: list[tuple[str, dict[str, Any]]], layout: str
) -> None:
    deliver(host, session_event(created=NOW - 100))
    partial = charge_refunded_event(amount_refunded=1000, layout=layout, created=NOW - 50)
    full = charge_refunded_event(amount_refunded=3000, layout=layout, created=NOW)

    deliver(host, partial)
    assert (the_purchase(host).status, the_purchase(host).amount_refunded) == (
        "partially_refunded",
        1000,
    )
    deliver(host, full, partial)

    purchase = the_purchase(host)
    assert (purchase.status, purchase.amount_refunded) == ("refunded", 3000)
    assert not purchase.grants()
    refunds = [kwargs for name, kwargs in received if name == "purchase_refunded"]
    assert [(r["refunded_now"], r["amount_refunded"], r["fully_refunded"]) for r in refunds] == [
        (1000, 1000, False),
        (2000, 3000, True),
    ]


def test_a_subscription_invoices_charge_refunded_is_ignored(host: Host) -> None:
    (row,) = deliver(host, charge_refunded_event(amount_refunded=500, invoice="in_sub"))

    assert row["status"] == "ignored"
    assert "in_sub" in row["error"]
    assert purchases(host) == []


def test_a_refund_without_a_payment_intent_is_ignored(host: Host) -> None:
    (row,) = deliver(host, refund_event(payment_intent=None))

    assert (row["status"], row["error"]) == (
        "ignored",
        "the payment has no payment intent: no Checkout session made it",
    )


@pytest.mark.parametrize("layout", REFUND_LAYOUTS)
def test_refund_events_follow_each_refund_and_a_failed_one_gives_nothing_back(
    host: Host, received: list[tuple[str, dict[str, Any]]], layout: str
) -> None:
    deliver(
        host,
        session_event(created=NOW - 100),
        refund_event(
            "refund.created", status="pending", amount=1000, layout=layout, created=NOW - 50
        ),
    )
    assert (the_purchase(host).status, the_purchase(host).amount_refunded) == (
        "partially_refunded",
        1000,
    )
    deliver(
        host,
        refund_event("refund.failed", status="failed", amount=1000, layout=layout, created=NOW),
    )

    purchase = the_purchase(host)
    assert (purchase.status, purchase.amount_refunded) == ("paid", 0)
    assert [r.status for r in purchase.refunds] == ["failed"]
    assert [name for name, _ in received] == ["purchase_completed", "purchase_refunded"]


def test_a_refund_before_its_session_is_kept_and_joins_the_purchase(
    host: Host, received: list[tuple[str, dict[str, Any]]]
) -> None:
    (early,) = deliver(host, refund_event(amount=1000, created=NOW - 10))

    assert early["status"] == "processed"
    assert "no Checkout session of payment" in early["error"]
    assert purchases(host) == []
    assert received == []

    deliver(host, session_event(created=NOW - 100))

    purchase = the_purchase(host)
    assert (purchase.status, purchase.amount_refunded, purchase.user_id) == (
        "partially_refunded",
        1000,
        "1",
    )
    assert [name for name, _ in received] == ["purchase_completed", "purchase_refunded"]


# disputes


def test_a_dispute_opened_then_lost_ends_what_the_purchase_grants(
    host: Host, received: list[tuple[str, dict[str, Any]]]
) -> None:
    deliver(host, session_event(product="lifetime", created=NOW - 100))
    with host.app.app_context():
        assert host.billing.has_purchased(1, "lifetime")
    deliver(host, dispute_event(status="needs_response", created=NOW - 50))
    purchase = the_purchase(host)
    assert (purchase.status, purchase.dispute_status) == ("paid", "needs_response")
    assert purchase.grants()

    closed = dispute_event("charge.dispute.closed", status="lost", created=NOW)
    deliver(host, closed, dispute_event(status="needs_response", created=NOW - 50))

    assert the_purchase(host).dispute_status == "lost"
    with host.app.app_context():
        assert not host.billing.has_purchased(1, "lifetime")
        assert not host.billing.account(1).has_feature("export", host.billing.settings)
    disputes = [kwargs for name, kwargs in received if name == "purchase_disputed"]
    assert [(d["old_dispute_status"], d["dispute_status"]) for d in disputes] == [
        (None, "needs_response"),
        ("needs_response", "lost"),
    ]


def test_an_old_layout_dispute_won_keeps_the_purchase(host: Host) -> None:
    deliver(
        host,
        session_event(created=NOW - 100),
        dispute_event("charge.dispute.closed", status="won", layout="old", created=NOW),
    )

    assert (the_purchase(host).dispute_status, the_purchase(host).grants()) == ("won", True)


def test_a_closed_dispute_never_reopens_even_when_its_event_is_older(host: Host) -> None:
    deliver(
        host,
        session_event(created=NOW - 100),
        dispute_event("charge.dispute.closed", status="won", created=NOW - 50),
        dispute_event("charge.dispute.updated", status="under_review", created=NOW),
    )

    assert the_purchase(host).dispute_status == "won"


# the success-page sync


@responses.activate
def test_the_success_page_sync_records_the_purchase_once_with_the_webhook(
    host: Host, received: list[tuple[str, dict[str, Any]]]
) -> None:
    event = session_event(created=NOW - 5)
    session = event["data"]["object"]
    responses.get(f"{API}/checkout/sessions/{session['id']}", json=session)

    with host.app.app_context():
        outcome = host.billing.sync_checkout_session(session["id"])
    deliver(host, event)

    assert outcome.status == "processed"
    assert the_purchase(host).status == "paid"
    assert [name for name, _ in received] == ["purchase_completed"]


# queries and gates


def test_purchases_lists_newest_first_and_has_purchased_reads_the_status(host: Host) -> None:
    deliver(
        host,
        session_event(created=NOW - 100, session_id="cs_1", payment_intent="pi_1"),
        session_event(
            product="lifetime", created=NOW - 10, session_id="cs_2", payment_intent="pi_2"
        ),
        charge_refunded_event(amount_refunded=3000, payment_intent="pi_1", created=NOW),
    )

    assert [p.id for p in purchases(host)] == ["pi_2", "pi_1"]
    with host.app.app_context():
        billing = host.billing
        assert billing.has_purchased(1, "lifetime")
        assert not billing.has_purchased(1, "credits_100")  # fully refunded
        assert not billing.has_purchased(2, "lifetime")
        assert billing.purchases(2) == []


def test_a_product_grants_its_features_for_life_through_every_gate() -> None:
    host = build_host(CONFIG, current_user_id=lambda: "1")
    host.add_user(1, stripe_customer_id="cus_test")

    @host.app.route("/export")
    @host.billing.feature_required("export")
    def export() -> Any:
        return jsonify(ok=True)

    def status() -> int:
        return int(host.client.get("/export", headers={"Accept": "application/json"}).status_code)

    assert status() == 403
    deliver(host, session_event(product="lifetime", created=NOW - 100))

    assert status() == 200
    with host.app.app_context():
        account = host.billing.account(1)
        assert account.purchased_features == frozenset({"export"})
        assert account.has_feature("export", host.billing.settings)
        assert host.db.session.get(host.User, 1).has_feature("export")
    deliver(host, charge_refunded_event(amount_refunded=3000, created=NOW))
    assert status() == 403
    with host.app.app_context():
        assert not host.db.session.get(host.User, 1).has_feature("export")
        host.db.session.remove()
        host.db.drop_all()


# billing.refund


def refund_answer(amount: int, status: str = "succeeded") -> dict[str, Any]:
    refund = load("stripe-openapi/refund.json")
    refund.update(
        id="re_api_1", amount=amount, payment_intent=PI, status=status, created=STRIPE_TIME - 1
    )
    return refund


@responses.activate
def test_refund_posts_one_refund_and_applies_it_at_once(
    host: Host, received: list[tuple[str, dict[str, Any]]]
) -> None:
    deliver(host, session_event(created=NOW - 100))
    responses.post(f"{API}/refunds", json=refund_answer(1200), headers={"Date": STRIPE_DATE})

    with host.app.app_context():
        after = host.billing.refund(the_purchase(host), amount=1200, reason="requested_by_customer")

    (call,) = responses.calls
    assert call.request.url == f"{API}/refunds"
    assert dict(parse_qsl(call.request.body)) == {
        "payment_intent": PI,
        "amount": "1200",
        "reason": "requested_by_customer",
        "metadata[stripe_billing_purchase]": PI,
    }
    assert call.request.headers["Idempotency-Key"].startswith("flask-stripe-billing-refund-")
    assert (after.status, after.amount_refunded) == ("partially_refunded", 1200)
    assert [(r.id, r.amount, int(r.last_event_at.timestamp())) for r in after.refunds] == [
        ("re_api_1", 1200, STRIPE_TIME)
    ]
    assert after == the_purchase(host)
    assert [name for name, _ in received] == ["purchase_completed", "purchase_refunded"]
    # the webhooks that follow change nothing again
    deliver(host, refund_event(refund_id="re_api_1", amount=1200, created=STRIPE_TIME - 1))
    assert the_purchase(host) == after
    assert len([n for n, _ in received if n == "purchase_refunded"]) == 1


@responses.activate
def test_refund_without_an_amount_refunds_what_is_left(host: Host) -> None:
    deliver(
        host,
        session_event(created=NOW - 100),
        charge_refunded_event(amount_refunded=1000, created=NOW - 50),
    )
    responses.post(f"{API}/refunds", json=refund_answer(2000), headers={"Date": STRIPE_DATE})

    with host.app.app_context():
        after = host.billing.refund(PI)

    assert dict(parse_qsl(responses.calls[0].request.body))["amount"] == "2000"
    assert (after.status, after.amount_refunded) == ("refunded", 3000)


@pytest.mark.parametrize(
    ("amount", "reason", "message"),
    [
        (0, None, "amount must be a positive whole number (the currency's smallest unit)"),
        (-5, None, "amount must be a positive whole number (the currency's smallest unit)"),
        (12.5, None, "amount must be a positive whole number (the currency's smallest unit)"),
        (True, None, "amount must be a positive whole number (the currency's smallest unit)"),
        (3001, None, "amount is more than is left to refund (3000)"),
        (100, "because", "reason must be one of duplicate, fraudulent, requested_by_customer"),
    ],
)
@responses.activate
def test_refund_refuses_a_bad_amount_or_reason_before_asking_stripe(
    host: Host, amount: Any, reason: Any, message: str
) -> None:
    deliver(host, session_event())

    with host.app.app_context(), pytest.raises(ValidationError) as raised:
        host.billing.refund(PI, amount=amount, reason=reason)

    assert raised.value.message == message
    assert len(responses.calls) == 0


@responses.activate
def test_refund_of_a_purchase_with_nothing_left_is_a_conflict(host: Host) -> None:
    deliver(host, session_event(payment_status="unpaid"))

    with host.app.app_context(), pytest.raises(ConflictError) as raised:
        host.billing.refund(PI)

    assert raised.value.details == {"purchase": PI, "status": "pending"}
    assert len(responses.calls) == 0
    with host.app.app_context(), pytest.raises(LookupError):
        host.billing.refund("pi_unknown")


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "json": {"error": {"type": "api_error", "message": "boom"}}},
        {"status": 200, "json": {"object": "charge", "id": "ch_1"}},
        {"status": 200, "json": dict(refund_answer(100), payment_intent="pi_other")},
    ],
    ids=["stripe-fails", "not-a-refund", "another-payment"],
)
@responses.activate
def test_refund_that_stripe_fails_or_answers_wrong_is_a_502_with_nothing_applied(
    host: Host, answer: dict[str, Any], received: list[tuple[str, dict[str, Any]]]
) -> None:
    deliver(host, session_event())
    before = the_purchase(host)
    responses.post(f"{API}/refunds", headers={"Date": STRIPE_DATE}, **answer)

    with host.app.app_context(), pytest.raises(StripeServiceError) as raised:
        host.billing.refund(PI, amount=100)

    assert KEY not in raised.value.message
    assert the_purchase(host) == before
    assert [name for name, _ in received] == ["purchase_completed"]


def test_refund_events_on_a_store_without_purchases_are_ignored() -> None:
    store = AccountsAndLogs([BillingAccount("1", stripe_customer_id="cus_test")])
    app = Flask(__name__)
    app.config.update(STRIPE_WEBHOOK_SECRET=SECRET)
    StripeBilling(app, user_store=store)

    response = post_event(app.test_client(), refund_event())
    session = post_event(app.test_client(), session_event())

    assert (response.status_code, session.status_code) == (200, 200)
    rows = {row.type: row for row in store.events}
    assert (rows["refund.created"].status, rows["refund.created"].error) == (
        "ignored",
        "the store keeps no purchases",
    )
    assert rows["checkout.session.completed"].status == "processed"  # as before purchases


class AccountsAndLogs(InMemoryUserStore):
    """A custom store written before purchases: it keeps no PurchaseLog."""

    def __getattribute__(self, name: str) -> Any:
        if name in ("lock_purchase", "save_purchase", "get_purchase", "purchases_of"):
            raise AttributeError(name)
        return super().__getattribute__(name)


# the operations page


def test_the_ops_account_page_lists_the_purchases(host: Host) -> None:
    host.app.config["SECRET_KEY"] = "ops"
    host.app.register_blueprint(host.billing.admin_blueprint(lambda: True))
    deliver(
        host,
        session_event(created=NOW - 100),
        charge_refunded_event(amount_refunded=1000, created=NOW - 50),
        dispute_event(status="needs_response", created=NOW),
    )

    html = host.client.get("/billing/admin/accounts/1").get_data(as_text=True)

    section = html.split("<h2>Purchases</h2>")[1].split("</table>")[0]
    for cell in (PI, "credits_100", "3000", "usd", "partially_refunded", "1000", "needs_response"):
        assert f"<td>{cell}</td>" in section
    assert "<th>dispute_status</th>" in section
