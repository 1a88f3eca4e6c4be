"""``flask billing trigger / check / create-webhook-endpoint``: the developer commands."""

from __future__ import annotations

import json
import secrets
from urllib.parse import urlsplit

import click
from flask.cli import with_appcontext

from ..config import Settings
from ..core.account import BillingAccount
from ..core.entitlements import SUMMARY_EVENT, read_summary
from ..core.payments import CHARGE_REFUNDED, DISPUTE_EVENTS, REFUND_EVENTS
from ..core.purchases import PurchaseRecord
from ..core.rules import HANDLED_EVENT_TYPES
from ..core.templates import (
    CHECKOUT_MODES,
    DEFAULT_CUSTOMER,
    DEFAULT_PAYMENT_INTENT,
    DEFAULT_PRICE,
    DEFAULT_SUBSCRIPTION,
    TEMPLATE_EVENT_TYPES,
    CheckoutMode,
    build_event,
)
from ..state import BillingState, get_state
from ..stripe_api import API_VERSION
from ..web.blueprint import WEBHOOK_PATH
from . import check
from .check import findings
from .check.database import check_library_tables
from .common import NotFound, StripeId, deliver, reported_errors
from .reports import truncate
from .thin import create_thin_destination, trigger_thin

RESPONSE_WIDTH = 200


@click.command("trigger", short_help="Send a signed test event to the webhook, offline.")
@click.argument("event_type", metavar="EVENT_TYPE")
@click.option(
    "--customer",
    type=StripeId("customer"),
    metavar="CUSTOMER",
    help="The Stripe customer id in the event.",
)
@click.option(
    "--subscription",
    type=StripeId("subscription"),
    metavar="SUBSCRIPTION",
    help="The subscription id.",
)
@click.option(
    "--status",
    metavar="STATUS",
    help="The subscription's status (default active; canceled for .deleted).",
)
@click.option(
    "--payment-status",
    metavar="STATUS",
    help="A Checkout session's payment_status (default paid; unpaid: still pending).",
)
@click.option(
    "--price",
    type=StripeId("id"),
    metavar="PRICE",
    help="The price id (default STRIPE_PRICE_PRO_MONTHLY, else price_test).",
)
@click.option(
    "--user",
    "user_id",
    type=StripeId("user_id"),
    metavar="USER_ID",
    help="The user the event is for.",
)
@click.option(
    "--mode",
    type=click.Choice(CHECKOUT_MODES),
    default="subscription",
    show_default=True,
    help="A Checkout session's mode: payment is a one-time purchase.",
)
@click.option(
    "--product",
    type=StripeId("product"),
    metavar="PRODUCT",
    help="--mode payment: the product key (default: the first of STRIPE_BILLING_PRODUCTS).",
)
@click.option(
    "--quantity",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="--mode payment: how many of the product.",
)
@click.option(
    "--amount",
    type=click.IntRange(min=1),
    metavar="CENTS",
    help="The payment's amount, in the currency's smallest unit.",
)
@click.option(
    "--refund-amount",
    type=click.IntRange(min=1),
    metavar="CENTS",
    help="charge.refunded / refund.*: how much is refunded (default: all of it).",
)
@click.option(
    "--payment-intent",
    type=StripeId("payment_intent"),
    metavar="PAYMENT_INTENT",
    help="The payment (default: a new one for a session; else the user's newest purchase).",
)
@click.option(
    "--legacy-layout",
    is_flag=True,
    help="The payload of API versions before 2025-03-31 (periods on the subscription).",
)
@click.option(
    "--url",
    metavar="URL",
    help="Post to a running server's webhook instead of this app in-process.",
)
@click.option(
    "--thin",
    is_flag=True,
    help="A thin notification to the thin-event endpoint; the app fetches the object.",
)
@click.option(
    "--object",
    "object_id",
    type=StripeId("id"),
    metavar="ID",
    help="--thin: the related object's id (an entitlement summary's: its snapshot event's).",
)
@click.option(
    "--feature",
    "features",
    metavar="LOOKUP_KEY",
    multiple=True,
    help="An entitlement summary's active feature (repeat for more).",
)
@with_appcontext
def trigger_command(
    event_type: str,
    customer: str | None,
    subscription: str | None,
    status: str | None,
    payment_status: str | None,
    price: str | None,
    user_id: str | None,
    mode: CheckoutMode,
    product: str | None,
    quantity: int,
    amount: int | None,
    refund_amount: int | None,
    payment_intent: str | None,
    legacy_layout: bool,
    url: str | None,
    thin: bool,
    object_id: str | None,
    features: tuple[str, ...],
) -> None:
    """Send a signed test event to the webhook: `stripe trigger`, offline.

    The event is built from a real Stripe payload of EVENT_TYPE, signed
    with STRIPE_WEBHOOK_SECRET and posted to this app's own webhook (or to
    --url). With --user, the customer and subscription default to the
    user's own; a user not linked yet is linked by the event. Prints the
    answer and the account before and after. Exit code 1 if the webhook
    did not answer 2xx. A one-time purchase: checkout.session.completed
    --mode payment --product P, then charge.refunded, refund.* or
    charge.dispute.* about the user's newest purchase. With --thin, a thin
    notification of EVENT_TYPE about --object (default: the subscription) is
    signed with STRIPE_THIN_WEBHOOK_SECRET and the app fetches that object
    from Stripe's API.
    """
    if thin:
        return trigger_thin(event_type, object_id or subscription, user_id, url)
    if event_type not in TEMPLATE_EVENT_TYPES:
        raise click.BadParameter(
            f"{event_type!r} is not a type this package handles; trigger one of: "
            + ", ".join(TEMPLATE_EVENT_TYPES),
            param_hint="EVENT_TYPE",
        )
    state = get_state()
    if not state.settings.webhook_secrets:
        raise click.ClickException(
            "STRIPE_WEBHOOK_SECRET is not set: trigger signs events with it, as Stripe does."
        )
    secret = state.settings.webhook_secrets[0]
    store = state.user_store
    with reported_errors(), state.event_log.transaction():
        user = None
        if user_id is not None:
            user = store.get(user_id)
            if user is None:
                raise NotFound(f"No user {user_id}; nothing was sent.")
        customer = customer or _default(user, "stripe_customer_id", DEFAULT_CUSTOMER)
        before = _with_features(state, user or store.get_by_customer_id(customer))
        bought = _newest_purchase(state, user)
    subscription = subscription or _default(user, "stripe_subscription_id", DEFAULT_SUBSCRIPTION)
    about_purchase = event_type in (CHARGE_REFUNDED, *REFUND_EVENTS, *DISPUTE_EVENTS)
    purchase_options: dict[str, object] = {}
    if mode == "payment" and event_type.startswith("checkout.session."):
        purchase_options = {
            "mode": mode,
            "product": product or next(iter(state.settings.products.values()), None),
            "quantity": quantity,
            "amount": amount,
            "payment_intent": payment_intent or f"pi_test_{secrets.token_hex(12)}",
        }
    elif about_purchase:
        purchase_options = {
            "amount": amount or (bought.amount if bought else None),
            "refund_amount": refund_amount,
            "payment_intent": payment_intent
            or (bought.payment_intent_id or bought.id if bought else DEFAULT_PAYMENT_INTENT),
        }
    else:
        for name, value in (
            ("--mode payment", mode == "payment"),
            ("--product", product),
            ("--amount", amount),
            ("--refund-amount", refund_amount),
            ("--payment-intent", payment_intent),
        ):
            if value:
                raise click.UsageError(f"{name} is a one-time purchase's; not for {event_type}")
    try:
        event = build_event(
            event_type,
            customer=customer,
            subscription=subscription,
            status=status,
            price=price or _default_price(state.settings),
            user_id=user_id,
            payment_status=payment_status,
            api_layout="legacy" if legacy_layout else "current",
            features=list(features) or None,
            **purchase_options,  # type: ignore[arg-type]
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    target, code, answer = deliver(json.dumps(event).encode(), secret, url)
    with reported_errors(), state.event_log.transaction():
        record = state.event_log.get_event(event["id"])
        after = _with_features(
            state, store.get(user_id) if user_id else store.get_by_customer_id(customer)
        )
        paid_with = purchase_options.get("payment_intent")
        purchase = (
            state.purchase_log.get_purchase(str(paid_with))
            if state.purchase_log is not None and paid_with
            else None
        )
    facts = ", ".join(
        f"{name} {value}"
        for name, value in _facts(event["data"]["object"], event_type)
        if value is not None
    )
    click.echo(f"{event_type} {event['id']} ({facts})")
    click.echo(f"  → {target}: HTTP {code} {truncate(answer, RESPONSE_WIDTH)}")
    logged = record.status if record else "not in this app's event log"
    click.echo(f"  event log: {logged}")
    click.echo(f"  before: {_account_line(before, customer)}")
    click.echo(f"  after:  {_account_line(after, customer)}")
    if paid_with:
        click.echo(f"  purchase: {_purchase_line(purchase, str(paid_with))}")
    if not 200 <= code < 300:
        raise click.exceptions.Exit(1)


@click.command("check", short_help="Say what is configured and what is missing.")
@click.option(
    "--online",
    is_flag=True,
    help="Also ask Stripe: is the API key accepted, is each price there and recurring?",
)
@with_appcontext
def check_command(online: bool) -> None:
    """Say what is configured and what is missing; never shows a secret.

    Exit code 1 when something the webhook needs is missing or wrong (the
    signing secret, the event table), or, with --online, when Stripe
    refuses the key or a configured price is missing or not recurring.
    """
    state = get_state()
    event_log = check.check_event_log(state)
    database = [event_log]
    if not event_log.problem:  # else that is the thing to fix first
        database.extend(check_library_tables(state))
    sections = [
        ("Settings", check.check_settings(state.settings)),
        ("Database", database),
    ]
    if online:
        sections.append(("Stripe", check.check_online(state.settings, state.stripe)))
    click.echo(findings.report(sections))
    if any(finding.problem for _, group in sections for finding in group):
        raise click.exceptions.Exit(1)


@click.command(
    "create-webhook-endpoint",
    short_help="Create the webhook endpoint in Stripe.",
)
@click.option(
    "--url",
    required=True,
    metavar="URL",
    help=f"The webhook's public URL, e.g. https://example.com{WEBHOOK_PATH}.",
)
@click.option("--thin", is_flag=True, help="An event destination sending thin events.")
@with_appcontext
def create_webhook_endpoint_command(url: str, thin: bool) -> None:
    """Create this app's webhook endpoint in Stripe and print its signing secret once.

    The endpoint gets exactly the event types this package handles and the
    API version its client is pinned to. With --thin, an event destination
    sending their thin (v1.) types, unversioned, to the thin-event endpoint's
    URL. Needs STRIPE_API_KEY.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise click.BadParameter("give the full URL, https://...", param_hint="--url")
    if thin:
        return create_thin_destination(url)
    gateway = get_state().stripe
    if gateway is None:
        raise click.ClickException(
            "STRIPE_API_KEY is not set: the endpoint is created through Stripe's API."
        )
    with reported_errors():
        endpoint = gateway.create_webhook_endpoint(url, list(HANDLED_EVENT_TYPES), API_VERSION)
    mode = "live" if endpoint.get("livemode") else "test"
    click.echo(f"Created webhook endpoint {endpoint.get('id')} ({mode} mode) for {url}")
    click.echo(f"  events: {', '.join(HANDLED_EVENT_TYPES)}")
    click.echo(f"  API version: {API_VERSION}")
    click.echo("Signing secret (shown this once; the Dashboard can reveal it again):")
    click.echo(f"  {endpoint.get('secret')}")
    click.echo(
        "Set it as STRIPE_WEBHOOK_SECRET (or add it, comma-separated, to the secrets "
        "you have), e.g. in your environment or secret store; not in your code."
    )


def _default(user: BillingAccount | None, field: str, fallback: str) -> str:
    """The user's own id for ``field``; else one of their own (``cus_test_7``) or the default."""
    if user is None:
        return fallback
    value = getattr(user, field)
    return str(value) if value else f"{fallback}_{user.user_id}"


def _default_price(settings: Settings) -> str:
    prices = [settings.price_pro_monthly, settings.price_pro_yearly, *settings.plans]
    return next((price for price in prices if price), DEFAULT_PRICE)


def _newest_purchase(state: BillingState, user: BillingAccount | None) -> PurchaseRecord | None:
    """The user's newest purchase, which a refund or dispute is about by default."""
    if user is None or state.purchase_log is None:
        return None
    return next(iter(state.purchase_log.purchases_of(user.user_id)), None)


def _purchase_line(purchase: PurchaseRecord | None, payment_intent: str) -> str:
    if purchase is None:
        return f"none of payment {payment_intent} in this app's store"
    kept = f"refunded {purchase.amount_refunded}, dispute {purchase.dispute_status or 'none'}"
    if purchase.user_id is None:
        return f"{purchase.id}: no Checkout session of it yet; kept: {kept}"
    paid = f"{purchase.amount} {purchase.currency}" if purchase.amount is not None else "amount ?"
    product = purchase.product or "unknown product"
    return f"{purchase.id}: {product} x{purchase.quantity or 1}, {purchase.status}, {paid}, {kept}"


def _facts(obj: dict[str, object], event_type: str) -> list[tuple[str, object]]:
    """What the event says, for its line: customer, subscription, status, price or user."""
    if event_type.startswith("checkout.") and obj.get("mode") == "payment":
        metadata = obj.get("metadata")
        named = metadata if isinstance(metadata, dict) else {}
        return [
            ("customer", obj.get("customer")),
            ("payment_intent", obj.get("payment_intent")),
            ("payment_status", obj.get("payment_status")),
            ("product", named.get("stripe_billing_product")),
            ("quantity", named.get("stripe_billing_quantity")),
            ("amount", obj.get("amount_total")),
            ("user", obj.get("client_reference_id")),
        ]
    if event_type == CHARGE_REFUNDED:
        return [
            ("customer", obj.get("customer")),
            ("payment_intent", obj.get("payment_intent")),
            ("amount", obj.get("amount")),
            ("amount_refunded", obj.get("amount_refunded")),
        ]
    if event_type in (*REFUND_EVENTS, *DISPUTE_EVENTS):
        return [
            ("payment_intent", obj.get("payment_intent")),
            ("amount", obj.get("amount")),
            ("status", obj.get("status")),
        ]
    if event_type.startswith("checkout."):
        metadata = obj.get("metadata")
        price = metadata.get("price_id") if isinstance(metadata, dict) else None
        return [
            ("customer", obj.get("customer")),
            ("subscription", obj.get("subscription")),
            ("payment_status", obj.get("payment_status")),
            ("price", price),
            ("user", obj.get("client_reference_id")),
        ]
    if event_type == SUMMARY_EVENT:
        facts = read_summary(obj)
        listed = ", ".join(sorted(facts.features)) if facts is not None else ""
        return [("customer", obj.get("customer")), ("features", listed or "none")]
    if event_type.startswith("invoice."):
        return [
            ("customer", obj.get("customer")),
            ("invoice", obj.get("id")),
            ("status", obj.get("status")),
            ("amount_due", obj.get("amount_due")),
        ]
    items = obj.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    price = first.get("price")
    return [
        ("customer", obj.get("customer")),
        ("subscription", obj.get("id")),
        ("status", obj.get("status")),
        ("price", price.get("id") if isinstance(price, dict) else None),
    ]


def _with_features(state: BillingState, account: BillingAccount | None) -> BillingAccount | None:
    return None if account is None else state.with_features(account)


def _account_line(account: BillingAccount | None, customer: str) -> str:
    if account is None:
        return f"no account has customer {customer}"
    features = f", features {', '.join(sorted(account.features))}" if account.features else ""
    return (
        f"user {account.user_id}: plan {account.plan}, "
        f"status {account.subscription_status or 'none'}, "
        f"customer {account.stripe_customer_id or 'none'}, "
        f"subscription {account.stripe_subscription_id or 'none'}{features}"
    )
