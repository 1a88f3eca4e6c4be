"""Both endpoints on during a migration: a change Stripe delivers as a snapshot event and as
its thin twin applies once, whichever arrives first, in any order."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import pytest
import responses
from conftest import Host
from support import NOW, load, load_object, post_event, subscription_event
from thin_support import (
    INVOICE_OBJECT,
    THIN_SECRET,
    notification,
    serve,
    subscription_object,
    thin_config,
)

from flask_stripe_billing.testing import record_signals

THIN = "/stripe/thin-webhook"
T0 = NOW - 3600
PERIOD_END = NOW + 30 * 86400


@pytest.fixture
def thin_host(make_host: Callable[..., Host]) -> Host:
    made = make_host(thin_config())
    made.add_user(1, stripe_customer_id="cus_test")
    return made


def post_thin(client: Any, body: dict[str, Any]) -> Any:
    return post_event(client, body, secret=THIN_SECRET, path=THIN)


def rows(host: Host) -> dict[str, tuple[str, str | None]]:
    return {r["id"]: (r["status"], r["error"]) for r in host.events()}


def test_a_thin_twin_of_an_applied_snapshot_event_is_not_fetched_nor_applied_again(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    fetch = serve(stripe_api, subscription_object())
    snapshot = subscription_event(event_id="evt_snap", status="active")
    with record_signals() as sent:
        post_event(thin_host.client, snapshot)
        response = post_thin(thin_host.client, notification(snapshot_event="evt_snap"))

    assert response.status_code == 200
    assert len(fetch.calls) == 0
    [thin_row] = [row for event_id, row in rows(thin_host).items() if event_id != "evt_snap"]
    assert thin_row == ("processed", "applied through snapshot event evt_snap")
    assert len(sent["plan_changed"]) == 1
    assert [call["status"] for call in sent["webhook_received"]] == ["processed", "duplicate"]


def test_a_snapshot_event_whose_thin_twin_applied_first_is_a_duplicate(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    serve(stripe_api, subscription_object(status="active"))
    thin = notification(event_id="evt_thin_first", snapshot_event="evt_snap_late")
    snapshot = subscription_event(event_id="evt_snap_late", status="active", created=T0)
    with record_signals() as sent:
        post_thin(thin_host.client, thin)
        response = post_event(thin_host.client, snapshot)

    assert response.status_code == 200
    assert rows(thin_host) == {
        "evt_thin_first": ("processed", None),
        "evt_snap_late": ("processed", "applied through thin event evt_thin_first"),
    }
    twin = next(r for r in thin_host.events() if r["id"] == "evt_snap_late")
    assert twin["type"] == "customer.subscription.updated"
    assert len(sent["plan_changed"]) == 1
    assert [call["status"] for call in sent["webhook_received"]] == ["processed", "duplicate"]


@pytest.mark.parametrize("thin_first", [True, False], ids=["thin first", "snapshot first"])
def test_a_payment_failure_delivered_thin_and_snapshot_signals_once_in_either_order(
    thin_host: Host, stripe_api: responses.RequestsMock, thin_first: bool
) -> None:
    invoice = load_object(INVOICE_OBJECT)
    invoice.update(id="in_1", customer="cus_test", status="open")
    serve(stripe_api, invoice)
    snapshot = load("events/stripe-ruby-mock__invoice.payment_failed.json")
    snapshot.update(id="evt_failed", created=T0)
    snapshot["data"]["object"].update(id="in_1", customer="cus_test")
    thin = notification("v1.invoice.payment_failed", "in_1", related_type="invoice")
    thin["snapshot_event"] = "evt_failed"
    with record_signals() as sent:
        if thin_first:
            assert post_thin(thin_host.client, thin).status_code == 200
        assert post_event(thin_host.client, snapshot).status_code == 200
        if not thin_first:
            assert post_thin(thin_host.client, thin).status_code == 200

    assert [call["invoice_id"] for call in sent["payment_failed"]] == ["in_1"]
    assert rows(thin_host)["evt_failed"][0] == "processed"


def test_a_thin_notification_without_a_snapshot_twin_reapplies_the_same_state_silently(
    thin_host: Host, stripe_api: responses.RequestsMock
) -> None:
    serve(stripe_api, subscription_object(status="active"))
    with record_signals() as sent:
        post_event(thin_host.client, subscription_event(status="active", created=T0))
        post_thin(thin_host.client, notification())

    assert thin_host.user(1).plan == "pro"
    assert len(sent["plan_changed"]) == 1
    assert len(sent["subscription_status_changed"]) == 1


# Permutations: snapshot and thin deliveries of the same changes, interleaved.

#: The changes Stripe made, in order: (snapshot type, status, created, snapshot layout);
#: the API now shows the last one. Each is delivered as a snapshot event (in the layout of
#: an old or a newer API version) and as its thin twin (the subscription fetched in today's
#: layout, the API version this package pins).
CHANGES = (
    ("customer.subscription.created", "trialing", T0, "2020"),
    ("customer.subscription.updated", "active", T0 + 10, "basil"),
    ("customer.subscription.updated", "past_due", T0 + 20, "2020"),
)


def deliveries(
    changes: tuple[tuple[str, str, int, str], ...], *, twinned: bool
) -> list[tuple[str, dict[str, Any]]]:
    """In order: each change's snapshot event, then its thin notification (naming the
    snapshot event as its twin when ``twinned``, as Stripe does when both are sent)."""
    made = []
    for index, (event_type, status, created, layout) in enumerate(changes):
        snapshot = subscription_event(
            event_type,
            status=status,
            created=created,
            event_id=f"evt_s{index}",
            layout=layout,
            period_end=PERIOD_END,
        )
        thin_type = "v1." + event_type
        twin = f"evt_s{index}" if twinned else None
        thin = notification(thin_type, event_id=f"evt_t{index}", snapshot_event=twin)
        made += [("snapshot", snapshot), ("thin", thin)]
    return made


def end_state(host: Host) -> tuple[Any, ...]:
    user = host.user(1)
    record = host.subscription("sub_test")
    return (
        user.plan,
        user.stripe_subscription_status,
        user.stripe_subscription_id,
        user.current_period_end,
        user.cancel_at_period_end,
        record["status"],
        record["plan"],
        record["current_period_end"],
    )


def reset(host: Host) -> None:
    with host.app.app_context():
        for name in ("stripe_billing_events", "stripe_billing_subscriptions"):
            host.db.session.execute(host.db.metadata.tables[name].delete())
        host.db.session.execute(host.db.metadata.tables["users"].delete())
        host.db.session.commit()
    host.add_user(1, stripe_customer_id="cus_test")


def deliver(host: Host, order: list[tuple[str, dict[str, Any]]]) -> tuple[Any, ...]:
    for kind, body in order:
        post = post_thin if kind == "thin" else post_event
        assert post(host.client, body).status_code == 200
    statuses = {row["id"]: row["status"] for row in host.events()}
    assert set(statuses.values()) <= {"processed", "stale"}, statuses
    return end_state(host)


def orders(changes: int, sample: int) -> list[tuple[int, ...]]:
    """Every order of the deliveries of ``changes`` changes, or a fixed sample of them."""
    every = list(itertools.permutations(range(2 * changes)))
    return every if len(every) <= sample else random.Random(13).sample(every, sample)


@pytest.mark.parametrize("twinned", [True, False], ids=["twinned", "untwinned"])
@pytest.mark.parametrize(("changes", "sample"), [(2, 24), (3, 120)])
def test_any_interleaving_of_snapshot_and_thin_deliveries_ends_as_in_order_delivery(
    thin_host: Host,
    stripe_api: responses.RequestsMock,
    changes: int,
    sample: int,
    twinned: bool,
) -> None:
    final_status = CHANGES[changes - 1][1]
    serve(stripe_api, subscription_object(status=final_status, period_end=PERIOD_END))
    in_order = deliveries(CHANGES[:changes], twinned=twinned)
    expected = deliver(thin_host, in_order)
    assert expected[:2] == ("pro", final_status)

    for order in orders(changes, sample):
        reset(thin_host)
        with record_signals() as sent:
            got = deliver(thin_host, [in_order[i] for i in order])

        assert got == expected, order
        assert len(sent["plan_changed"]) <= changes, order  # never a change applied twice
