"""Stripe Entitlements: ``entitlements.active_entitlement_summary.updated`` sets the account's
active features through the pipeline, once per event, newest summary wins, a truncated
summary is completed from Stripe's API (mocked at the HTTP level), and gates accept them."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import responses
import sqlalchemy as sa
from conftest import ON_POSTGRES, Host
from flask import Flask, render_template_string
from support import NOW, SECRET, checkout_event, post_event

from flask_stripe_billing import InMemoryUserStore, StripeBilling
from flask_stripe_billing.core.entitlements import SUMMARY_EVENT
from flask_stripe_billing.testing import build_event, get_account, record_signals

API_KEY = "sk_test_entitlements_0123456789"
ENTITLEMENTS_URL = "https://api.stripe.com/v1/entitlements/active_entitlements"
WORKERS = 8


def summary(
    *features: str, customer: str = "cus_test", created: int = NOW, event_id: str | None = None
) -> dict[str, Any]:
    """A summary event as Stripe delivers it (first 10 inline, ``has_more`` past them)."""
    return build_event(
        SUMMARY_EVENT, customer=customer, features=features, created=created, event_id=event_id
    )


def entitlement(lookup_key: str) -> dict[str, Any]:
    """An active entitlement as Stripe's API lists it."""
    return {
        "id": f"ent_{lookup_key}",
        "object": "entitlements.active_entitlement",
        "feature": f"feat_{lookup_key}",
        "livemode": False,
        "lookup_key": lookup_key,
    }


def entitlement_rows(host: Host) -> dict[str, tuple[str, str | None]]:
    """customer → (stored features, last event id), as in the library's table."""
    with host.app.app_context():
        table = host.db.metadata.tables["stripe_billing_entitlements"]
        rows = host.db.session.execute(sa.select(table)).all()
        return {row.customer_id: (row.features, row.last_event_id) for row in rows}


def statuses(host: Host) -> dict[str, str]:
    return {row["id"]: row["status"] for row in host.events()}


def features_of(host: Host, user_id: int = 1) -> frozenset[str]:
    account = get_account(host.app, user_id)
    assert account is not None
    return account.features


# the webhook


def test_a_summary_sets_the_linked_accounts_features_once(host: Host) -> None:
    event = summary("export", "api", event_id="evt_summary")

    with record_signals() as recorded:
        first = post_event(host.client, event)
        again = post_event(host.client, event)

    assert (first.status_code, again.status_code) == (200, 200)
    assert features_of(host) == {"export", "api"}
    assert entitlement_rows(host) == {"cus_test": ('["api", "export"]', "evt_summary")}
    assert statuses(host) == {"evt_summary": "processed"}
    [changed] = recorded.calls["features_changed"]
    assert changed["user_id"] == "1"
    assert changed["old_features"] == frozenset()
    assert changed["new_features"] == {"export", "api"}
    assert changed["account"].features == {"export", "api"}
    assert changed["event"].id == "evt_summary"
    assert "plan_changed" not in recorded.calls
    assert host.user(1).plan == "free"  # features are not a plan


def test_a_summary_listing_the_same_features_sends_no_signal(host: Host) -> None:
    post_event(host.client, summary("export", created=NOW - 10))

    with record_signals() as recorded:
        post_event(host.client, summary("export", created=NOW))

    assert "features_changed" not in recorded.calls
    assert features_of(host) == {"export"}


def test_an_empty_summary_removes_every_feature(host: Host) -> None:
    post_event(host.client, summary("export", "api", created=NOW - 10))

    with record_signals() as recorded:
        post_event(host.client, summary(created=NOW))

    assert features_of(host) == frozenset()
    [changed] = recorded.calls["features_changed"]
    assert (changed["old_features"], changed["new_features"]) == ({"export", "api"}, frozenset())


def test_an_older_summary_arriving_late_is_stale(host: Host) -> None:
    post_event(host.client, summary("export", created=NOW, event_id="evt_new"))

    with record_signals() as recorded:
        response = post_event(host.client, summary("api", created=NOW - 5, event_id="evt_old"))

    assert response.status_code == 200
    assert features_of(host) == {"export"}
    assert statuses(host) == {"evt_new": "processed", "evt_old": "stale"}
    assert "features_changed" not in recorded.calls


@pytest.mark.parametrize("first", ["evt_a", "evt_b"])
def test_same_second_summaries_end_alike_in_either_order(make_host: Any, first: str) -> None:
    host = make_host()
    host.add_user(1, stripe_customer_id="cus_test")
    events = {
        "evt_a": summary("export", created=NOW, event_id="evt_a"),
        "evt_b": summary("export", "api", created=NOW, event_id="evt_b"),
    }
    second = "evt_b" if first == "evt_a" else "evt_a"

    post_event(host.client, events[first])
    post_event(host.client, events[second])

    assert features_of(host) == {"export", "api"}  # the tie goes to the larger list


def test_a_summary_before_the_customer_is_linked_waits_for_the_account(make_host: Any) -> None:
    host = make_host()
    host.add_user(1)  # Checkout has not linked cus_test yet
    with record_signals() as recorded:
        early = post_event(host.client, summary("export", event_id="evt_early"))

    assert early.status_code == 200
    [row] = host.events()
    assert (row["status"], row["user_id"]) == ("processed", None)
    assert row["error"].startswith("no account is linked to customer cus_test yet")
    assert "features_changed" not in recorded.calls
    assert "customer_not_found" not in recorded.calls
    assert features_of(host) == frozenset()

    checkout = checkout_event(client_reference_id="1", subscription="sub_1", created=NOW)
    with record_signals() as at_link:
        post_event(host.client, checkout)
        post_event(host.client, checkout)  # a duplicate: no second signal

    assert host.user(1).stripe_customer_id == "cus_test"
    assert features_of(host) == {"export"}
    [gained] = at_link.calls["features_changed"]  # the account gains what waited for it
    assert (gained["old_features"], gained["new_features"]) == (frozenset(), {"export"})
    assert gained["account"].features == {"export"}
    assert gained["event"].type == "checkout.session.completed"


def test_a_summary_never_links_a_customer(make_host: Any) -> None:
    host = make_host()
    host.add_user(1)
    post_event(host.client, summary("export", customer="cus_other"))

    assert host.user(1).stripe_customer_id is None


def test_a_store_keeping_no_entitlements_ignores_summaries() -> None:
    class NoEntitlements:
        """A custom store: accounts, event log and subscriptions, but no entitlement table."""

        def __init__(self) -> None:
            self.inner = InMemoryUserStore()

        def __getattr__(self, name: str) -> Any:
            if name in {"lock_entitlements", "save_entitlements", "entitlements_of"}:
                raise AttributeError(name)
            return getattr(self.inner, name)

    app = Flask(__name__)
    app.config["STRIPE_WEBHOOK_SECRET"] = SECRET
    store = NoEntitlements()
    StripeBilling(app, user_store=store)

    response = post_event(app.test_client(), summary("export", event_id="evt_no_table"))

    assert response.status_code == 200
    [record] = store.inner.events
    assert (record.status, record.error) == ("ignored", "the store keeps no entitlements")


# a summary listing more than 10: completed from Stripe's API


@pytest.fixture
def api_host(make_host: Any) -> Host:
    host = make_host({"STRIPE_API_KEY": API_KEY})
    host.add_user(1, stripe_customer_id="cus_test")
    return host


def twelve() -> list[str]:
    return [f"feature_{n:02d}" for n in range(12)]


def test_a_truncated_summary_is_completed_from_the_api_page_by_page(
    api_host: Host, stripe_api: responses.RequestsMock
) -> None:
    keys = twelve()
    first_page = stripe_api.get(
        ENTITLEMENTS_URL,
        match=[responses.matchers.query_param_matcher({"customer": "cus_test", "limit": "100"})],
        json={
            "object": "list",
            "data": [entitlement(key) for key in keys[:7]],
            "has_more": True,
            "url": "/v1/entitlements/active_entitlements",
        },
    )
    second_page = stripe_api.get(
        ENTITLEMENTS_URL,
        match=[
            responses.matchers.query_param_matcher(
                {"customer": "cus_test", "limit": "100", "starting_after": "ent_feature_06"}
            )
        ],
        json={
            "object": "list",
            "data": [entitlement(key) for key in keys[7:]],
            "has_more": False,
            "url": "/v1/entitlements/active_entitlements",
        },
    )
    event = summary(*keys, event_id="evt_truncated")
    assert event["data"]["object"]["entitlements"]["has_more"] is True
    assert len(event["data"]["object"]["entitlements"]["data"]) == 10

    with record_signals() as recorded:
        response = post_event(api_host.client, event)

    assert response.status_code == 200
    assert (len(first_page.calls), len(second_page.calls)) == (1, 1)
    request = first_page.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Stripe-Request-Trigger"] == "event=evt_truncated"
    assert features_of(api_host) == set(keys)
    assert statuses(api_host) == {"evt_truncated": "processed"}
    [changed] = recorded.calls["features_changed"]
    assert changed["new_features"] == set(keys)


def test_a_redelivered_truncated_summary_already_applied_asks_stripe_nothing(
    api_host: Host, stripe_api: responses.RequestsMock
) -> None:
    keys = twelve()
    listing_call = stripe_api.get(
        ENTITLEMENTS_URL,
        json={"object": "list", "data": [entitlement(key) for key in keys], "has_more": False},
    )
    event = summary(*keys, event_id="evt_twice")

    first = post_event(api_host.client, event)
    again = post_event(api_host.client, event)

    assert (first.status_code, again.status_code) == (200, 200)
    assert len(listing_call.calls) == 1
    assert statuses(api_host) == {"evt_twice": "processed"}


def test_a_summary_of_ten_or_fewer_is_not_completed(
    api_host: Host, stripe_api: responses.RequestsMock
) -> None:
    listing = stripe_api.get(ENTITLEMENTS_URL, json={"object": "list", "data": []})

    post_event(api_host.client, summary(*twelve()[:10]))

    assert len(listing.calls) == 0
    assert len(features_of(api_host)) == 10


@pytest.mark.parametrize("status", [500, 503])
def test_a_failed_completion_keeps_the_event_received_and_replay_completes_it(
    api_host: Host, stripe_api: responses.RequestsMock, status: int
) -> None:
    stripe_api.get(ENTITLEMENTS_URL, status=status, json={"error": {"message": "down"}})
    keys = twelve()

    with record_signals() as recorded:
        response = post_event(api_host.client, summary(*keys, event_id="evt_later"))

    assert response.status_code == 200  # recorded: replay completes it
    [row] = api_host.events()
    assert row["status"] == "received"
    assert row["error"].startswith("could not list the active entitlements of cus_test: ")
    assert "sk_test" not in row["error"]
    assert features_of(api_host) == frozenset()
    assert "features_changed" not in recorded.calls

    stripe_api.replace(
        responses.GET,
        ENTITLEMENTS_URL,
        json={"object": "list", "data": [entitlement(key) for key in keys], "has_more": False},
    )
    result = api_host.app.test_cli_runner().invoke(args=["billing", "replay", "--all"])

    assert result.exit_code == 0, result.output
    assert f"evt_later {SUMMARY_EVENT}: received → processed" in result.output
    assert features_of(api_host) == set(keys)


def test_without_an_api_key_a_truncated_summary_applies_its_first_ten(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    keys = twelve()

    with caplog.at_level(logging.WARNING, logger="flask_stripe_billing"):
        post_event(host.client, summary(*keys))

    assert features_of(host) == set(keys[:10])
    assert "set STRIPE_API_KEY to read the rest" in caplog.text


# where the features are used


@pytest.fixture
def gated(make_host: Any) -> Host:
    """A host gating /export by the ``export`` feature (no plan includes it in config),
    user 1 signed in."""
    host = make_host({"STRIPE_BILLING_PRICING_URL": "/pricing"}, current_user_id=lambda: "1")
    host.add_user(1, stripe_customer_id="cus_test")

    @host.app.get("/export")
    @host.billing.feature_required("export")
    def export() -> str:
        return "exported"

    return host


def test_a_feature_gate_opens_when_stripe_grants_the_feature(gated: Host) -> None:
    refused_html = gated.client.get("/export", headers={"Accept": "text/html"})
    refused_json = gated.client.get("/export", headers={"Accept": "application/json"})

    assert (refused_html.status_code, refused_html.location) == (302, "/pricing")
    assert refused_json.status_code == 403
    assert refused_json.json["details"] == {"required_feature": "export", "current_plan": "free"}

    post_event(gated.client, summary("export"))

    opened = gated.client.get("/export")
    assert (opened.status_code, opened.text) == (200, "exported")

    post_event(gated.client, summary(created=NOW + 60))  # the entitlement is removed

    assert gated.client.get("/export", headers={"Accept": "application/json"}).status_code == 403


def test_billing_account_gives_the_features(gated: Host) -> None:
    post_event(gated.client, summary("export", "api"))

    with gated.app.app_context():
        account = gated.billing.account(1)

    assert account.features == {"export", "api"}
    assert account.has_feature("api", gated.app.extensions["stripe_billing"].settings)
    with gated.app.app_context(), pytest.raises(LookupError):
        gated.billing.account(99)


def test_templates_see_the_features(make_host: Any) -> None:
    host = make_host(current_user_id=lambda: "1")
    host.add_user(1, stripe_customer_id="cus_test")
    settings = host.app.extensions["stripe_billing"].settings

    @host.app.get("/features")
    def features() -> str:
        return render_template_string(
            "{{ billing_account.features | sort | join(',') }}"
            "{% if billing_account.has_feature('export', settings) %} yes{% endif %}",
            settings=settings,
        )

    post_event(host.client, summary("export"))

    assert host.client.get("/features").text == "export yes"


# flask billing sync

SUBSCRIPTIONS_URL = "https://api.stripe.com/v1/subscriptions"
EMPTY_LIST = {"object": "list", "data": [], "has_more": False, "url": "/v1/subscriptions"}


def listing(*keys: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [entitlement(key) for key in keys],
        "has_more": False,
        "url": "/v1/entitlements/active_entitlements",
    }


def test_sync_reads_the_accounts_entitlements_too(
    api_host: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(SUBSCRIPTIONS_URL, json=EMPTY_LIST)
    entitlements = stripe_api.get(
        ENTITLEMENTS_URL,
        match=[responses.matchers.query_param_matcher({"customer": "cus_test", "limit": "100"})],
        json=listing("export", "api"),
    )

    with record_signals() as recorded:
        result = api_host.app.test_cli_runner().invoke(args=["billing", "sync", "1"])

    assert result.exit_code == 0, result.output
    assert len(entitlements.calls) == 1
    assert "user 1, customer cus_test: features none → api, export" in result.output
    assert features_of(api_host) == {"export", "api"}
    assert entitlement_rows(api_host)["cus_test"][1] == "sync_entitlements_cus_test"
    assert len(recorded.calls["features_changed"]) == 1
    assert api_host.events() == []  # snapshots are not logged

    again = api_host.app.test_cli_runner().invoke(args=["billing", "sync", "1"])
    assert "features api, export (unchanged)" in again.output


def test_a_summary_older_than_the_sync_arriving_later_is_stale(
    api_host: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(SUBSCRIPTIONS_URL, json=EMPTY_LIST)
    stripe_api.get(ENTITLEMENTS_URL, json=listing("export"))
    api_host.app.test_cli_runner().invoke(args=["billing", "sync", "1"])

    post_event(api_host.client, summary("api", created=NOW - 3600, event_id="evt_before_sync"))

    assert features_of(api_host) == {"export"}
    assert statuses(api_host) == {"evt_before_sync": "stale"}


def test_sync_without_features_reads_no_entitlements(
    api_host: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(SUBSCRIPTIONS_URL, json=EMPTY_LIST)
    entitlements = stripe_api.get(ENTITLEMENTS_URL, json=listing("export"))

    result = api_host.app.test_cli_runner().invoke(args=["billing", "sync", "--no-features", "1"])
    everything = api_host.app.test_cli_runner().invoke(args=["billing", "sync", "--all"])

    assert (result.exit_code, everything.exit_code) == (0, 0)
    assert len(entitlements.calls) == 0  # --all reads features only when asked to
    assert features_of(api_host) == frozenset()


def test_sync_all_with_features_reads_each_linked_account_once(
    api_host: Host, stripe_api: responses.RequestsMock
) -> None:
    api_host.add_user(2, stripe_customer_id="cus_two")
    api_host.add_user(3)  # no customer: nothing to read
    stripe_api.get(SUBSCRIPTIONS_URL, json=EMPTY_LIST)
    for customer, keys in (("cus_test", ("export",)), ("cus_two", ("api", "sso"))):
        stripe_api.get(
            ENTITLEMENTS_URL,
            match=[responses.matchers.query_param_matcher({"customer": customer, "limit": "100"})],
            json=listing(*keys),
        )

    result = api_host.app.test_cli_runner().invoke(args=["billing", "sync", "--all", "--features"])

    assert result.exit_code == 0, result.output
    assert len(stripe_api.calls) == 3  # one page of subscriptions, one call per linked account
    assert features_of(api_host, 1) == {"export"}
    assert features_of(api_host, 2) == {"api", "sso"}
    assert "Synced the features of 2 accounts." in result.output


def test_sync_reports_a_failed_entitlement_read_without_the_key(
    api_host: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(SUBSCRIPTIONS_URL, json=EMPTY_LIST)
    stripe_api.get(ENTITLEMENTS_URL, status=500, json={"error": {"message": "boom"}})

    result = api_host.app.test_cli_runner().invoke(args=["billing", "sync", "1"])

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "user 1, customer cus_test: no subscriptions at Stripe; nothing changed."
    assert lines[1].startswith("user 1, customer cus_test: features: ")
    assert lines[2] == "Synced 1 account; 1 failed."
    assert API_KEY not in result.output
    assert features_of(api_host) == frozenset()


# concurrent deliveries (row locks: PostgreSQL)


@pytest.mark.skipif(not ON_POSTGRES, reason="row locks of concurrent deliveries: PostgreSQL")
@pytest.mark.parametrize("linked", [True, False], ids=["linked", "no account yet"])
def test_summaries_of_one_customer_on_eight_threads_end_on_the_newest(
    make_host: Any, linked: bool
) -> None:
    host = make_host()
    host.add_user(1, stripe_customer_id="cus_test" if linked else None)
    events = [
        summary(f"key_{n}", created=NOW + n, event_id=f"evt_race_{n}") for n in range(WORKERS)
    ]
    barrier = threading.Barrier(WORKERS, timeout=30)

    def deliver(event: dict[str, Any]) -> int:
        client = host.app.test_client()
        barrier.wait()
        return int(post_event(client, event).status_code)

    with record_signals() as recorded, ThreadPoolExecutor(WORKERS) as pool:
        codes = list(pool.map(deliver, events))

    assert codes == [200] * WORKERS
    assert set(statuses(host).values()) <= {"processed", "stale"}
    assert entitlement_rows(host)["cus_test"] == (
        f'["key_{WORKERS - 1}"]',
        f"evt_race_{WORKERS - 1}",
    )
    changed = recorded.calls.get("features_changed", [])
    assert len({call["event"].id for call in changed}) == len(changed)
    assert bool(changed) == linked
