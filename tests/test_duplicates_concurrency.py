"""A duplicate subscription's triggering event delivered twice at the same moment on two
workers (threads, each its own connection, PostgreSQL): one ``duplicate_subscription``
signal and exactly one cancel request to Stripe, in the two-tabs case and in the
retry-after-``incomplete`` case."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import responses
from conftest import Host
from manage_support import CUSTOMER
from support import NOW, envelope, post_event
from test_duplicates import (
    INCOMPLETE,
    OPT_IN,
    PRICE,
    START,
    event,
    mock_cancel,
    subscription,
    two_tabs,
)
from test_thin_concurrency import together

from flask_stripe_billing.testing import record_signals

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("workers", [2, 8])
def test_the_event_that_makes_a_duplicate_live_delivered_at_once_cancels_once(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, workers: int
) -> None:
    host = make_host(OPT_IN)
    host.add_user(1, stripe_customer_id=CUSTOMER)
    mock_cancel(stripe_api, "sub_tab_two", START + 1000)
    first_session, first, trigger, second = two_tabs(NOW - 100, NOW - 50)
    for delivery in (first_session, first):
        assert post_event(host.client, delivery).status_code == 200

    def deliver() -> Any:
        return post_event(host.app.test_client(), trigger)

    with record_signals() as sent:
        codes = together([deliver] * workers)
        assert post_event(host.client, second).status_code == 200

    assert codes == [200] * workers
    assert len(sent["duplicate_subscription"]) == 1
    cancels = [call for call in stripe_api.calls if call.request.method == "DELETE"]
    assert len(cancels) == 1
    refunds = [call for call in stripe_api.calls if call.request.url.endswith("/refunds")]
    assert len(refunds) == 1
    assert host.subscription("sub_tab_two")["status"] == "canceled"
    assert host.user(1).stripe_subscription_id == "sub_tab_one"


def test_both_tabs_events_delivered_at_once_cancel_one_subscription_once(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    """Each subscription's events arrive together with the other's: whichever commits
    second finds the duplicate, and only sub_tab_two (the newer) is cancelled."""
    host = make_host(OPT_IN)
    host.add_user(1, stripe_customer_id=CUSTOMER)
    mock_cancel(stripe_api, "sub_tab_two", START + 1000)
    deliveries = two_tabs(NOW - 100, NOW - 50)

    def delivering(delivery: dict[str, Any]) -> Callable[[], Any]:
        return lambda: post_event(host.app.test_client(), delivery)

    with record_signals() as sent:
        codes = together([delivering(d) for d in deliveries * 2])

    assert codes == [200] * 8
    assert [n["duplicate_subscription_id"] for n in sent["duplicate_subscription"]] == [
        "sub_tab_two"
    ]
    cancels = [call.request.url for call in stripe_api.calls if call.request.method == "DELETE"]
    assert len(cancels) == 1
    assert "/subscriptions/sub_tab_two" in cancels[0]


@pytest.mark.parametrize("workers", [2, 8])
def test_the_late_payment_of_an_incomplete_try_delivered_at_once_cancels_the_retry_once(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock, workers: int
) -> None:
    """Retry after ``incomplete``: the first try, the retry that paid, then the first try
    paid after all, its ``.updated`` delivered on several workers at once."""
    host = make_host(OPT_IN)
    host.add_user(1, stripe_customer_id=CUSTOMER)
    mock_cancel(stripe_api, "sub_retry", START + 1000)
    first = copy.deepcopy(INCOMPLETE)
    first.update(id="sub_first_try", customer=CUSTOMER, created=NOW - 300)
    for item in first["items"]["data"]:
        item["price"]["id"] = PRICE
    paid_late = copy.deepcopy(first)
    paid_late["status"] = "active"
    retry = subscription("sub_retry", created=NOW - 200)
    for delivery in (
        envelope("customer.subscription.created", first, created=NOW - 300),
        event(retry, "customer.subscription.created", NOW - 200),
    ):
        assert post_event(host.client, delivery).status_code == 200
    trigger = envelope("customer.subscription.updated", paid_late, created=NOW - 10)

    def deliver() -> Any:
        return post_event(host.app.test_client(), trigger)

    with record_signals() as sent:
        codes = together([deliver] * workers)

    assert codes == [200] * workers
    [notice] = sent["duplicate_subscription"]
    assert (notice["kept_subscription_id"], notice["duplicate_subscription_id"]) == (
        "sub_first_try",
        "sub_retry",
    )
    cancels = [call.request.url for call in stripe_api.calls if call.request.method == "DELETE"]
    assert len(cancels) == 1
    assert "/subscriptions/sub_retry" in cancels[0]
    refunds = [call for call in stripe_api.calls if call.request.url.endswith("/refunds")]
    assert len(refunds) == 1
    assert host.subscription("sub_retry")["status"] == "canceled"
    assert host.user(1).stripe_subscription_id == "sub_first_try"
