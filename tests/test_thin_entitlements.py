"""Thin notifications of entitlement summaries: stripe-python 16's
``V1EntitlementsActiveEntitlementSummaryUpdatedEventNotification`` names no related
object (a summary has no id), so the snapshot event it names is fetched from
``GET /v1/events/{id}`` (Stripe's API mocked with ``responses``) and applied under the
notification's id, its twin claimed: once per change, whichever way it comes."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import responses
from conftest import ON_POSTGRES, Host
from stripe.events import V1EntitlementsActiveEntitlementSummaryUpdatedEventNotification
from support import NOW, post_event
from thin_support import API, API_KEY, THIN_SECRET, notification, thin_config

from flask_stripe_billing.core.entitlements import SUMMARY_EVENT
from flask_stripe_billing.testing import build_event, get_account, record_signals

THIN = "/stripe/thin-webhook"
THIN_TYPE = "v1.entitlements.active_entitlement_summary.updated"
ENTITLEMENTS_URL = f"{API}/v1/entitlements/active_entitlements"


@pytest.fixture
def thin_host(make_host: Callable[..., Host]) -> Host:
    made = make_host(thin_config())
    made.add_user(1, stripe_customer_id="cus_test")
    return made


def summary_notification(snapshot_event: str | None, event_id: str) -> dict[str, Any]:
    """Stripe's published thin notification, as a summary's: no related object."""
    body = notification(THIN_TYPE, event_id=event_id, snapshot_event=snapshot_event)
    del body["related_object"]
    return body


def snapshot(event_id: str, *features: str, created: int = NOW) -> dict[str, Any]:
    return build_event(SUMMARY_EVENT, features=features, created=created, event_id=event_id)


def serve_events(mock: responses.RequestsMock, *events: dict[str, Any]) -> dict[str, Any]:
    """Stripe's API answers GET /v1/events/{id} with each event; the registered calls."""
    return {event["id"]: mock.get(f"{API}/v1/events/{event['id']}", json=event) for event in events}


def post_thin(client: Any, body: dict[str, Any], secret: str = THIN_SECRET) -> Any:
    return post_event(client, body, secret=secret, path=THIN)


def rows(host: Host) -> dict[str, tuple[str, str | None]]:
    return {row["id"]: (row["status"], row["error"]) for row in host.events()}


def features_of(host: Host) -> frozenset[str]:
    account = get_account(host.app, 1)
    assert account is not None
    return account.features


def test_the_notification_shape_is_stripe_pythons() -> None:
    body = summary_notification("evt_snap", "evt_thin")
    assert (
        "related_object"
        not in V1EntitlementsActiveEntitlementSummaryUpdatedEventNotification.__annotations__
    )
    assert (
        body["type"] == V1EntitlementsActiveEntitlementSummaryUpdatedEventNotification.LOOKUP_TYPE
    )


def test_a_summary_notification_fetches_its_snapshot_event_and_applies_it_once(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    calls = serve_events(stripe_api, snapshot("evt_snap", "export", "api"))

    with record_signals() as sent:
        first = post_thin(thin_host.client, summary_notification("evt_snap", "evt_thin"))
        again = post_thin(thin_host.client, summary_notification("evt_snap", "evt_thin"))
        late_snapshot = post_event(thin_host.client, snapshot("evt_snap", "export", "api"))

    assert (first.status_code, again.status_code, late_snapshot.status_code) == (200, 200, 200)
    assert len(calls["evt_snap"].calls) == 1  # the duplicate is settled without a fetch
    request = calls["evt_snap"].calls[0].request
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Stripe-Request-Trigger"] == "event=evt_thin"
    assert features_of(thin_host) == {"export", "api"}
    assert rows(thin_host) == {
        "evt_thin": ("processed", None),
        "evt_snap": ("processed", "applied through thin event evt_thin"),
    }
    [changed] = sent["features_changed"]
    assert changed["event"].id == "evt_thin"
    statuses = [call["status"] for call in sent["webhook_received"]]
    assert statuses == ["processed", "duplicate", "duplicate"]


def test_a_notification_whose_snapshot_applied_first_is_not_fetched(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    calls = serve_events(stripe_api, snapshot("evt_snap", "export"))
    post_event(thin_host.client, snapshot("evt_snap", "export"))

    response = post_thin(thin_host.client, summary_notification("evt_snap", "evt_thin"))

    assert response.status_code == 200
    assert len(calls["evt_snap"].calls) == 0
    assert rows(thin_host)["evt_thin"] == ("processed", "applied through snapshot event evt_snap")
    assert features_of(thin_host) == {"export"}


def test_a_notification_naming_no_snapshot_event_is_ignored(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    response = post_thin(thin_host.client, summary_notification(None, "evt_thin_alone"))

    assert response.status_code == 200
    assert rows(thin_host) == {"evt_thin_alone": ("ignored", None)}
    assert len(stripe_api.calls) == 0


def test_a_named_snapshot_event_of_another_type_is_not_applied(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    other = build_event("customer.subscription.updated", event_id="evt_not_a_summary")
    serve_events(stripe_api, other)

    response = post_thin(thin_host.client, summary_notification("evt_not_a_summary", "evt_thin"))

    assert response.status_code == 200
    assert rows(thin_host) == {
        "evt_thin": (
            "ignored",
            "snapshot event evt_not_a_summary is a customer.subscription.updated event, "
            f"not {SUMMARY_EVENT}",
        )
    }
    assert thin_host.subscriptions() == []


def test_a_summary_notification_signed_with_another_secret_is_refused(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    body = summary_notification("evt_snap", "evt_thin")

    response = post_thin(thin_host.client, body, secret="whsec_someone_else")

    assert response.status_code == 400
    assert response.json["error"] == "validation_error"
    assert thin_host.events() == []
    assert len(stripe_api.calls) == 0


@pytest.mark.parametrize("status", [404, 500])
def test_a_failed_fetch_keeps_it_received_and_replay_fetches_again(
    thin_host: Host, stripe_api: responses.RequestsMock, status: int
) -> None:
    url = f"{API}/v1/events/evt_snap"
    stripe_api.get(url, status=status, json={"error": {"type": "api_error", "message": "no"}})

    response = post_thin(thin_host.client, summary_notification("evt_snap", "evt_thin"))

    assert response.status_code == 200  # recorded: replay fetches it
    status_now, error = rows(thin_host)["evt_thin"]
    assert status_now == "received"
    assert error is not None and error.startswith("could not fetch snapshot event evt_snap: ")
    assert features_of(thin_host) == frozenset()

    stripe_api.replace(responses.GET, url, json=snapshot("evt_snap", "export"))
    result = thin_host.app.test_cli_runner().invoke(args=["billing", "replay", "--all"])

    assert result.exit_code == 0, result.output
    assert f"evt_thin {THIN_TYPE}: received → processed" in result.output
    assert features_of(thin_host) == {"export"}


def test_a_fetched_summary_listing_more_than_ten_is_completed_from_the_api(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    keys = [f"feature_{n:02d}" for n in range(12)]
    serve_events(stripe_api, snapshot("evt_snap", *keys))
    stripe_api.get(
        ENTITLEMENTS_URL,
        json={
            "object": "list",
            "data": [
                {"id": f"ent_{k}", "lookup_key": k, "object": "entitlements.active_entitlement"}
                for k in keys
            ],
            "has_more": False,
        },
    )

    post_thin(thin_host.client, summary_notification("evt_snap", "evt_thin"))

    assert features_of(thin_host) == set(keys)


# snapshot and thin deliveries of the same changes, interleaved

CHANGES = (("export",), ("export", "api"), ())


def deliveries() -> list[tuple[str, dict[str, Any]]]:
    """In order: each change's snapshot event, then its thin twin."""
    made = []
    for index, features in enumerate(CHANGES):
        made.append(("snapshot", snapshot(f"evt_s{index}", *features, created=NOW + index)))
        made.append(("thin", summary_notification(f"evt_s{index}", f"evt_t{index}")))
    return made


def deliver(host: Host, order: list[tuple[str, dict[str, Any]]]) -> frozenset[str]:
    for kind, body in order:
        post = post_thin if kind == "thin" else post_event
        assert post(host.client, body).status_code == 200
    statuses = {row["id"]: row["status"] for row in host.events()}
    assert set(statuses.values()) <= {"processed", "stale"}, statuses
    return features_of(host)


def reset(host: Host) -> None:
    with host.app.app_context():
        for name in ("stripe_billing_events", "stripe_billing_entitlements"):
            host.db.session.execute(host.db.metadata.tables[name].delete())
        host.db.session.commit()


def test_any_interleaving_of_snapshot_and_thin_summaries_ends_as_in_order_delivery(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    in_order = deliveries()
    serve_events(stripe_api, *(body for kind, body in in_order if kind == "snapshot"))
    expected = deliver(thin_host, in_order)
    assert expected == frozenset()
    every = list(itertools.permutations(range(len(in_order))))
    sample = random.Random(11).sample(every, 150)

    for order in sample:
        reset(thin_host)
        with record_signals() as sent:
            got = deliver(thin_host, [in_order[i] for i in order])

        assert got == expected, order
        changed = sent.calls.get("features_changed", [])
        assert len(changed) <= len(CHANGES), order  # never a change applied twice


@pytest.mark.skipif(not ON_POSTGRES, reason="row locks of concurrent deliveries: PostgreSQL")
def test_a_summary_delivered_as_snapshot_and_thin_on_eight_threads_applies_once(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    serve_events(stripe_api, snapshot("evt_snap_race", "export"))
    thin = summary_notification("evt_snap_race", "evt_thin_race")
    barrier = threading.Barrier(8, timeout=30)

    def deliver_one(by_thin: bool) -> int:
        client = thin_host.app.test_client()
        barrier.wait()
        if by_thin:
            return int(post_thin(client, thin).status_code)
        return int(post_event(client, snapshot("evt_snap_race", "export")).status_code)

    with record_signals() as sent, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(deliver_one, [True, False] * 4))

    assert codes == [200] * 8
    assert {row["id"]: row["status"] for row in thin_host.events()} == {
        "evt_snap_race": "processed",
        "evt_thin_race": "processed",
    }
    assert features_of(thin_host) == {"export"}
    assert len(sent["features_changed"]) == 1
