"""The operations page's Usage section: an account's newest reported meter events, their
status (pending, sent, failed with Stripe's reason) and times, with the pending and failed
counted; on every store, behind the same permission check."""

from __future__ import annotations

import html as markup
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses
from conftest import Host
from dbapi_support import make_database
from flask import Flask
from markupsafe import escape
from usage_support import API_KEY, METER_EVENTS, refusal

from flask_stripe_billing import BillingAccount, DBAPIUserStore, InMemoryUserStore, StripeBilling
from flask_stripe_billing.state import get_state
from flask_stripe_billing.web import admin

PREFIX = "/billing/admin"
HOSTILE = '<script>alert("usage")</script>'
REFUSED = "No active meter was found for event_name 'api_calls'."
CONFIG = {"SECRET_KEY": "admin-usage", "STRIPE_API_KEY": API_KEY}


@dataclass
class Page:
    """An app with the operations page over one store; users 1 (``cus_test``) and 2
    (``cus_two``)."""

    app: Flask
    billing: StripeBilling
    allowed: dict[str, bool]

    def report(self, user_id: int, value: int, identifier: str, **options: Any) -> None:
        """The host's request reporting usage, committed with the store's transaction."""
        with self.app.app_context(), get_state(self.app).event_log.transaction():
            self.billing.report_usage(user_id, "api_calls", value, identifier=identifier, **options)

    def send(self) -> Any:
        with self.app.app_context():
            return self.billing.send_usage()

    def account(self, user_id: int) -> str:
        response = self.app.test_client().get(f"{PREFIX}/accounts/{user_id}")
        assert response.status_code == 200
        return response.get_data(as_text=True)


def with_page(app: Flask, billing: StripeBilling) -> Page:
    allowed = {"admin": True}
    app.register_blueprint(billing.admin_blueprint(lambda: allowed["admin"]))
    return Page(app, billing, allowed)


@pytest.fixture(params=["memory", "sqlalchemy", "dbapi"])
def page(
    request: pytest.FixtureRequest, make_host: Callable[..., Host], tmp_path: Path
) -> Iterator[Page]:
    if request.param == "sqlalchemy":
        host = make_host(CONFIG)
        host.add_user(1, stripe_customer_id="cus_test")
        host.add_user(2, stripe_customer_id="cus_two")
        yield with_page(host.app, host.billing)
        return
    if request.param == "memory":
        app = Flask(__name__)
        app.config.update(TESTING=True, **CONFIG)
        store = InMemoryUserStore(
            [
                BillingAccount(user_id="1", email="ada@example.com", stripe_customer_id="cus_test"),
                BillingAccount(user_id="2", email="bob@example.com", stripe_customer_id="cus_two"),
            ]
        )
        yield with_page(app, StripeBilling(app, user_store=store))
        return
    database = make_database(tmp_path)
    database.create()
    database.add_user(1, stripe_customer_id="cus_test")
    database.add_user(2, stripe_customer_id="cus_two")
    app = Flask(__name__)
    app.config.update(TESTING=True, **CONFIG)
    store = DBAPIUserStore(database.connect, close=True)
    yield with_page(app, StripeBilling(app, user_store=store))
    database.drop("users")


@pytest.fixture
def stripe_meters(stripe_api: responses.RequestsMock) -> responses.RequestsMock:
    """Stripe accepting every meter event but ``req_bad``'s, which it refuses for good."""

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        form = dict(parse_qsl(request.body))
        if form["identifier"] == "req_bad":
            refused = refusal(400, REFUSED)
            return refused["status"], {}, json.dumps(refused["json"])
        body = (
            '{"object": "billing.meter_event", "created": 1, "livemode": false, '
            f'"event_name": "{form["event_name"]}", "identifier": "{form["identifier"]}", '
            f'"timestamp": {form["timestamp"]}, "payload": {{}}}}'
        )
        return 200, {}, body

    stripe_api.add_callback(responses.POST, METER_EVENTS, callback=answer)
    return stripe_api


def usage_rows(page_html: str) -> list[list[str]]:
    """The Usage table's cells, row by row (as the browser shows the text)."""
    section = page_html.split("<h2>Usage", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>", 1)[1], re.S)
    return [[markup.unescape(cell) for cell in re.findall(r"<td>(.*?)</td>", row)] for row in rows]


def test_an_account_shows_its_usage_newest_first_with_status_reason_and_times(
    page: Page, stripe_meters: responses.RequestsMock
) -> None:
    page.report(1, 3, "req_ok")
    page.report(1, 5, "req_bad")
    page.report(2, 7, "req_other_account")
    outcome = page.send()
    assert (outcome.sent, outcome.failed) == (2, 1)
    page.report(1, 11, HOSTILE)  # reported after the send: still pending

    html = page.account(1)

    assert "<h2>Usage (1 pending, 1 failed)</h2>" in html
    header = html.split("<h2>Usage", 1)[1].split("<tbody>", 1)[0]
    assert re.findall(r"<th>(.*?)</th>", header) == [
        "event_name",
        "value",
        "identifier",
        "status",
        "reason",
        "happened",
        "reported",
        "sent",
        "attempts",
    ]
    rows = usage_rows(html)
    assert [(r[2], r[0], r[1], r[3]) for r in rows] == [
        (HOSTILE, "api_calls", "11", "pending"),
        ("req_bad", "api_calls", "5", "failed"),
        ("req_ok", "api_calls", "3", "sent"),
    ]
    hostile, bad, ok = rows
    assert bad[4] == f"HTTP 400: {REFUSED}"
    assert (hostile[4], ok[4]) == ("—", "—")
    assert (bad[7], hostile[7]) == ("—", "—")  # never sent
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", ok[7])
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", r[6]) for r in rows)
    assert (ok[8], bad[8], hostile[8]) == ("1", "1", "0")
    # the hostile identifier is text, never markup
    assert HOSTILE not in html
    assert str(escape(HOSTILE)) in html  # as Jinja escapes it
    assert "req_other_account" not in html


def test_the_section_shows_the_newest_rows_only_and_says_so(
    page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin, "USAGE_ROWS", 2)
    start = datetime.now(UTC) - timedelta(minutes=10)
    for minute in range(3):
        page.report(1, minute, f"req_{minute}", timestamp=start + timedelta(minutes=minute))

    html = page.account(1)

    assert "<h2>Usage (2 pending, 0 failed among the newest 2)</h2>" in html
    assert [row[2] for row in usage_rows(html)] == ["req_2", "req_1"]


def test_an_account_without_usage_has_no_usage_section(page: Page) -> None:
    page.report(2, 1, "req_of_two")

    html = page.account(1)

    assert "<h2>Usage" not in html
    assert "<h2>Usage (1 pending, 0 failed)</h2>" in page.account(2)


def test_without_permission_the_account_page_shows_no_usage(page: Page) -> None:
    page.report(1, 1, "req_secret")
    page.allowed["admin"] = False

    response = page.app.test_client().get(f"{PREFIX}/accounts/1")

    assert response.status_code == 403
    assert "req_secret" not in response.get_data(as_text=True)
