"""``flask billing sync --all``: every subscription through Stripe's list pages, resumable.

Stripe's API is mocked at the HTTP level with ``responses``: stripe-python runs
for real, and the test counts the calls it makes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
import sqlalchemy as sa
from conftest import Host
from support import load

API_KEY = "sk_test_51SyncAllKey000000000000000"
SUBSCRIPTIONS_URL = "https://api.stripe.com/v1/subscriptions"
ACTIVE = load(
    "api-objects/pay-rails-vcr__2025-10-29.clover__subscription.active.before_price_swap.json"
)
ACCOUNTS = 250


def subscription(number: int, status: str = "active") -> dict[str, Any]:
    """A real subscription object (API 2025-10-29) for customer ``cus_sync_<number>``."""
    obj = copy.deepcopy(ACTIVE)
    obj.update(id=f"sub_sync_{number:04d}", customer=f"cus_sync_{number}", status=status)
    return obj


class StripeSubscriptions:
    """Answers ``GET /v1/subscriptions`` page by page, as Stripe does; can fail a page."""

    def __init__(self, subscriptions: list[dict[str, Any]]) -> None:
        self.subscriptions = subscriptions
        self.fail_after: str | None = None
        self.requests: list[dict[str, list[str]]] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlsplit(request.url).query)
        self.requests.append(query)
        after = query.get("starting_after", [None])[0]
        if after is not None and after == self.fail_after:
            return 500, {}, json.dumps({"error": {"type": "api_error", "message": "boom"}})
        ids = [s["id"] for s in self.subscriptions]
        start = ids.index(after) + 1 if after else 0
        limit = int(query["limit"][0])
        page = self.subscriptions[start : start + limit]
        body = {
            "object": "list",
            "url": "/v1/subscriptions",
            "data": page,
            "has_more": start + limit < len(self.subscriptions),
        }
        return 200, {}, json.dumps(body)


@pytest.fixture
def accounts(make_host: Callable[..., Host]) -> Host:
    """A host with ``ACCOUNTS`` users, user i linked to ``cus_sync_i``, all on free."""
    host = make_host({"STRIPE_API_KEY": API_KEY})
    with host.app.app_context():
        host.db.session.execute(
            host.User.__table__.insert(),
            [
                {"id": i, "email": f"u{i}@example.com", "stripe_customer_id": f"cus_sync_{i}"}
                for i in range(1, ACCOUNTS + 1)
            ],
        )
        host.db.session.commit()
    return host


def plans(host: Host) -> dict[str, int]:
    with host.app.app_context():
        rows = host.db.session.execute(
            sa.select(host.User.plan, sa.func.count()).group_by(host.User.plan)
        )
        return {plan: count for plan, count in rows}


def subscription_rows(host: Host) -> int:
    with host.app.app_context():
        table = host.db.metadata.tables["stripe_billing_subscriptions"]
        return int(host.db.session.execute(sa.select(sa.func.count()).select_from(table)).scalar())


def test_sync_all_reads_a_hundred_subscriptions_per_call(
    accounts: Host, stripe_api: responses.RequestsMock
) -> None:
    listed = [subscription(i) for i in range(1, ACCOUNTS + 1)]
    listed.append(subscription(9999))  # a customer no account here has
    stripe = StripeSubscriptions(listed)
    stripe_api.add_callback(responses.GET, SUBSCRIPTIONS_URL, callback=stripe)

    result = accounts.app.test_cli_runner().invoke(args=["billing", "sync", "--all"])

    assert result.exit_code == 0, result.output
    assert len(stripe_api.calls) == 3  # 251 subscriptions, 100 a page
    assert [q.get("starting_after") for q in stripe.requests] == [
        None,
        ["sub_sync_0100"],
        ["sub_sync_0200"],
    ]
    assert all(q["status"] == ["all"] and q["limit"] == ["100"] for q in stripe.requests)
    assert plans(accounts) == {"pro": ACCOUNTS}
    assert subscription_rows(accounts) == ACCOUNTS
    assert (
        f"Synced 251 subscriptions: {ACCOUNTS} accounts changed, 0 unchanged, "
        "1 without an account here, 0 failed." in result.output
    )
    assert "user 1: subscription sub_sync_0001 (active): plan free → pro" in result.output


def test_sync_all_again_changes_nothing(accounts: Host, stripe_api: responses.RequestsMock) -> None:
    stripe = StripeSubscriptions([subscription(i) for i in range(1, ACCOUNTS + 1)])
    stripe_api.add_callback(responses.GET, SUBSCRIPTIONS_URL, callback=stripe)
    runner = accounts.app.test_cli_runner()
    runner.invoke(args=["billing", "sync", "--all"])

    again = runner.invoke(args=["billing", "sync", "--all"])

    assert again.exit_code == 0, again.output
    assert f"0 accounts changed, {ACCOUNTS} unchanged" in again.output


def test_interrupted_sync_all_resumes_from_its_checkpoint(
    accounts: Host, stripe_api: responses.RequestsMock, tmp_path: Path
) -> None:
    stripe = StripeSubscriptions([subscription(i) for i in range(1, ACCOUNTS + 1)])
    stripe.fail_after = "sub_sync_0200"
    stripe_api.add_callback(responses.GET, SUBSCRIPTIONS_URL, callback=stripe)
    checkpoint = tmp_path / "sync.cursor"
    runner = accounts.app.test_cli_runner()
    args = ["billing", "sync", "--all", "--checkpoint", str(checkpoint)]

    first = runner.invoke(args=args)

    assert first.exit_code == 1
    assert "resume with: flask billing sync --all --starting-after sub_sync_0200" in first.output
    assert checkpoint.read_text() == "sub_sync_0200"
    assert plans(accounts) == {"pro": 200, "free": ACCOUNTS - 200}

    stripe.fail_after = None
    calls_before = len(stripe_api.calls)
    second = runner.invoke(args=args)

    assert second.exit_code == 0, second.output
    assert "Resuming after sub_sync_0200" in second.output
    assert len(stripe_api.calls) - calls_before == 1
    assert stripe.requests[-1]["starting_after"] == ["sub_sync_0200"]
    assert plans(accounts) == {"pro": ACCOUNTS}
    assert not checkpoint.exists()


@pytest.mark.parametrize("terminal", [True, False])
def test_sync_all_draws_a_progress_bar_only_on_a_terminal(
    accounts: Host,
    stripe_api: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
    terminal: bool,
) -> None:
    stripe_api.add_callback(
        responses.GET, SUBSCRIPTIONS_URL, callback=StripeSubscriptions([subscription(1)])
    )
    monkeypatch.setattr("click._termui_impl.isatty", lambda stream: terminal)

    result = accounts.app.test_cli_runner().invoke(args=["billing", "sync", "--all"])

    assert result.exit_code == 0, result.output
    bar_lines = [
        line
        for line in result.output.splitlines()
        if "Syncing subscriptions" in line and "requests/s (STRIPE_BILLING_API_RATE)  [" in line
    ]
    assert bool(bar_lines) == terminal, result.output
