"""``billing.invoices()``: a customer's invoices from Stripe's API (mocked with responses,
stripe-python really runs), as small frozen ``Invoice`` values."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from conftest import Host
from support import load, load_object

from flask_stripe_billing import BillingAccount, Invoice
from flask_stripe_billing.errors import StripeServiceError

API = "https://api.stripe.com/v1"
API_KEY = "sk_test_51InvoicesKey0000000000000"
#: A paid invoice of the current layout, as Stripe's test-mode API returned it.
PAID = load(
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__"
    "invoice.paid.subscription_create.connect_direct.json"
)
#: An open invoice of the 2020-08-27 layout whose payment failed.
FAILED = load_object("events/stripe-ruby-mock__invoice.payment_failed.json")
#: Stripe's own fixture: a draft, no number nor URLs yet.
DRAFT = load("stripe-openapi/invoice.json")


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def page(*invoices: dict[str, Any]) -> dict[str, Any]:
    """A list answer of ``GET /v1/invoices``."""
    return {"object": "list", "data": list(invoices), "has_more": False, "url": "/v1/invoices"}


@pytest.fixture
def keyed(make_host: Callable[..., Host]) -> Host:
    """A host with an API key; user 1 has customer ``cus_test``, user 2 none."""
    made = make_host({"STRIPE_API_KEY": API_KEY, "STRIPE_API_MAX_RETRIES": "0"})
    made.add_user(1, stripe_customer_id="cus_test")
    made.add_user(2)
    return made


def invoices_of(host: Host, *args: Any, **kwargs: Any) -> list[Invoice]:
    with host.app.app_context():
        return host.billing.invoices(*args, **kwargs)


def sent(call: Any) -> tuple[str, str, list[tuple[str, str]]]:
    url = urlsplit(call.request.url)
    return call.request.method, url.path, sorted(parse_qsl(url.query))


def test_invoices_asks_stripe_for_the_customers_newest_and_reads_both_layouts(
    keyed: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(f"{API}/invoices", json=page(PAID, FAILED, DRAFT))

    invoices = invoices_of(keyed, 1, limit=3)

    (call,) = stripe_api.calls
    assert sent(call) == ("GET", "/v1/invoices", [("customer", "cus_test"), ("limit", "3")])
    assert call.request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert invoices == [
        Invoice(
            id="in_1TGnErQK2ZHS99Rk4nuhpuoB",
            number="O6OJNDPS-0001",
            created=at(1774905649),
            amount_due=1000,
            amount_paid=1000,
            currency="usd",
            status="paid",
            hosted_invoice_url=PAID["hosted_invoice_url"],
            invoice_pdf=PAID["invoice_pdf"],
        ),
        Invoice(
            id="in_000000000000000000000000",
            number="C93E45D7-0001",
            created=at(1648320007),
            amount_due=2000,
            amount_paid=0,
            currency="usd",
            status="open",
            hosted_invoice_url=FAILED["hosted_invoice_url"],
            invoice_pdf=FAILED["invoice_pdf"],
        ),
        Invoice(
            id="in_1Pgc6tB7WZ01zgkWu9fdqL6I",
            number=None,
            created=at(1234567890),
            amount_due=1000,
            amount_paid=0,
            currency="usd",
            status="draft",
            hosted_invoice_url=None,
            invoice_pdf=None,
        ),
    ]


def test_invoices_are_frozen(keyed: Host, stripe_api: responses.RequestsMock) -> None:
    stripe_api.get(f"{API}/invoices", json=page(PAID))

    (invoice,) = invoices_of(keyed, "1")

    with pytest.raises(dataclasses.FrozenInstanceError):
        invoice.status = "void"  # type: ignore[misc]


def test_invoices_default_to_ten_and_take_an_account(
    keyed: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(f"{API}/invoices", json=page())
    account = BillingAccount(user_id="9", stripe_customer_id="cus_given")

    assert invoices_of(keyed, account) == []

    (call,) = stripe_api.calls
    assert sent(call) == ("GET", "/v1/invoices", [("customer", "cus_given"), ("limit", "10")])


def test_a_user_without_a_customer_has_no_invoices_and_stripe_is_not_asked(
    keyed: Host, stripe_api: responses.RequestsMock
) -> None:
    assert invoices_of(keyed, 2) == []
    assert len(stripe_api.calls) == 0


def test_an_unknown_user_is_a_lookup_error(keyed: Host, stripe_api: responses.RequestsMock) -> None:
    with pytest.raises(LookupError, match="no user '404'"):
        invoices_of(keyed, "404")
    assert len(stripe_api.calls) == 0


@pytest.mark.parametrize("limit", [0, 101])
def test_a_limit_stripe_would_refuse_is_a_value_error(keyed: Host, limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be between 1 and 100"):
        invoices_of(keyed, 1, limit=limit)


def test_stripe_refusing_is_a_stripe_service_error_without_the_key(
    keyed: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(
        f"{API}/invoices",
        status=400,
        json={"error": {"type": "invalid_request_error", "message": f"bad {API_KEY}"}},
        headers={"Request-Id": "req_invoices"},
    )

    with pytest.raises(StripeServiceError) as raised:
        invoices_of(keyed, 1)

    assert str(raised.value) == "Stripe could not list invoices"
    assert raised.value.details == {
        "service": "Stripe",
        "request_id": "req_invoices",
        "status": 400,
    }
    assert API_KEY not in repr(raised.value)


def test_a_silent_stripe_is_a_stripe_service_error_within_the_timeouts(
    keyed: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(f"{API}/invoices", body=requests.exceptions.ReadTimeout())

    with pytest.raises(StripeServiceError, match="Stripe could not list invoices"):
        invoices_of(keyed, 1)

    (call,) = stripe_api.calls  # STRIPE_API_MAX_RETRIES=0
    assert call.request.req_kwargs["timeout"] == (2.0, 3.0)
