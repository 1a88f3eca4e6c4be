"""The ``flask billing`` recovery commands: events, replay, sync and prune."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import click
import pytest
import responses
import sqlalchemy as sa
from conftest import Host
from flask import Flask
from support import NOW, fixture_event, load, post_event, subscription_event

from flask_stripe_billing import BillingAccount, InMemoryUserStore, StripeBilling

API_KEY = "sk_test_51CliSyncKey00000000000000"
SUBSCRIPTIONS_URL = "https://api.stripe.com/v1/subscriptions"
TRIALING = load("api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json")
INCOMPLETE = load("api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.incomplete.json")
ACTIVE = load(
    "api-objects/pay-rails-vcr__2025-10-29.clover__subscription.active.before_price_swap.json"
)
UTC = UTC


def billing(host: Host, *args: str, input: str | None = None) -> Any:
    """Run ``flask billing ARGS`` against the host app, as an operator would."""
    return host.app.test_cli_runner().invoke(args=["billing", *args], input=input)


def printed(result: Any) -> list[str]:
    """What a command printed, but the progress bar's label (it goes to stderr, which
    Click before 8.2 mixes into stdout and 8.2 keeps apart)."""
    return [line for line in result.output.splitlines() if "Syncing subscriptions" not in line]


def stripe_list(*subscriptions: dict[str, Any]) -> dict[str, Any]:
    """A Stripe list object, as ``GET /v1/subscriptions`` answers."""
    return {
        "object": "list",
        "data": list(subscriptions),
        "has_more": False,
        "url": "/v1/subscriptions",
    }


def for_customer(customer_id: str) -> Any:
    """Match a list request for this customer's subscriptions, any status."""
    return responses.matchers.query_param_matcher(
        {"customer": customer_id, "status": "all", "limit": "100"}
    )


def as_utc(value: datetime) -> datetime:
    """A datetime read back from the database as aware UTC (SQLite drops the zone)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def link(host: Host, user_id: int, customer_id: str) -> None:
    """The host links a user to a Stripe customer (e.g. after support looked it up)."""
    with host.app.app_context():
        host.db.session.get(host.User, user_id).stripe_customer_id = customer_id
        host.db.session.commit()


def event_rows(host: Host) -> dict[str, tuple[str, str | None, int]]:
    """Each stored event's status, user and attempts, by id."""
    return {row["id"]: (row["status"], row["user_id"], row["attempts"]) for row in host.events()}


def age_events(host: Host, days: int, *event_ids: str) -> None:
    """Pretend these events were received ``days`` days ago."""
    with host.app.app_context():
        table = host.db.metadata.tables["stripe_billing_events"]
        received = datetime.now(UTC) - timedelta(days=days)
        host.db.session.execute(
            table.update().where(table.c.id.in_(event_ids)).values(received_at=received)
        )
        host.db.session.commit()


@pytest.fixture
def failing_apply(host: Host, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """A handler bug while it is deployed: every write to an account or its subscriptions
    raises (marking an event unmatched still works). Call it to fix."""

    real_write = host.billing.user_store.write_outcome

    def buggy_write(**outcome: Any) -> BillingAccount | None:
        if outcome["changes"] or outcome["records"]:
            raise RuntimeError("bug in the deployed release")
        return real_write(**outcome)

    monkeypatch.setattr(host.billing.user_store, "write_outcome", buggy_write)
    yield monkeypatch.undo


@pytest.fixture
def synced(make_host: Callable[..., Host]) -> Host:
    """A host with an API key; user 1 is the trialing fixture's customer."""
    made = make_host({"STRIPE_API_KEY": API_KEY})
    made.add_user(1, stripe_customer_id=TRIALING["customer"])
    return made


# registration


def test_billing_commands_are_on_the_app(host: Host) -> None:
    result = billing(host, "--help")

    assert result.exit_code == 0
    for command in ("events", "replay", "sync", "prune"):
        assert f"  {command}  " in result.output


def test_blueprint_style_set_up_adds_the_commands_too() -> None:
    app = Flask(__name__)
    extension = StripeBilling(user_store=InMemoryUserStore())
    app.register_blueprint(extension.blueprint, url_prefix="/api")

    result = app.test_cli_runner().invoke(args=["billing", "events"])

    assert (result.exit_code, result.output) == (0, "No stored events match.\n")


def test_a_hosts_own_billing_command_is_kept() -> None:
    app = Flask(__name__)

    @app.cli.command("billing")
    def own_billing() -> None:
        click.echo("the host's own")

    StripeBilling(app, user_store=InMemoryUserStore())

    result = app.test_cli_runner().invoke(args=["billing"])
    assert result.output == "the host's own\n"


# events


def test_events_lists_newest_first_one_line_each(
    host: Host, failing_apply: Callable[[], None]
) -> None:
    post_event(host.client, subscription_event(event_id="evt_failed"))
    failing_apply()
    post_event(host.client, subscription_event(event_id="evt_processed", created=NOW + 1))
    post_event(host.client, subscription_event(event_id="evt_unmatched", customer="cus_new"))

    result = billing(host, "events")

    assert result.exit_code == 0
    header, *lines = result.output.splitlines()
    assert header.split() == [
        "RECEIVED",
        "(UTC)",
        "ID",
        "TYPE",
        "STATUS",
        "CUSTOMER",
        "USER",
        "ATTEMPTS",
        "ERROR",
    ]
    assert [line.split()[2] for line in lines] == ["evt_unmatched", "evt_processed", "evt_failed"]
    unmatched, processed, failed = (line.split() for line in lines)
    assert unmatched[3:8] == ["customer.subscription.updated", "unmatched", "cus_new", "-", "1"]
    assert processed[3:8] == ["customer.subscription.updated", "processed", "cus_test", "1", "1"]
    assert failed[4:8] == ["failed", "cus_test", "-", "1"]
    assert " ".join(failed[8:]) == "RuntimeError: bug in the deployed release"
    received = datetime.strptime(f"{failed[0]} {failed[1]}", "%Y-%m-%d %H:%M:%S")
    assert abs(received.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)


def test_events_filters_by_status_type_and_customer(host: Host) -> None:
    post_event(host.client, subscription_event(event_id="evt_mine"))
    post_event(host.client, subscription_event(event_id="evt_other", customer="cus_other"))
    # An unhandled type (the invoice.payment_failed payload, renamed): recorded, ignored.
    invoice = fixture_event(
        "events/stripe-ruby-mock__invoice.payment_failed.json",
        id="evt_inv",
        type="invoice.finalized",
    )
    post_event(host.client, invoice)

    def listed(*options: str) -> list[str]:
        result = billing(host, "events", *options)
        assert result.exit_code == 0
        return [line.split()[2] for line in result.output.splitlines()[1:]]

    assert listed("--status", "unmatched") == ["evt_other"]
    assert listed("--status", "unmatched", "--status", "ignored") == ["evt_inv", "evt_other"]
    assert listed("--type", "customer.subscription.updated") == ["evt_other", "evt_mine"]
    assert listed("--customer", "cus_test") == ["evt_mine"]
    assert listed("--type", "invoice.finalized", "--customer", "cus_test") == []


def test_events_limit_shows_the_newest_and_says_there_are_more(host: Host) -> None:
    for number in range(3):
        post_event(host.client, subscription_event(event_id=f"evt_{number}"))

    result = billing(host, "events", "--limit", "2")

    assert result.exit_code == 0
    *lines, note = result.output.splitlines()
    assert [line.split()[2] for line in lines[1:]] == ["evt_2", "evt_1"]
    assert note == "(the newest 2 shown; --limit 0 lists all)"
    assert len(billing(host, "events", "--limit", "0").output.splitlines()) == 4


def test_events_when_none_match(host: Host) -> None:
    result = billing(host, "events", "--status", "failed")

    assert (result.exit_code, result.output) == (0, "No stored events match.\n")
    assert billing(host, "events", "--status", "broken").exit_code == 2


# replay


def test_replay_applies_an_unmatched_event_once_the_customer_is_linked(
    host: Host, received: dict[str, list[dict[str, Any]]]
) -> None:
    host.add_user(2)
    event = subscription_event(event_id="evt_early", customer="cus_new", subscription="sub_new")
    post_event(host.client, event)
    assert event_rows(host) == {"evt_early": ("unmatched", None, 1)}
    link(host, 2, "cus_new")

    result = billing(host, "replay", "evt_early")

    assert result.exit_code == 0
    assert result.output == (
        "evt_early customer.subscription.updated: unmatched → processed: "
        "user 2, plan free → pro, status none → active\n"
        "Replayed 1 event: 1 done, 0 skipped (still unmatched), 0 still failed.\n"
    )
    user = host.user(2)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    assert user.stripe_subscription_id == "sub_new"
    assert event_rows(host) == {"evt_early": ("processed", "2", 2)}
    assert [call["user_id"] for call in received["plan_changed"]] == ["2"]

    again = billing(host, "replay", "evt_early")

    assert again.exit_code == 0
    assert again.output.splitlines()[0] == (
        "evt_early customer.subscription.updated: duplicate: already processed, nothing changed"
    )
    assert host.user(2).updated_at == user.updated_at
    assert event_rows(host)["evt_early"][0] == "processed"
    assert len(received["plan_changed"]) == 1


def test_replay_all_applies_failed_events_oldest_first(
    host: Host, failing_apply: Callable[[], None]
) -> None:
    created = subscription_event(
        "customer.subscription.created", status="trialing", event_id="evt_1", created=NOW - 60
    )
    updated = subscription_event(status="active", event_id="evt_2", created=NOW - 30)
    post_event(host.client, updated)  # Stripe does not keep order
    post_event(host.client, created)
    assert {row[0] for row in event_rows(host).values()} == {"failed"}
    failing_apply()  # the fix is deployed

    result = billing(host, "replay", "--all")

    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "evt_1 customer.subscription.created: failed → processed: "
        "user 1, plan free → pro, status none → trialing",
        "evt_2 customer.subscription.updated: failed → processed: user 1, status trialing → active",
        "Replayed 2 events: 2 done, 0 skipped (still unmatched), 0 still failed.",
    ]
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    (record,) = host.subscriptions()
    assert (record["id"], record["status"]) == ("sub_test", "active")
    assert as_utc(record["last_event_at"]).timestamp() == NOW - 30  # the newer event's time
    assert event_rows(host) == {"evt_1": ("processed", "1", 2), "evt_2": ("processed", "1", 2)}
    assert billing(host, "replay", "--all").output == (
        "No failed, unmatched or received events to replay.\n"
    )


def test_replay_exits_1_when_an_event_is_still_failed_and_skips_the_unmatched(
    host: Host, failing_apply: Callable[[], None]
) -> None:
    post_event(host.client, subscription_event(event_id="evt_bug"))
    post_event(host.client, subscription_event(event_id="evt_lost", customer="cus_nobody"))

    result = billing(host, "replay", "--all")

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "evt_bug customer.subscription.updated: still failed: "
        "RuntimeError: bug in the deployed release",
        "evt_lost customer.subscription.updated: still unmatched: "
        "no account is linked to customer cus_nobody (link it, then replay)",
        "Replayed 2 events: 0 done, 1 skipped (still unmatched), 1 still failed.",
    ]
    assert host.user(1).plan == "free"
    assert event_rows(host) == {"evt_bug": ("failed", None, 2), "evt_lost": ("unmatched", None, 2)}


def test_replay_that_can_only_skip_unmatched_events_exits_0_and_says_why(host: Host) -> None:
    post_event(host.client, subscription_event(event_id="evt_lost", customer="cus_nobody"))

    result = billing(host, "replay", "--all")

    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "evt_lost customer.subscription.updated: still unmatched: "
        "no account is linked to customer cus_nobody (link it, then replay)",
        "Replayed 1 event: 0 done, 1 skipped (still unmatched), 0 still failed.",
    ]
    assert event_rows(host) == {"evt_lost": ("unmatched", None, 2)}


def test_replay_of_an_unknown_id_exits_2_and_replays_nothing(host: Host) -> None:
    post_event(host.client, subscription_event(event_id="evt_lost", customer="cus_new"))
    link(host, 1, "cus_new")

    result = billing(host, "replay", "evt_lost", "evt_never_received")

    assert result.exit_code == 2
    assert result.output == "Error: No stored event evt_never_received; nothing was replayed.\n"
    assert "Traceback" not in result.output
    assert event_rows(host) == {"evt_lost": ("unmatched", None, 1)}
    assert host.user(1).plan == "free"


@pytest.mark.parametrize("args", [(), ("evt_1", "--all")])
def test_replay_needs_event_ids_or_all(host: Host, args: tuple[str, ...]) -> None:
    result = billing(host, "replay", *args)

    assert result.exit_code == 2
    assert "Give event ids or --all (not both)." in result.output


# sync


def test_sync_applies_the_subscription_stripe_has_now(
    synced: Host, stripe_api: responses.RequestsMock, received: dict[str, list[dict[str, Any]]]
) -> None:
    stripe_api.add(responses.GET, SUBSCRIPTIONS_URL, json=stripe_list(TRIALING))

    result = synced.app.test_cli_runner().invoke(args=["billing", "sync", "--no-features", "1"])

    assert result.exit_code == 0
    assert result.output == (
        f"user 1, customer {TRIALING['customer']}: subscription {TRIALING['id']} (trialing): "
        "plan free → pro, status none → trialing\n"
        "Synced 1 account.\n"
    )
    (call,) = stripe_api.calls
    assert parse_qs(urlsplit(call.request.url).query) == {
        "customer": [TRIALING["customer"]],
        "status": ["all"],
        "limit": ["100"],
    }
    assert call.request.headers["Authorization"] == f"Bearer {API_KEY}"
    user = synced.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "trialing")
    assert user.stripe_subscription_id == TRIALING["id"]
    period_end = TRIALING["items"]["data"][0]["current_period_end"]
    assert user.current_period_end.timestamp() == period_end
    assert user.cancel_at_period_end is False
    (record,) = synced.subscriptions()
    assert (record["id"], record["user_id"], record["status"]) == (TRIALING["id"], "1", "trialing")
    # The state was read now: older webhooks arriving later are stale.
    read_at = as_utc(record["last_event_at"]).timestamp()
    assert abs(read_at - datetime.now(UTC).timestamp()) < 60
    assert synced.events() == []  # a snapshot is not a delivered event
    (changed,) = received["plan_changed"]
    assert (changed["user_id"], changed["old_plan"], changed["new_plan"]) == ("1", "free", "pro")
    assert changed["event"].id == f"sync_{TRIALING['id']}"

    # (an older end is never stale: an ended subscription cannot be read live later)
    late = subscription_event(
        status="past_due",
        customer=TRIALING["customer"],
        subscription=TRIALING["id"],
        created=NOW - 3600,
    )
    post_event(synced.client, late)
    assert (synced.user(1).plan, synced.user(1).stripe_subscription_status) == ("pro", "trialing")
    assert event_rows(synced)[late["id"]][0] == "stale"


def test_sync_of_an_incomplete_subscription_stores_its_status_and_keeps_the_plan(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY})
    host.add_user(3, stripe_customer_id=INCOMPLETE["customer"])
    stripe_api.add(responses.GET, SUBSCRIPTIONS_URL, json=stripe_list(INCOMPLETE))

    result = billing(host, "sync", "--no-features", "3")

    assert result.exit_code == 0
    assert f"({INCOMPLETE['status']}): status none → incomplete" in result.output
    user = host.user(3)
    assert (user.plan, user.stripe_subscription_status) == ("free", "incomplete")
    assert user.stripe_subscription_id == INCOMPLETE["id"]


def test_sync_prefers_the_live_subscription_over_a_newer_canceled_one(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY})
    host.add_user(1, stripe_customer_id=ACTIVE["customer"])
    canceled = copy.deepcopy(TRIALING)
    canceled.update(
        id="sub_newer_canceled",
        customer=ACTIVE["customer"],
        status="canceled",
        created=ACTIVE["created"] + 86400,
    )
    assert canceled["created"] > ACTIVE["created"]
    stripe_api.add(responses.GET, SUBSCRIPTIONS_URL, json=stripe_list(canceled, ACTIVE))

    result = billing(host, "sync", "--no-features", "1")

    assert result.exit_code == 0
    assert f"subscription {ACTIVE['id']} (active): plan free → pro" in result.output
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    assert user.stripe_subscription_id == ACTIVE["id"]
    period_end = ACTIVE["items"]["data"][0]["current_period_end"]
    assert user.current_period_end.timestamp() == period_end


def test_sync_applies_the_end_of_the_accounts_subscription(
    make_host: Callable[..., Host], stripe_api: responses.RequestsMock
) -> None:
    host = make_host({"STRIPE_API_KEY": API_KEY})
    host.add_user(1, stripe_customer_id=ACTIVE["customer"])
    paying = subscription_event(
        "customer.subscription.created",
        customer=ACTIVE["customer"],
        subscription=ACTIVE["id"],
        created=NOW - 3600,
    )
    assert post_event(host.client, paying).status_code == 200
    assert (host.user(1).plan, host.user(1).stripe_subscription_id) == ("pro", ACTIVE["id"])
    ended = {**copy.deepcopy(ACTIVE), "status": "canceled"}
    failed_retry = {
        **copy.deepcopy(INCOMPLETE),
        "customer": ACTIVE["customer"],
        "status": "incomplete_expired",
    }
    assert failed_retry["created"] > ended["created"]
    stripe_api.add(responses.GET, SUBSCRIPTIONS_URL, json=stripe_list(failed_retry, ended))

    result = billing(host, "sync", "--no-features", "1")

    assert result.exit_code == 0
    who = f"user 1, customer {ACTIVE['customer']}"
    assert result.output.splitlines() == [
        # The failed retry never displaces the live subscription ...
        f"{who}: subscription {failed_retry['id']} (incomplete_expired): "
        "plan pro, status active (unchanged)",
        # ... whose end leaves nothing live: the newest ended one is shown, on free.
        f"{who}: subscription {ACTIVE['id']} (canceled): "
        "plan pro → free, status active → incomplete_expired",
        "Synced 1 account.",
    ]
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("free", "incomplete_expired")
    assert user.stripe_subscription_id == failed_retry["id"]
    assert {row["id"]: row["status"] for row in host.subscriptions()} == {
        ACTIVE["id"]: "canceled",
        failed_retry["id"]: "incomplete_expired",
    }


def test_sync_of_a_customer_without_subscriptions_changes_nothing(
    synced: Host, stripe_api: responses.RequestsMock, received: dict[str, list[dict[str, Any]]]
) -> None:
    stripe_api.add(responses.GET, SUBSCRIPTIONS_URL, json=stripe_list())

    result = billing(synced, "sync", "--no-features", "1")

    assert result.exit_code == 0
    assert result.output.splitlines()[0] == (
        f"user 1, customer {TRIALING['customer']}: no subscriptions at Stripe; nothing changed."
    )
    user = synced.user(1)
    assert (user.plan, user.stripe_subscription_status, user.updated_at) == ("free", None, None)
    assert received == {}


def test_sync_ignores_a_subscription_of_another_customer(
    synced: Host, stripe_api: responses.RequestsMock
) -> None:
    synced.add_user(2, stripe_customer_id=INCOMPLETE["customer"])
    stripe_api.add(responses.GET, SUBSCRIPTIONS_URL, json=stripe_list(INCOMPLETE))

    result = billing(synced, "sync", "--no-features", "1")

    assert result.exit_code == 0
    assert "no subscriptions at Stripe; nothing changed." in result.output
    assert synced.user(1).stripe_subscription_id is None
    assert synced.user(2).stripe_subscription_id is None


def test_sync_all_applies_each_subscription_to_its_customers_account(
    synced: Host, stripe_api: responses.RequestsMock
) -> None:
    synced.add_user(2)  # never went to Checkout
    synced.add_user(3, stripe_customer_id=INCOMPLETE["customer"])
    elsewhere = {**copy.deepcopy(ACTIVE), "id": "sub_elsewhere", "customer": "cus_elsewhere"}
    stripe_api.add(
        responses.GET, SUBSCRIPTIONS_URL, json=stripe_list(TRIALING, INCOMPLETE, elsewhere)
    )

    result = billing(synced, "sync", "--all")

    assert result.exit_code == 0, result.output
    assert printed(result) == [
        f"user 1: subscription {TRIALING['id']} (trialing): "
        "plan free → pro, status none → trialing",
        f"user 3: subscription {INCOMPLETE['id']} (incomplete): status none → incomplete",
        "Synced 3 subscriptions: 2 accounts changed, 0 unchanged, "
        "1 without an account here, 0 failed.",
    ]
    assert "Syncing subscriptions" in result.output  # the progress bar's label
    (call,) = stripe_api.calls  # one page lists every subscription of the Stripe account
    assert parse_qs(urlsplit(call.request.url).query) == {"status": ["all"], "limit": ["100"]}
    assert synced.user(1).plan == "pro"
    assert (synced.user(2).stripe_subscription_status, synced.user(2).updated_at) == (None, None)
    assert synced.user(3).stripe_subscription_status == "incomplete"
    assert {row["id"]: row["user_id"] for row in synced.subscriptions()} == {
        TRIALING["id"]: "1",
        INCOMPLETE["id"]: "3",
    }


def test_sync_reports_a_stripe_failure_without_the_key(
    synced: Host, stripe_api: responses.RequestsMock
) -> None:
    synced.add_user(2, stripe_customer_id="cus_deleted_at_stripe")
    missing = {"type": "invalid_request_error", "message": f"No such customer ({API_KEY})"}
    stripe_api.add(
        responses.GET,
        SUBSCRIPTIONS_URL,
        status=400,
        headers={"Request-Id": "req_missing"},
        json={"error": missing},
        match=[for_customer("cus_deleted_at_stripe")],
    )
    stripe_api.add(
        responses.GET,
        SUBSCRIPTIONS_URL,
        json=stripe_list(TRIALING),
        match=[for_customer(TRIALING["customer"])],
    )

    result = billing(synced, "sync", "--no-features", "1", "2")

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"user 1, customer {TRIALING['customer']}: subscription {TRIALING['id']} (trialing): "
        "plan free → pro, status none → trialing",
        "user 2, customer cus_deleted_at_stripe: "
        "Stripe could not list subscriptions (request req_missing, HTTP 400)",
        "Synced 2 accounts; 1 failed.",
    ]
    assert API_KEY not in result.output
    assert "Traceback" not in result.output
    assert synced.user(1).plan == "pro"
    assert synced.user(2).stripe_subscription_status is None


def test_sync_all_reports_a_failed_page_without_the_key(
    synced: Host, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.add(
        responses.GET,
        SUBSCRIPTIONS_URL,
        status=500,
        headers={"Request-Id": "req_down"},
        json={"error": {"type": "api_error", "message": f"Something broke ({API_KEY})"}},
    )

    result = billing(synced, "sync", "--all")

    assert result.exit_code == 1
    assert printed(result) == [
        "Error: Stripe could not list subscriptions (request req_down, HTTP 500); "
        "resume with: flask billing sync --all"
    ]
    assert API_KEY not in result.output
    assert "Traceback" not in result.output
    assert synced.user(1).plan == "free"
    assert synced.subscriptions() == []


@pytest.mark.parametrize("args", [("1", "2"), ("--all",)], ids=["users", "all"])
def test_sync_stops_when_stripe_refuses_the_key(
    synced: Host, stripe_api: responses.RequestsMock, args: tuple[str, ...]
) -> None:
    synced.add_user(2, stripe_customer_id="cus_two")
    stripe_api.add(
        responses.GET,
        SUBSCRIPTIONS_URL,
        status=401,
        headers={"Request-Id": "req_key"},
        json={"error": {"type": "invalid_request_error", "message": f"Invalid key: {API_KEY}"}},
    )

    result = billing(synced, "sync", "--no-features", *args)

    assert result.exit_code == 1
    assert printed(result) == [
        "Error: Stripe could not list subscriptions (request req_key, HTTP 401): "
        "Stripe refused the API key."
    ]
    assert len(stripe_api.calls) == 1  # not one more call with a refused key
    assert API_KEY not in result.output
    assert synced.subscriptions() == []


def test_sync_without_an_api_key_exits_1(
    make_host: Callable[..., Host],
    stripe_api: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    host = make_host()
    host.add_user(1, stripe_customer_id="cus_test")

    result = billing(host, "sync", "--no-features", "1")

    assert result.exit_code == 1
    assert result.output == (
        "Error: STRIPE_API_KEY is not set: sync reads subscriptions from Stripe's API.\n"
    )
    assert len(stripe_api.calls) == 0


def test_sync_of_an_unknown_user_exits_2(synced: Host, stripe_api: responses.RequestsMock) -> None:
    result = billing(synced, "sync", "--no-features", "1", "404")

    assert result.exit_code == 2
    assert result.output == "Error: No user 404; nothing was synced.\n"
    assert len(stripe_api.calls) == 0
    assert synced.user(1).plan == "free"


def test_sync_of_a_user_without_customer_says_so(
    synced: Host, stripe_api: responses.RequestsMock
) -> None:
    synced.add_user(2)

    result = billing(synced, "sync", "--no-features", "2")

    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "user 2: no Stripe customer yet; nothing to sync."
    assert len(stripe_api.calls) == 0


def test_sync_all_works_with_a_store_that_has_only_the_protocol(
    stripe_api: responses.RequestsMock,
) -> None:
    class PlainStore:
        """A host's own UserStore: the protocol only, no accounts_with_customer()."""

        def __init__(self, inner: InMemoryUserStore) -> None:
            self.get = inner.get
            self.get_by_customer_id = inner.get_by_customer_id
            self.set_customer_id = inner.set_customer_id
            self.apply = inner.apply

    inner = InMemoryUserStore([BillingAccount(user_id="1", stripe_customer_id="cus_1")])
    app = Flask(__name__)
    app.config["STRIPE_API_KEY"] = API_KEY
    StripeBilling(app, user_store=PlainStore(inner), event_log=inner)
    theirs = {**copy.deepcopy(ACTIVE), "customer": "cus_1"}
    stripe_api.add(responses.GET, SUBSCRIPTIONS_URL, json=stripe_list(theirs))

    result = app.test_cli_runner().invoke(args=["billing", "sync", "--all"])

    assert result.exit_code == 0, result.output
    assert printed(result)[-1] == (
        "Synced 1 subscription: 1 account changed, 0 unchanged, "
        "0 without an account here, 0 failed."
    )
    account = inner.get("1")
    assert account is not None
    assert (account.plan, account.subscription_status) == ("pro", "active")
    assert [(r.id, r.user_id, r.status) for r in inner.subscriptions] == [
        (ACTIVE["id"], "1", "active")
    ]


# prune


def test_prune_deletes_only_old_events_that_are_done_with(
    host: Host, failing_apply: Callable[[], None]
) -> None:
    post_event(host.client, subscription_event(event_id="evt_failed"))
    failing_apply()
    post_event(host.client, subscription_event(event_id="evt_processed", created=NOW))
    post_event(host.client, subscription_event(event_id="evt_stale", created=NOW - 60))
    # An unhandled type (the invoice.payment_failed payload, renamed): recorded, ignored.
    invoice = fixture_event(
        "events/stripe-ruby-mock__invoice.payment_failed.json",
        id="evt_inv",
        type="invoice.finalized",
    )
    post_event(host.client, invoice)
    post_event(host.client, subscription_event(event_id="evt_unmatched", customer="cus_new"))
    post_event(host.client, subscription_event(event_id="evt_recent", created=NOW + 1))
    old = ("evt_failed", "evt_processed", "evt_stale", "evt_inv", "evt_unmatched")
    age_events(host, 40, *old)
    assert [event_rows(host)[event_id][0] for event_id in old] == [
        "failed",
        "processed",
        "stale",
        "ignored",
        "unmatched",
    ]

    result = billing(host, "prune", "--older-than", "30", "--yes")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "Deleted 3 events."
    assert "Deleting 0 failed events received before " in result.output
    assert "(90 days)" in result.output  # the unresolved ones are kept longer
    assert set(event_rows(host)) == {"evt_failed", "evt_unmatched", "evt_recent"}
    again = billing(host, "prune", "--older-than", "30", "--yes")
    assert again.output.splitlines()[-1] == "Nothing to delete."


def test_prune_deletes_unresolved_events_after_their_own_days_not_never(host: Host) -> None:
    post_event(host.client, subscription_event(event_id="evt_unmatched", customer="cus_new"))
    post_event(host.client, subscription_event(event_id="evt_young", customer="cus_newer"))
    age_events(host, 100, "evt_unmatched")
    age_events(host, 40, "evt_young")

    result = billing(host, "prune", "--older-than", "30", "--yes")

    assert result.exit_code == 0, result.output
    assert "Deleting 1 unmatched event received before " in result.output
    assert set(event_rows(host)) == {"evt_young"}


def test_prune_keeps_a_status_as_long_as_asked(host: Host) -> None:
    post_event(host.client, subscription_event(event_id="evt_unmatched", customer="cus_new"))
    post_event(host.client, subscription_event(event_id="evt_processed"))
    age_events(host, 100, "evt_unmatched", "evt_processed")

    result = billing(
        host,
        "prune",
        "--older-than",
        "30",
        "--keep",
        "unmatched=365",
        "--keep",
        "processed=200",
        "--yes",
    )

    assert result.exit_code == 0, result.output
    assert "(365 days)" in result.output and "(200 days)" in result.output
    assert result.output.splitlines()[-1] == "Nothing to delete."
    assert set(event_rows(host)) == {"evt_unmatched", "evt_processed"}


def test_prune_dry_run_says_what_it_would_delete_and_deletes_nothing(host: Host) -> None:
    post_event(host.client, subscription_event(event_id="evt_processed"))
    post_event(host.client, subscription_event(event_id="evt_unmatched", customer="cus_new"))
    age_events(host, 100, "evt_processed", "evt_unmatched")

    result = billing(host, "prune", "--older-than", "30", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "Would delete 1 processed event received before " in result.output
    assert "Would delete 1 unmatched event received before " in result.output
    assert "Would delete 0 failed events received before " in result.output
    assert result.output.splitlines()[-1] == "Nothing was deleted."
    assert set(event_rows(host)) == {"evt_processed", "evt_unmatched"}


@pytest.mark.parametrize("keep", ["unmatched", "gone=3", "failed=0", "failed=soon"])
def test_prune_refuses_a_keep_that_is_not_status_and_days(host: Host, keep: str) -> None:
    result = billing(host, "prune", "--older-than", "30", "--keep", keep, "--yes")

    assert result.exit_code == 2
    assert "give STATUS=DAYS" in result.output


def test_prune_asks_before_deleting(host: Host) -> None:
    post_event(host.client, subscription_event(event_id="evt_old"))
    age_events(host, 10, "evt_old")

    declined = billing(host, "prune", "--older-than", "7", input="n\n")

    assert declined.exit_code == 1
    assert "Delete 1 event?" in declined.output
    assert declined.output.endswith("Aborted!\n")
    assert set(event_rows(host)) == {"evt_old"}

    accepted = billing(host, "prune", "--older-than", "7", input="y\n")

    assert accepted.exit_code == 0
    assert accepted.output.splitlines()[-1] == "Deleted 1 event."
    assert event_rows(host) == {}


@pytest.mark.parametrize("args", [(), ("--older-than", "0"), ("--older-than", "a week")])
def test_prune_needs_a_positive_number_of_days(host: Host, args: tuple[str, ...]) -> None:
    post_event(host.client, subscription_event(event_id="evt_kept"))

    result = billing(host, "prune", "--yes", *args)

    assert result.exit_code == 2
    assert "--older-than" in result.output
    assert set(event_rows(host)) == {"evt_kept"}


def test_commands_report_a_database_outage_without_a_traceback(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    def database_down(**filters: Any) -> Any:
        raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(host.billing.user_store, "list_events", database_down)

    for args in (("events",), ("replay", "--all")):
        result = billing(host, *args)
        assert result.exit_code == 1
        assert result.output == "Error: The database is unavailable: connection refused\n"
