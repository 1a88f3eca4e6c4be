"""The operations page (``billing.admin_blueprint``): the event log, an event, an account,
and the replay / link / sync actions, behind the host's permission check and CSRF rules."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
import sqlalchemy as sa
from conftest import Host
from flask import Flask, redirect
from flask.testing import FlaskClient
from support import NOW, envelope, load, post_event, subscription_event

from flask_stripe_billing import (
    AccountSection,
    BillingAccount,
    EventRecord,
    InMemoryUserStore,
    StripeBilling,
)

API_KEY = "sk_test_51AdminPageKey0000000000000"
SUBSCRIPTIONS_URL = "https://api.stripe.com/v1/subscriptions"
ENTITLEMENTS_URL = "https://api.stripe.com/v1/entitlements/active_entitlements"
TRIALING = load("api-objects/pay-rails-vcr__2026-03-25.dahlia__subscription.trialing.json")
PREFIX = "/billing/admin"
#: What a browser sends with a form posted from the site's own page.
SAME_SITE = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def allowed() -> dict[str, bool]:
    """Whether the host's permission check lets the caller in (flip it in a test)."""
    return {"admin": True}


@pytest.fixture
def admin(make_host: Callable[..., Host], allowed: dict[str, bool]) -> Host:
    """A host with the operations page at /billing/admin; user 1 has customer cus_test,
    user 2 none."""
    made = make_host({"SECRET_KEY": "admin-test", "STRIPE_API_KEY": API_KEY})
    made.app.register_blueprint(made.billing.admin_blueprint(lambda: allowed["admin"]))
    made.add_user(1, stripe_customer_id="cus_test")
    made.add_user(2)
    return made


@pytest.fixture
def client(admin: Host) -> FlaskClient:
    """One browser: its cookies (the session, its flashed messages) kept between requests."""
    return admin.app.test_client()


def event_ids(html: str) -> list[str]:
    """The events a page lists (links to their detail), in its order."""
    return re.findall(rf'href="{PREFIX}/events/(evt_\w+)"', html)


def event_rows(host: Host) -> dict[str, tuple[str, str | None, int]]:
    """Each stored event's status, user and attempts, by id."""
    return {row["id"]: (row["status"], row["user_id"], row["attempts"]) for row in host.events()}


def flashed(client: FlaskClient, location: str) -> tuple[str, str]:
    """The page a redirect goes to: its message and its error line."""
    html = client.get(location).get_data(as_text=True)
    message = re.search(r'<p id="message"[^>]*>(.*?)</p>', html, re.S)
    error = re.search(r'<p id="error"[^>]*>(.*?)</p>', html, re.S)
    assert message and error, html
    return message.group(1).strip(), error.group(1).strip()


@pytest.fixture
def failing_apply(admin: Host, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """A handler bug while it is deployed: every write to an account raises. Call to fix."""
    real_write = admin.billing.user_store.write_outcome

    def buggy_write(**outcome: Any) -> BillingAccount | None:
        if outcome["changes"] or outcome["records"]:
            raise RuntimeError("bug in the deployed release")
        return real_write(**outcome)

    monkeypatch.setattr(admin.billing.user_store, "write_outcome", buggy_write)
    yield monkeypatch.undo


# Registration and permission


def test_the_page_refuses_to_register_without_a_permission_check(
    make_host: Callable[..., Host],
) -> None:
    host = make_host()

    with pytest.raises(RuntimeError, match=r"needs a permission check.*STRIPE_BILLING_ADMIN"):
        host.app.register_blueprint(host.billing.admin_blueprint())

    assert not [rule for rule in host.app.url_map.iter_rules() if rule.rule.startswith(PREFIX)]
    assert host.client.get(f"{PREFIX}/").status_code == 404


def test_the_page_refuses_an_app_without_the_extension() -> None:
    billing = StripeBilling(user_store=InMemoryUserStore())

    with pytest.raises(RuntimeError, match=r"billing.init_app\(app\)"):
        Flask(__name__).register_blueprint(billing.admin_blueprint(lambda: True))


def test_the_setting_may_hold_the_permission_check(make_host: Callable[..., Host]) -> None:
    calls = []
    host = make_host({"STRIPE_BILLING_ADMIN": lambda: calls.append("checked") or False})
    host.app.register_blueprint(host.billing.admin_blueprint(), url_prefix="/ops")

    response = host.client.get("/ops/")

    assert response.status_code == 403
    assert "You may not see this page." in response.get_data(as_text=True)
    assert calls == ["checked"]


def test_a_check_may_answer_with_its_own_response(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.app.register_blueprint(host.billing.admin_blueprint(lambda: redirect("/login")))

    response = host.client.get(f"{PREFIX}/accounts/1")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login"


def test_a_setting_that_is_not_callable_is_refused(make_host: Callable[..., Host]) -> None:
    host = make_host({"STRIPE_BILLING_ADMIN": "yes"})

    with pytest.raises(RuntimeError, match="needs a permission check"):
        host.app.register_blueprint(host.billing.admin_blueprint())


def test_every_page_and_action_is_403_without_permission(
    admin: Host, client: FlaskClient, allowed: dict[str, bool]
) -> None:
    post_event(client, subscription_event(customer="cus_new", event_id="evt_waiting"))
    allowed["admin"] = False
    client = client
    pages = ["/", "/events/evt_waiting", "/accounts/1", "/accounts?q=1"]
    actions = [
        ("/events/evt_waiting/replay", {}),
        ("/replay-waiting", {}),
        ("/link", {"user_id": "2", "customer_id": "cus_new"}),
        ("/accounts/1/sync", {}),
    ]

    for path in pages:
        response = client.get(PREFIX + path)
        assert response.status_code == 403, path
        assert response.mimetype == "text/html"
        assert "evt_waiting" not in response.get_data(as_text=True)
    for path, form in actions:
        assert client.post(PREFIX + path, data=form, headers=SAME_SITE).status_code == 403, path

    assert event_rows(admin) == {"evt_waiting": ("unmatched", None, 1)}
    assert admin.user(2).stripe_customer_id is None


# The event log


def test_the_event_log_lists_events_newest_first_with_their_status(
    admin: Host, client: FlaskClient
) -> None:
    post_event(client, subscription_event(event_id="evt_first"))
    post_event(client, subscription_event(customer="cus_new", event_id="evt_second"))

    response = client.get(f"{PREFIX}/")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<h1>Event log</h1>" in html
    assert event_ids(html) == ["evt_second", "evt_first"]
    assert '<span class="status status-unmatched">unmatched</span>' in html
    assert '<span class="status status-processed">processed</span>' in html
    assert f'href="{PREFIX}/accounts/1">1</a>' in html  # evt_first was applied to user 1


def test_the_event_log_filters_by_status_type_customer_and_time(
    admin: Host, client: FlaskClient
) -> None:
    post_event(client, subscription_event(event_id="evt_processed"))
    post_event(client, subscription_event(customer="cus_new", event_id="evt_unmatched"))
    post_event(
        client,
        subscription_event("customer.subscription.created", event_id="evt_created"),
    )

    def listed(**args: str) -> list[str]:
        response = client.get(f"{PREFIX}/", query_string=args)
        assert response.status_code == 200
        return event_ids(response.get_data(as_text=True))

    today = datetime.now(UTC).date()
    assert listed(status="unmatched") == ["evt_unmatched"]
    assert listed(type="customer.subscription.created") == ["evt_created"]
    assert listed(customer="cus_test") == ["evt_created", "evt_processed"]
    assert listed(
        customer="cus_test", status="processed", type="customer.subscription.updated"
    ) == ["evt_processed"]
    assert listed(since=today.isoformat()) == ["evt_created", "evt_unmatched", "evt_processed"]
    assert listed(until=today.isoformat()) == []
    assert listed(since=(today + timedelta(days=1)).isoformat()) == []
    assert listed(status="failed") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"status": "lost"}, "No event status &#39;lost&#39;"),
        ({"since": "yesterday"}, "since: &#39;yesterday&#39; is not a date"),
        ({"after": "nonsense"}, "This page link is not valid"),
        ({"limit": "0"}, "limit: give a whole number from 1 to 500"),
    ],
)
def test_a_bad_filter_is_a_400_page(
    admin: Host, client: FlaskClient, args: dict[str, str], message: str
) -> None:
    response = client.get(f"{PREFIX}/", query_string=args)

    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert message in response.get_data(as_text=True)


def record_events(host: Host, count: int, start: datetime) -> None:
    """Store ``count`` events as the webhook would, received a second apart from ``start``."""
    table = host.db.metadata.tables["stripe_billing_events"]
    payload = '{"id": "evt"}'
    rows = [
        {
            "id": f"evt_bulk_{number:04d}",
            "type": "customer.subscription.updated",
            "created": start,
            "customer_id": "cus_test",
            "status": "processed",
            "payload": payload,
            "attempts": 1,
            # Pairs of events share a second: ties are ordered by id.
            "received_at": start + timedelta(seconds=number // 2),
        }
        for number in range(count)
    ]
    with host.app.app_context():
        host.db.session.execute(table.insert(), rows)
        host.db.session.commit()


def test_keyset_paging_walks_500_events_in_stable_pages_without_offset(
    admin: Host, client: FlaskClient
) -> None:
    record_events(admin, 500, datetime(2030, 1, 1, tzinfo=UTC))
    statements: list[tuple[str, Any]] = []
    with admin.app.app_context():
        engine = admin.db.engine

    def seen_sql(*args: Any) -> None:
        statements.append((args[2], args[3]))

    sa.event.listen(engine, "before_cursor_execute", seen_sql)
    pages: list[list[str]] = []
    links: list[str] = []
    location = f"{PREFIX}/?limit=60"
    try:
        while location:
            html = client.get(location).get_data(as_text=True)
            pages.append(event_ids(html))
            found = re.search(r'id="next-page" href="([^"]+)"', html)
            location = found.group(1).replace("&amp;", "&") if found else ""
            if location:
                links.append(location)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen_sql)

    seen = [event_id for page in pages for event_id in page]
    assert [len(page) for page in pages] == [60] * 8 + [20]
    assert seen == [f"evt_bulk_{number:04d}" for number in reversed(range(500))]
    # Each page's SELECT starts after the cursor; nothing is skipped by an offset
    # (SQLAlchemy writes SQLite's LIMIT as "LIMIT ? OFFSET ?", the offset always 0).
    # (the event log's pages only: PostgreSQL's reflection for the start-up schema check
    # orders its catalogue queries too)
    pages_read = [
        (sql, params)
        for sql, params in statements
        if "ORDER BY" in sql and "FROM stripe_billing_events" in sql
    ]
    assert len(pages_read) == 9
    assert all(params[-1] == 0 for sql, params in pages_read if "OFFSET" in sql)
    assert sum("received_at < " in sql for sql, _ in pages_read) == 8
    # New events arrive on top; a page's link still shows the same events.
    third = pages[2]
    record_events_after = datetime(2031, 1, 1, tzinfo=UTC)
    with admin.app.app_context():
        table = admin.db.metadata.tables["stripe_billing_events"]
        admin.db.session.execute(
            table.insert(),
            [
                {
                    "id": f"evt_new_{n}",
                    "type": "invoice.paid",
                    "created": record_events_after,
                    "status": "processed",
                    "payload": "{}",
                    "attempts": 1,
                    "received_at": record_events_after,
                }
                for n in range(5)
            ],
        )
        admin.db.session.commit()
    assert event_ids(client.get(links[1]).get_data(as_text=True)) == third
    first = client.get(links[1]).get_data(as_text=True)
    assert 'id="first-page"' in first
    assert event_ids(client.get(f"{PREFIX}/?limit=60").get_data(as_text=True))[:5] == [
        f"evt_new_{n}" for n in reversed(range(5))
    ]


def test_filters_follow_the_pages(admin: Host, client: FlaskClient) -> None:
    record_events(admin, 7, datetime(2030, 1, 1, tzinfo=UTC))
    post_event(client, subscription_event(customer="cus_new", event_id="evt_other"))

    html = client.get(f"{PREFIX}/?customer=cus_test&limit=5").get_data(as_text=True)
    found = re.search(r'id="next-page" href="([^"]+)"', html)
    assert found is not None
    second = client.get(found.group(1).replace("&amp;", "&")).get_data(as_text=True)

    assert event_ids(html) == [f"evt_bulk_{n:04d}" for n in (6, 5, 4, 3, 2)]
    assert event_ids(second) == ["evt_bulk_0001", "evt_bulk_0000"]
    assert 'id="next-page"' not in second


class LogWithoutPaging:
    """An event log keeping only the ``EventLog`` protocol (a custom store's, say)."""

    def __init__(self, store: InMemoryUserStore) -> None:
        self.store = store

    def transaction(self) -> Any:
        return self.store.transaction()

    def record_event(self, *args: Any) -> EventRecord:
        return self.store.record_event(*args)

    def finish_event(self, *args: Any, **kwargs: Any) -> None:
        self.store.finish_event(*args, **kwargs)

    def get_event(self, event_id: str) -> EventRecord | None:
        return self.store.get_event(event_id)

    def list_events(self, **kwargs: Any) -> list[EventRecord]:
        return self.store.list_events(**kwargs)

    def delete_events(self, **kwargs: Any) -> int:
        return self.store.delete_events(**kwargs)

    def count_events(self, **kwargs: Any) -> int:
        return self.store.count_events(**kwargs)


def test_a_log_without_paging_shows_its_newest_events_and_says_so() -> None:
    store = InMemoryUserStore([BillingAccount(user_id="1", stripe_customer_id="cus_test")])
    app = Flask(__name__)
    app.config.update(STRIPE_WEBHOOK_SECRET="whsec_test_secret", SECRET_KEY="x")
    billing = StripeBilling(app, user_store=store, event_log=LogWithoutPaging(store))
    app.register_blueprint(billing.admin_blueprint(lambda: True))
    for number in range(3):
        post_event(app.test_client(), subscription_event(event_id=f"evt_{number}"))

    html = app.test_client().get(f"{PREFIX}/?limit=2").get_data(as_text=True)
    by_time = app.test_client().get(f"{PREFIX}/?since=2030-01-01")

    assert event_ids(html) == ["evt_2", "evt_1"]
    assert "offers no paging (EventPaging)" in html
    assert 'id="next-page"' not in html
    assert by_time.status_code == 400
    assert "offers no paging" in by_time.get_data(as_text=True)


# One event


def test_an_event_shows_its_payload_with_secrets_and_card_numbers_masked(
    admin: Host, client: FlaskClient
) -> None:
    event = subscription_event(customer="cus_new", event_id="evt_secrets")
    event["data"]["object"]["metadata"] = {
        "note": "card 4242 4242 4242 4242 from support",
        "client_secret": "pi_3Mt_secret_abcdef",
        "key": "sk_live_51AbcdefGhijkl",
    }
    event["data"]["object"]["latest_invoice"] = "pi_3Abc_secret_zyxwvu"
    post_event(client, event)

    response = client.get(f"{PREFIX}/events/evt_secrets")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for secret in ("4242 4242 4242 4242", "pi_3Mt_secret", "sk_live_51", "zyxwvu"):
        assert secret not in html
    assert "&#34;note&#34;: &#34;card [redacted] from support&#34;" in html
    assert "&#34;client_secret&#34;: &#34;[redacted]&#34;" in html
    assert "&#34;customer&#34;: &#34;cus_new&#34;" in html  # the rest as stored, indented
    assert '\n  "id": "evt_secrets"'.replace('"', "&#34;") in html
    assert '<span class="status status-unmatched">unmatched</span>' in html
    assert "<dt>Attempts</dt><dd>1</dd>" in html
    assert "cus_new (no account)" in html
    assert 'id="replay"' in html and 'id="link"' in html


def test_a_failed_event_shows_its_error_and_attempts(
    admin: Host, client: FlaskClient, failing_apply: Any
) -> None:
    post_event(client, subscription_event(event_id="evt_bug"))
    post_event(client, subscription_event(event_id="evt_bug"))  # Stripe retries

    html = client.get(f"{PREFIX}/events/evt_bug").get_data(as_text=True)

    assert '<dd id="event-error">RuntimeError: bug in the deployed release</dd>' in html
    assert "<dt>Attempts</dt><dd>2</dd>" in html
    assert 'id="link"' not in html  # its customer has an account


def test_an_unknown_event_is_a_404_page(admin: Host, client: FlaskClient) -> None:
    response = client.get(f"{PREFIX}/events/evt_nowhere")

    assert response.status_code == 404
    assert "No stored event evt_nowhere" in response.get_data(as_text=True)


# One account


def test_an_account_shows_its_records_entitlements_and_timeline(
    admin: Host, client: FlaskClient
) -> None:
    post_event(client, subscription_event(event_id="evt_sub", subscription="sub_one"))
    summary = envelope(
        "entitlements.active_entitlement_summary.updated",
        {
            "object": "entitlements.active_entitlement_summary",
            "customer": "cus_test",
            "livemode": False,
            "entitlements": {
                "object": "list",
                "data": [{"id": "ent_1", "lookup_key": "export", "feature": "feat_1"}],
                "has_more": False,
                "url": "/v1/customer/cus_test/entitlements",
            },
        },
        event_id="evt_summary",
    )
    post_event(client, summary)

    response = client.get(f"{PREFIX}/accounts/1")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<h1>User 1 · user1@example.com</h1>" in html
    assert '<dd id="plan">pro</dd>' in html
    assert '<table id="subscriptions">' in html and "<td>sub_one</td>" in html
    assert '<table id="entitlements">' in html and "<td>export</td>" in html
    assert event_ids(html.split('<table id="timeline">')[1]) == ["evt_summary", "evt_sub"]


def test_an_account_page_shows_the_sections_a_host_adds(make_host: Callable[..., Host]) -> None:
    host = make_host({"SECRET_KEY": "x"})
    host.add_user(1, stripe_customer_id="cus_test")

    def purchases(state: Any, account: BillingAccount) -> AccountSection:
        return AccountSection("Purchases", [BillingAccount(user_id=account.user_id, plan="x")])

    host.app.register_blueprint(
        host.billing.admin_blueprint(lambda: True, account_sections=[purchases])
    )

    html = host.client.get(f"{PREFIX}/accounts/1").get_data(as_text=True)

    assert "<h2>Purchases</h2>" in html
    assert "<th>plan</th>" in html  # after the library's own sections


def test_find_account_by_user_or_customer_id(admin: Host, client: FlaskClient) -> None:
    by_user = client.get(f"{PREFIX}/accounts?q=2")
    by_customer = client.get(f"{PREFIX}/accounts?q=cus_test")
    nobody = client.get(f"{PREFIX}/accounts?q=cus_nobody")

    assert by_user.headers["Location"] == f"{PREFIX}/accounts/2"
    assert by_customer.headers["Location"] == f"{PREFIX}/accounts/1"
    assert nobody.headers["Location"] == f"{PREFIX}/?customer=cus_nobody"
    assert flashed(client, nobody.headers["Location"])[1] == (
        "No account has user id or customer &#39;cus_nobody&#39;."
    )


def test_an_unknown_account_is_a_404_page(admin: Host, client: FlaskClient) -> None:
    response = client.get(f"{PREFIX}/accounts/99")

    assert response.status_code == 404
    assert "No user 99" in response.get_data(as_text=True)


# The actions


def test_replaying_a_failed_event_applies_it(
    admin: Host, client: FlaskClient, failing_apply: Any
) -> None:
    post_event(client, subscription_event(event_id="evt_bug"))
    assert event_rows(admin) == {"evt_bug": ("failed", None, 1)}
    failing_apply()  # the fix is deployed

    response = client.post(f"{PREFIX}/events/evt_bug/replay", headers=SAME_SITE)

    assert response.status_code == 303
    assert response.headers["Location"] == f"{PREFIX}/events/evt_bug"
    assert event_rows(admin) == {"evt_bug": ("processed", "1", 2)}  # a replay is an attempt
    assert admin.user(1).plan == "pro"
    assert flashed(client, response.headers["Location"]) == (
        "Replayed evt_bug: processed.",
        "",
    )


def test_replaying_an_event_still_unmatched_says_why(admin: Host, client: FlaskClient) -> None:
    post_event(client, subscription_event(customer="cus_new", event_id="evt_lost"))

    response = client.post(f"{PREFIX}/events/evt_lost/replay", headers=SAME_SITE)

    message, _ = flashed(client, response.headers["Location"])
    assert message.startswith("Replayed evt_lost: unmatched (no account is linked to customer")
    assert event_rows(admin) == {"evt_lost": ("unmatched", None, 2)}


def test_replaying_an_unknown_event_is_a_404(admin: Host, client: FlaskClient) -> None:
    response = client.post(f"{PREFIX}/events/evt_nowhere/replay", headers=SAME_SITE)

    assert response.status_code == 404


def test_replay_all_waiting_replays_failed_events_oldest_first(
    admin: Host, client: FlaskClient, failing_apply: Any
) -> None:
    created = envelope_time = NOW - 60
    post_event(
        client,
        subscription_event(
            "customer.subscription.created",
            status="trialing",
            event_id="evt_1",
            created=created,
        ),
    )
    post_event(client, subscription_event(event_id="evt_2", created=envelope_time + 30))
    failing_apply()

    response = client.post(
        f"{PREFIX}/replay-waiting", data={"next": f"{PREFIX}/?status=failed"}, headers=SAME_SITE
    )

    assert response.headers["Location"] == f"{PREFIX}/?status=failed"
    assert event_rows(admin) == {"evt_1": ("processed", "1", 2), "evt_2": ("processed", "1", 2)}
    assert admin.user(1).stripe_subscription_status == "active"  # evt_2 applied last
    assert flashed(client, response.headers["Location"])[0] == ("Replayed 2 events: 2 processed.")


def test_replay_all_with_nothing_waiting_says_so(admin: Host, client: FlaskClient) -> None:
    response = client.post(
        f"{PREFIX}/replay-waiting", data={"next": "https://evil.example/"}, headers=SAME_SITE
    )

    assert response.headers["Location"] == f"{PREFIX}/"  # never off the site
    assert flashed(client, response.headers["Location"])[0] == (
        "No failed, unmatched or received events to replay."
    )


def test_linking_an_unmatched_customer_links_and_applies_its_events(
    admin: Host, client: FlaskClient
) -> None:
    post_event(client, subscription_event(customer="cus_new", event_id="evt_lost", created=NOW))
    assert admin.user(2).plan == "free"

    response = client.post(
        f"{PREFIX}/link", data={"user_id": "2", "customer_id": "cus_new"}, headers=SAME_SITE
    )

    assert response.status_code == 303
    assert response.headers["Location"] == f"{PREFIX}/accounts/2"
    user = admin.user(2)
    assert (user.stripe_customer_id, user.plan) == ("cus_new", "pro")
    assert event_rows(admin) == {"evt_lost": ("processed", "2", 2)}
    assert flashed(client, response.headers["Location"])[0] == (
        "Linked user 2 to customer cus_new (was none). "
        "Replayed its waiting events: 1 event: 1 processed."
    )


def test_linking_a_customer_of_another_account_is_refused(admin: Host, client: FlaskClient) -> None:
    response = client.post(
        f"{PREFIX}/link", data={"user_id": "2", "customer_id": "cus_test"}, headers=SAME_SITE
    )

    assert response.status_code == 409
    assert "Customer cus_test is linked to user 1; nothing was linked." in response.get_data(
        as_text=True
    )
    assert admin.user(2).stripe_customer_id is None


@pytest.mark.parametrize(
    ("form", "status"),
    [({"user_id": "99", "customer_id": "cus_new"}, 404), ({"user_id": "2"}, 400)],
)
def test_linking_needs_a_known_user_and_a_customer(
    admin: Host, client: FlaskClient, form: dict[str, str], status: int
) -> None:
    response = client.post(f"{PREFIX}/link", data=form, headers=SAME_SITE)

    assert response.status_code == status
    assert admin.user(2).stripe_customer_id is None


def test_sync_applies_the_subscriptions_stripe_has(
    admin: Host, client: FlaskClient, stripe_api: responses.RequestsMock
) -> None:
    subscription = copy.deepcopy(TRIALING) | {"customer": "cus_test"}
    listed = stripe_api.get(
        SUBSCRIPTIONS_URL,
        json={"object": "list", "data": [subscription], "has_more": False, "url": "/v1/x"},
    )
    stripe_api.get(
        ENTITLEMENTS_URL,
        json={"object": "list", "data": [], "has_more": False, "url": "/v1/y"},
    )

    response = client.post(f"{PREFIX}/accounts/1/sync", headers=SAME_SITE)

    assert response.headers["Location"] == f"{PREFIX}/accounts/1"
    assert listed.call_count == 1
    assert "customer=cus_test" in stripe_api.calls[0].request.url
    user = admin.user(1)
    assert (user.stripe_subscription_id, user.stripe_subscription_status) == (
        subscription["id"],
        "trialing",
    )
    assert flashed(client, response.headers["Location"])[0] == (
        "Synced customer cus_test: 1 subscription: 1 processed; plan now pro; entitlements read."
    )


def test_sync_says_when_stripe_fails(
    admin: Host, client: FlaskClient, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(SUBSCRIPTIONS_URL, status=500, json={"error": {"type": "api_error"}})

    response = client.post(f"{PREFIX}/accounts/1/sync", headers=SAME_SITE)

    _, error = flashed(client, response.headers["Location"])
    assert error.startswith("Sync failed: ")
    assert API_KEY not in error
    assert admin.user(1).stripe_subscription_id is None


def test_sync_of_an_account_without_customer_does_nothing(
    admin: Host, client: FlaskClient, stripe_api: responses.RequestsMock
) -> None:
    response = client.post(f"{PREFIX}/accounts/2/sync", headers=SAME_SITE)

    assert flashed(client, response.headers["Location"])[1] == (
        "User 2 has no Stripe customer yet; nothing to sync."
    )
    assert len(stripe_api.calls) == 0


# CSRF


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}, {}],
    ids=["cross-site", "other-origin", "no-header"],
)
def test_an_action_from_another_site_is_refused(
    admin: Host, client: FlaskClient, failing_apply: Any, headers: dict[str, str]
) -> None:
    post_event(client, subscription_event(event_id="evt_bug"))
    failing_apply()

    response = client.post(f"{PREFIX}/events/evt_bug/replay", headers=headers)

    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert event_rows(admin) == {"evt_bug": ("failed", None, 1)}


def test_with_csrfprotect_an_action_needs_the_pages_token(
    admin: Host, client: FlaskClient, failing_apply: Any
) -> None:
    from flask_wtf.csrf import CSRFProtect

    CSRFProtect(admin.app)
    post_event(client, subscription_event(event_id="evt_bug"))  # the webhook is exempt
    failing_apply()
    client = client

    refused = client.post(f"{PREFIX}/events/evt_bug/replay")
    assert refused.status_code == 400
    assert event_rows(admin) == {"evt_bug": ("failed", None, 1)}

    page = client.get(f"{PREFIX}/events/evt_bug").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    done = client.post(f"{PREFIX}/events/evt_bug/replay", data={"csrf_token": found.group(1)})

    assert done.status_code == 303
    assert event_rows(admin) == {"evt_bug": ("processed", "1", 2)}
