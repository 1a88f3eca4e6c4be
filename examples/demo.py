"""The scripted demo (``make demo``): the example app receives signed Stripe events.

Starts examples/simple_app on 127.0.0.1 (a free port, a fresh database in a
temporary folder), sends it events built from the real Stripe payloads in
tests/fixtures/ (API versions 2020-08-27, 2025-03-31 "basil" and 2026-03-25
"dahlia") over HTTP, signed as Stripe signs them, and after each prints what
the extension did and what alice's and bob's accounts look like. Then usage-based
billing (a stand-in for Stripe's meter events), and a one-time purchase: bob buys two
credit packs (a payment-mode Checkout session), is refunded in part, then in full, and
the example's own receivers grant his credits and take them back.
Exits non-zero when any step does not end as expected.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.logging import default_handler
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "tests")]

from purchase_support import charge_refunded_event, refund_event, session_event  # noqa: E402
from simple_app.app import DEMO_WEBHOOK_SECRET, billing, create_app, db  # noqa: E402
from support import checkout_event, sign, subscription_event  # noqa: E402

from flask_stripe_billing import signals  # noqa: E402
from flask_stripe_billing.testing import (  # noqa: E402
    MeterEventStandIn,
    build_event,
    point_stripe_at,
)

#: Creation times of the events: an hour ago, then a minute apart.
T0 = int(time.time()) - 3600
MINUTE = 60

LEGEND = """
outcome: what the extension reported (signal webhook_received); "-" when it reported none
  processed  the rules ran          duplicate  event id seen before: nothing done
  stale      older than the last applied event of its subscription (or purchase): nothing done
  unmatched  no user has that customer: acknowledged, kept for billing.process_event()
+feature: an active Stripe entitlement of the user's customer (what feature gates accept)
"""

#: 127.0.0.1 only: never through an HTTP proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Step:
    """One delivery and how it must end."""

    title: str
    event: dict[str, Any]
    http: int
    outcome: str  # the status webhook_received reports ("-": rejected before that)
    alice: str  # expected "plan/status" (then "+feature" each) of alice and of bob
    bob: str
    secret: str = DEMO_WEBHOOK_SECRET


def alice_subscription(kind: str, status: str, minute: int, layout: str, **kw: Any) -> Any:
    """A subscription event for alice, created ``minute`` minutes after T0."""
    return subscription_event(
        f"customer.subscription.{kind}",
        status=status,
        customer="cus_demo_alice",
        subscription="sub_demo_alice",
        layout=layout,
        created=T0 + minute * MINUTE,
        **kw,
    )


def steps() -> list[Step]:
    """The deliveries, in the order they are sent (not the order they were created)."""
    created = alice_subscription("created", "active", 0, "basil", event_id="evt_demo_created")
    # Older than the past_due event: stale. (A late *terminal* status, canceled, would
    # apply: a subscription that has ended never comes back.)
    late = alice_subscription("updated", "active", 1, "dahlia", event_id="evt_demo_late")
    past_due = alice_subscription("updated", "past_due", 2, "2020", event_id="evt_demo_past_due")
    checkout = checkout_event(
        customer="cus_demo_bob",
        subscription="sub_demo_bob",
        client_reference_id="2",
        event_id="evt_demo_checkout",
        created=T0 + 3 * MINUTE,
    )
    deleted = alice_subscription("deleted", "canceled", 4, "2020", event_id="evt_demo_deleted")
    unknown = subscription_event(
        "customer.subscription.created",
        customer="cus_demo_unknown",
        subscription="sub_demo_unknown",
        event_id="evt_demo_unknown",
        created=T0 + 5 * MINUTE,
    )
    forged = alice_subscription("updated", "active", 6, "2020", event_id="evt_demo_forged")
    entitled = build_event(
        "entitlements.active_entitlement_summary.updated",
        customer="cus_demo_alice",
        features=["export"],
        created=T0 + 7 * MINUTE,
        event_id="evt_demo_entitlements",
    )
    return [
        Step("alice subscribes: subscription.created, active", created,
             200, "processed", "pro/active", "free/-"),
        Step("Stripe delivers that same event again", created,
             200, "duplicate", "pro/active", "free/-"),
        Step("a renewal fails: subscription.updated, past_due", past_due,
             200, "processed", "pro/past_due", "free/-"),
        Step("an older event arrives late: updated, active", late,
             200, "stale", "pro/past_due", "free/-"),
        Step("bob pays in Checkout: checkout.session.completed", checkout,
             200, "processed", "pro/past_due", "pro/active"),
        Step("alice's subscription ends: subscription.deleted", deleted,
             200, "processed", "free/canceled", "pro/active"),
        Step("subscription.created for a customer no user has", unknown,
             200, "unmatched", "free/canceled", "pro/active"),
        Step("a forged event: wrong signing secret", forged,
             400, "-", "free/canceled", "pro/active", secret="whsec_forged"),
        Step("Stripe Entitlements give alice export", entitled,
             200, "processed", "free/canceled+export", "pro/active"),
    ]  # fmt: skip


@dataclass
class PurchaseStep:
    """One delivery of bob's purchase and how it must end: bob's credits and the
    purchase's status as the example app shows them."""

    title: str
    event: dict[str, Any]
    outcome: str
    credits: int
    purchase: str  # "status refunded/amount"


def purchase_steps() -> list[PurchaseStep]:
    """Bob buys 2 packs of 100 credits (30.00), is refunded 10.00, then all of it."""
    payment = "pi_demo_bob_credits"
    paid = session_event(
        customer="cus_demo_bob",
        user_id="2",
        product="credits_100",
        quantity=2,
        amount=3000,
        payment_intent=payment,
        session_id="cs_demo_bob_credits",
        event_id="evt_demo_purchase",
        created=T0 + 10 * MINUTE,
    )
    # A partial refund in the Dashboard: Stripe sends refund.created and charge.refunded.
    partial = refund_event(
        "refund.created",
        amount=1000,
        payment_intent=payment,
        event_id="evt_demo_refund_part",
        created=T0 + 11 * MINUTE,
    )
    partial_charge = charge_refunded_event(
        amount_refunded=1000,
        payment_intent=payment,
        customer="cus_demo_bob",
        event_id="evt_demo_charge_part",
        created=T0 + 11 * MINUTE,
    )
    full = charge_refunded_event(
        amount_refunded=3000,
        payment_intent=payment,
        customer="cus_demo_bob",
        event_id="evt_demo_charge_full",
        created=T0 + 12 * MINUTE,
    )
    return [
        PurchaseStep("bob buys 2 packs: checkout.session.completed", paid,
                     "processed", 200, "paid 0.00/30.00"),
        PurchaseStep("Stripe delivers that same event again", paid,
                     "duplicate", 200, "paid 0.00/30.00"),
        PurchaseStep("a partial refund, 10.00: refund.created", partial,
                     "processed", 200, "partially_refunded 10.00/30.00"),
        PurchaseStep("the rest is refunded: charge.refunded, 30.00", full,
                     "processed", 0, "refunded 30.00/30.00"),
        PurchaseStep("Stripe delivers that same event again", full,
                     "duplicate", 0, "refunded 30.00/30.00"),
        PurchaseStep("the first charge.refunded (10.00) arrives late", partial_charge,
                     "stale", 0, "refunded 30.00/30.00"),
    ]  # fmt: skip


@dataclass
class DemoApp:
    """The example app served in a background thread, with what it reported."""

    base_url: str
    app: Flask | None = None
    outcomes: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)

    def post_event(self, event: dict[str, Any], secret: str) -> tuple[int, dict[str, Any]]:
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json", "Stripe-Signature": sign(body, secret)}
        return self.request("POST", "/stripe/webhook", body, headers)

    def usage_rows(self) -> int:
        """How many usage rows the app's database holds."""
        assert self.app is not None
        with self.app.app_context():
            return len(billing.user_store.list_usage())  # type: ignore[union-attr]

    def credits(self, user_id: int) -> tuple[int, str]:
        """The user's credits and their newest purchase ("status refunded/amount")."""
        _, user = self.request("GET", f"/users/{user_id}")
        if not user["purchases"]:
            return user["credits"], "-"
        newest = user["purchases"][0]
        money = f"{newest['amount_refunded'] / 100:.2f}/{(newest['amount'] or 0) / 100:.2f}"
        return user["credits"], f"{newest['status']} {money}"

    def account(self, user_id: int) -> str:
        _, user = self.request("GET", f"/users/{user_id}")
        features = "".join(f"+{feature}" for feature in user["features"])
        return f"{user['plan']}/{user['subscription_status'] or '-'}{features}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.base_url + path, data=body, headers=headers or {}, method=method
        )
        try:
            with OPENER.open(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def serve_example_app(folder: Path) -> Iterator[DemoApp]:
    """The example app on 127.0.0.1, a free port, its database in ``folder``."""
    app: Flask = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'demo.db'}",
            "STRIPE_WEBHOOK_SECRET": DEMO_WEBHOOK_SECRET,
            # The expectations assume the defaults, whatever the environment says.
            "PRO_PLAN_NAME": "pro",
            "STRIPE_BILLING_PLANS": {},
            "STRIPE_PAST_DUE_KEEPS_PLAN": True,
        }
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log
    server = make_server("127.0.0.1", 0, app)
    demo = DemoApp(f"http://127.0.0.1:{server.server_port}", app=app)
    app.logger.removeHandler(default_handler)
    app.logger.addHandler(_Collect(demo.log_lines))
    # The extension's own warnings (a refused signature) go under their step, not to stderr
    # in the middle of the table; its info records (one per webhook) are not shown.
    library = logging.getLogger("flask_stripe_billing")
    library_handler = _Collect(demo.log_lines)
    library_handler.setLevel(logging.WARNING)
    library.addHandler(library_handler)
    library.propagate = False

    def record(sender: Flask, *, status: str, **extra: Any) -> None:
        demo.outcomes.append(status)

    signals.webhook_received.connect(record, sender=app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield demo
    finally:
        server.shutdown()
        thread.join()
        signals.webhook_received.disconnect(record, sender=app)
        library.removeHandler(library_handler)
        library.propagate = True
        server.server_close()
        with app.app_context():
            db.engine.dispose()  # close the SQLite file before its folder is removed


def run_usage(demo: DemoApp) -> bool:
    """Usage: a request retried with its request id is one row; a send that Stripe answers
    503 is retried; Stripe receives the identifier twice and bills it once."""
    print("\nUsage-based billing (a stand-in for Stripe's meter events on 127.0.0.1):")
    headers = {"X-Request-Id": "req_demo_1"}
    first = demo.request("POST", "/api/convert?as=1", b"", headers)
    retried = demo.request("POST", "/api/convert?as=1", b"", headers)
    print(
        f"    POST /api/convert as alice, then retried with the same X-Request-Id: "
        f"{first[0]}, {retried[0]} -> {demo.usage_rows()} usage row"
    )
    app = demo.app
    assert app is not None
    with MeterEventStandIn() as stripe:
        point_stripe_at(app, stripe.url)
        with app.app_context():
            stripe.answer = 503
            one = billing.send_usage()
            print(
                f"    send: Stripe answers 503        -> {one.sent} sent, {one.retrying} to retry"
            )
            time.sleep(5.5)  # the first back-off
            stripe.answer = 200
            two = billing.send_usage()
            print(f"    send again after the back-off  -> {two.sent} sent")
        seen = dict(stripe.identifiers)
    print(f"    Stripe received {seen}: the same identifier each time, billed once")
    ok = (first[0], retried[0], demo.usage_rows(), one.retrying, two.sent, seen) == (
        200,
        200,
        1,
        1,
        1,
        {"req_demo_1": 2},
    )
    print("    ok" if ok else "    FAIL: expected one row, one retry, one send of req_demo_1")
    return ok


def run_purchases(demo: DemoApp, first_number: int) -> bool:
    """A credit pack bought, delivered twice, refunded in part and then in full; the
    example's receivers of purchase_completed / purchase_refunded grant and take back."""
    print("\nOne-time purchases (credits_100: 100 credits a pack, taken back on a full refund):")
    print(f"{'':4}{'what is sent':<48} {'HTTP':<4} {'outcome':<10} {'credits':<8} bob's purchase")
    all_ok = True
    for number, step in enumerate(purchase_steps(), start=first_number):
        demo.outcomes.clear()
        demo.log_lines.clear()
        http, body = demo.post_event(step.event, DEMO_WEBHOOK_SECRET)
        outcome = demo.outcomes[-1] if demo.outcomes else "-"
        credits, purchase = demo.credits(2)
        ok = (http, outcome, credits, purchase) == (200, step.outcome, step.credits, step.purchase)
        all_ok = all_ok and ok
        mark = "ok" if ok else f"FAIL: expected 200 {step.outcome} {step.credits} {step.purchase}"
        print(
            f"{number:>2}. {step.title:<48} {http:<4} {outcome:<10} {credits:<8} "
            f"{purchase:<31} {mark}"
        )
        for line in demo.log_lines:
            print(f"{'':8}app log: {line}")
        if http != 200:
            print(f"{'':8}answer: {body.get('error')}: {body.get('message')}")
    return all_ok


def run(demo: DemoApp) -> bool:
    """Send every step, print one line each; True when all ended as expected."""
    print(f"{'':4}{'what is sent':<48} {'HTTP':<4} {'outcome':<10} {'alice':<21} bob")
    all_ok = True
    for number, step in enumerate(steps(), start=1):
        demo.outcomes.clear()
        demo.log_lines.clear()
        http, body = demo.post_event(step.event, step.secret)
        outcome = demo.outcomes[-1] if demo.outcomes else "-"
        alice, bob = demo.account(1), demo.account(2)
        ok = (http, outcome, alice, bob) == (step.http, step.outcome, step.alice, step.bob)
        all_ok = all_ok and ok
        mark = "ok" if ok else f"FAIL: expected {step.http} {step.outcome} {step.alice} {step.bob}"
        print(f"{number:>2}. {step.title:<48} {http:<4} {outcome:<10} {alice:<21} {bob:<12} {mark}")
        for line in demo.log_lines:
            print(f"{'':8}app log: {line}")
        if http != 200:
            print(f"{'':8}answer: {body.get('error')}: {body.get('message')}")
    return all_ok


def main() -> int:
    with (
        tempfile.TemporaryDirectory(prefix="stripe-billing-demo-") as folder,
        serve_example_app(Path(folder)) as demo,
    ):
        print(f"Example app on {demo.base_url}, fresh database in {folder}")
        print("alice (user 1) is Stripe customer cus_demo_alice; bob (user 2) has none yet.")
        print(LEGEND)
        ok = run(demo)
        ok = run_usage(demo) and ok
        ok = run_purchases(demo, first_number=len(steps()) + 1) and ok
    print("\nAll steps ended as expected." if ok else "\nSOME STEPS DID NOT END AS EXPECTED.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
