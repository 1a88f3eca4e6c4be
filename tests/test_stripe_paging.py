"""Bounded listings: every loop over Stripe's pages stops at ``STRIPE_BILLING_MAX_PAGES``
pages, at ``STRIPE_BILLING_PAGING_DEADLINE`` seconds, or at a page that does not move on;
a webhook's event is then kept ``received`` with the reason, for replay.

Stripe's HTTP API is mocked with ``responses`` (stripe-python pages for real); time
is a fake clock that moves only when the pace waits.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from conftest import Host
from pacing_support import FakeClock, fake_clock
from support import load, post_event
from test_entitlements import ENTITLEMENTS_URL, entitlement

from flask_stripe_billing.config import DEFAULT_MAX_PAGES
from flask_stripe_billing.core.entitlements import SUMMARY_EVENT
from flask_stripe_billing.testing import build_event, get_account

API_KEY = "sk_test_51PagingKey0000000000000000"
SUBSCRIPTIONS_URL = "https://api.stripe.com/v1/subscriptions"
SUBSCRIPTION = load(
    "api-objects/pay-rails-vcr__2025-10-29.clover__subscription.active.before_price_swap.json"
)
KEYS = [f"feature_{n:02d}" for n in range(12)]


class EndlessList:
    """A Stripe list that always says ``has_more``: new objects on every page, or
    (``repeat``) the same page again and again. Notes each request's query."""

    def __init__(self, make: Callable[[int], dict[str, Any]], *, repeat: bool = False) -> None:
        self.make = make
        self.repeat = repeat
        self.numbers = itertools.count()
        self.queries: list[dict[str, list[str]]] = []
        self.headers: list[dict[str, str]] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        url = urlsplit(request.url)
        self.queries.append(parse_qs(url.query))
        self.headers.append(dict(request.headers))
        if self.repeat:
            self.numbers = itertools.count()
        data = [self.make(next(self.numbers)) for _ in range(2)]
        body = {"object": "list", "url": url.path, "data": data, "has_more": True}
        return 200, {}, json.dumps(body)


def endless_entitlements(mock: responses.RequestsMock, *, repeat: bool = False) -> EndlessList:
    listing = EndlessList(lambda n: entitlement(f"endless_{n:05d}"), repeat=repeat)
    mock.add_callback(responses.GET, ENTITLEMENTS_URL, callback=listing)
    return listing


def subscription(number: int) -> dict[str, Any]:
    obj = copy.deepcopy(SUBSCRIPTION)
    obj.update(id=f"sub_endless_{number:05d}", customer="cus_test", status="active")
    return obj


def truncated_summary(event_id: str) -> dict[str, Any]:
    """A summary event as Stripe delivers one of more than ten (``has_more``)."""
    return build_event(SUMMARY_EVENT, customer="cus_test", features=KEYS, event_id=event_id)


def status_of(host: Host, event_id: str) -> tuple[str, str | None]:
    [row] = [row for row in host.events() if row["id"] == event_id]
    return row["status"], row["error"]


@pytest.fixture
def api_host(make_host: Callable[..., Host]) -> Callable[..., Host]:
    """A host with an API key (and ``config``), user 1 linked to ``cus_test``."""

    def make(**config: Any) -> Host:
        host = make_host({"STRIPE_API_KEY": API_KEY, **config})
        host.add_user(1, stripe_customer_id="cus_test")
        return host

    return make


def test_a_summary_list_that_always_has_more_stops_at_the_default_cap_kept_received(
    api_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = api_host()
    fake_clock(host, monkeypatch)
    listing = endless_entitlements(stripe_api)

    response = post_event(host.client, truncated_summary("evt_endless"))

    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    assert len(listing.queries) == DEFAULT_MAX_PAGES == 20
    cursors = [query.get("starting_after", [None])[0] for query in listing.queries]
    assert cursors[:3] == [None, "ent_endless_00001", "ent_endless_00003"]
    assert {h["Stripe-Request-Trigger"] for h in listing.headers} == {"event=evt_endless"}
    status, error = status_of(host, "evt_endless")
    assert status == "received"
    assert error == (
        "could not list the active entitlements of cus_test: StripeServiceError: "
        "Stripe could not list active entitlements: "
        "it has more than 20 pages (STRIPE_BILLING_MAX_PAGES)"
    )
    account = get_account(host.app, 1)
    assert account is not None and account.features == frozenset()

    stripe_api.replace(
        responses.GET,
        ENTITLEMENTS_URL,
        json={"object": "list", "data": [entitlement(k) for k in KEYS], "has_more": False},
    )
    replayed = host.app.test_cli_runner().invoke(args=["billing", "replay", "--all"])

    assert replayed.exit_code == 0, replayed.output
    assert status_of(host, "evt_endless") == ("processed", None)
    account = get_account(host.app, 1)
    assert account is not None and account.features == set(KEYS)


def test_the_page_cap_is_configurable(
    api_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = api_host(STRIPE_BILLING_MAX_PAGES="3")
    fake_clock(host, monkeypatch)
    listing = endless_entitlements(stripe_api)

    post_event(host.client, truncated_summary("evt_capped"))

    assert len(listing.queries) == 3
    assert status_of(host, "evt_capped")[0] == "received"


def test_a_page_that_repeats_itself_stops_the_listing_at_once(
    api_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = api_host()
    fake_clock(host, monkeypatch)
    listing = endless_entitlements(stripe_api, repeat=True)

    post_event(host.client, truncated_summary("evt_repeat"))

    assert len(listing.queries) == 2
    status, error = status_of(host, "evt_repeat")
    assert status == "received"
    assert error is not None and error.endswith("its pages do not move on")


def test_a_listing_past_its_deadline_stops_kept_received(
    api_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = api_host(
        STRIPE_BILLING_MAX_PAGES="1000",
        STRIPE_BILLING_API_RATE="10",
        STRIPE_BILLING_PAGING_DEADLINE="2",
    )
    clock: FakeClock = fake_clock(host, monkeypatch)
    listing = endless_entitlements(stripe_api)

    response = post_event(host.client, truncated_summary("evt_slow"))

    assert response.status_code == 200
    assert 19 <= len(listing.queries) <= 21  # 10 a second for 2 s
    assert clock.now - 1000.0 <= 2.0
    status, error = status_of(host, "evt_slow")
    assert status == "received"
    assert error is not None
    assert error.endswith("not done in 2 s (STRIPE_BILLING_PAGING_DEADLINE)")


def test_syncing_a_customer_with_endless_subscriptions_stops_at_the_cap(
    api_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = api_host(STRIPE_BILLING_MAX_PAGES="4")
    fake_clock(host, monkeypatch)
    listing = EndlessList(subscription)
    stripe_api.add_callback(responses.GET, SUBSCRIPTIONS_URL, callback=listing)

    result = host.app.test_cli_runner().invoke(args=["billing", "sync", "1", "--no-features"])

    assert result.exit_code == 1, result.output
    assert len(listing.queries) == 4
    assert "it has more than 4 pages (STRIPE_BILLING_MAX_PAGES)" in result.output
    assert host.user(1).plan == "free"


def test_sync_all_stops_on_a_page_that_does_not_move_on_and_says_where_to_resume(
    api_host: Callable[..., Host], stripe_api: responses.RequestsMock, monkeypatch: Any
) -> None:
    host = api_host()
    fake_clock(host, monkeypatch)
    listing = EndlessList(subscription, repeat=True)
    stripe_api.add_callback(responses.GET, SUBSCRIPTIONS_URL, callback=listing)

    result = host.app.test_cli_runner().invoke(args=["billing", "sync", "--all"])

    assert result.exit_code == 1, result.output
    assert len(listing.queries) == 2
    assert "Stripe could not list subscriptions: its pages do not move on" in result.output
    assert "resume with: flask billing sync --all --starting-after sub_endless_00001" in (
        result.output
    )
