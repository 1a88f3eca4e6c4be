"""BillingAccount's queries, against every Stripe subscription status: pure, no app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flask_stripe_billing import BillingAccount, Settings, SubscriptionRecord
from flask_stripe_billing.core.account import grants_plan, project

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BEFORE = NOW - timedelta(days=1)
AFTER = NOW + timedelta(days=1)
STATUSES = [
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "incomplete",
    "incomplete_expired",
    "paused",
    None,
]


def account(status: str | None, **fields: object) -> BillingAccount:
    """User 1's account with its primary subscription in ``status``."""
    return BillingAccount(user_id="1", subscription_status=status, **fields)  # type: ignore[arg-type]


# status → (is_paying, is_paying without the past_due grace, is_past_due, has_ended)
BY_STATUS = {
    "trialing": (True, True, False, False),
    "active": (True, True, False, False),
    "past_due": (True, False, True, False),
    "canceled": (False, False, False, True),
    "unpaid": (False, False, False, True),
    "incomplete": (False, False, False, False),
    "incomplete_expired": (False, False, False, True),
    "paused": (False, False, False, True),
    None: (False, False, False, False),
}


@pytest.mark.parametrize("status", STATUSES)
def test_status_queries_follow_the_status_table(status: str | None) -> None:
    paying, paying_without_grace, past_due, ended = BY_STATUS[status]
    subject = account(status)

    assert subject.is_paying() is paying
    assert subject.is_paying(past_due_keeps_plan=False) is paying_without_grace
    assert subject.is_past_due() is past_due
    assert subject.has_ended() is ended


@pytest.mark.parametrize("status", STATUSES)
def test_is_paying_follows_the_grace_the_account_was_handed_out_with(status: str | None) -> None:
    paying, paying_without_grace, _, _ = BY_STATUS[status]
    without_grace = account(status, past_due_keeps_plan=False)

    assert without_grace.is_paying() is paying_without_grace
    assert without_grace.is_paying(past_due_keeps_plan=True) is paying


def record(status: str) -> SubscriptionRecord:
    """User 1's ``pro`` subscription in ``status``."""
    return SubscriptionRecord(
        id="sub_1",
        user_id="1",
        customer_id="cus_1",
        status=status,
        price_ids=("price_pro",),
        plan="pro",
        quantity=1,
        trial_end=None,
        current_period_end=None,
        cancel_at_period_end=False,
        cancel_at=None,
        ended_at=None,
        created=NOW,
        last_event_at=NOW,
    )


@pytest.mark.parametrize("status", [s for s in STATUSES if s is not None])
@pytest.mark.parametrize("grace", [True, False], ids=["grace", "no-grace"])
def test_one_rule_grants_the_plan_for_the_projection_and_is_paying(
    status: str, grace: bool
) -> None:
    paying, paying_without_grace, _, _ = BY_STATUS[status]
    expected = paying if grace else paying_without_grace
    settings = Settings(past_due_keeps_plan=grace)

    assert grants_plan(status, grace) is expected
    assert (project([record(status)], settings)["plan"] == "pro") is expected
    assert account(status).is_paying(past_due_keeps_plan=grace) is expected


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize(
    ("trial_end", "expected_if_trialing"),
    [(AFTER, True), (BEFORE, False), (NOW, False), (None, False)],
)
def test_on_trial_only_while_trialing_before_the_trial_end(
    status: str | None, trial_end: datetime | None, expected_if_trialing: bool
) -> None:
    subject = account(status, trial_end=trial_end)

    assert subject.on_trial(now=NOW) is (status == "trialing" and expected_if_trialing)


# Statuses in which a subscription canceled at period end still gives access until then.
STILL_RUNNING = {"trialing", "active", "past_due"}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("period_end", [AFTER, BEFORE, None], ids=["after", "before", "none"])
@pytest.mark.parametrize("cancel_at_period_end", [True, False])
def test_on_grace_period_while_canceled_at_a_period_end_still_ahead(
    status: str | None, period_end: datetime | None, cancel_at_period_end: bool
) -> None:
    subject = account(
        status, current_period_end=period_end, cancel_at_period_end=cancel_at_period_end
    )
    expected = cancel_at_period_end and period_end == AFTER and status in STILL_RUNNING

    assert subject.on_grace_period(now=NOW) is expected


def test_naive_times_are_read_as_utc() -> None:
    """SQLite gives naive datetimes back; they are UTC wall times."""
    naive_after = AFTER.replace(tzinfo=None)
    subject = account(
        "trialing", trial_end=naive_after, current_period_end=naive_after, cancel_at_period_end=True
    )

    assert subject.on_trial(now=NOW)
    assert subject.on_grace_period(now=NOW)


def test_a_naive_now_is_read_as_utc() -> None:
    subject = account(
        "trialing", trial_end=AFTER, current_period_end=AFTER, cancel_at_period_end=True
    )
    naive_now = NOW.replace(tzinfo=None)
    naive_later = (AFTER + timedelta(seconds=1)).replace(tzinfo=None)

    assert (subject.on_trial(now=naive_now), subject.on_trial(now=naive_later)) == (True, False)
    assert subject.on_grace_period(now=naive_now)


def test_now_defaults_to_the_current_time() -> None:
    real_now = datetime.now(UTC)
    ahead = account("trialing", trial_end=real_now + timedelta(hours=1))
    behind = account("trialing", trial_end=real_now - timedelta(hours=1))

    assert (ahead.on_trial(), behind.on_trial()) == (True, False)


@pytest.mark.parametrize(
    ("plan", "asked", "expected"),
    [
        ("pro", ("pro",), True),
        ("pro", ("team", "pro"), True),
        ("pro", ("team",), False),
        ("free", ("pro",), False),
        ("free", ("free",), True),
        ("pro", (), True),
        ("free", (), False),
    ],
)
def test_has_plan(plan: str, asked: tuple[str, ...], expected: bool) -> None:
    assert BillingAccount(user_id="1", plan=plan).has_plan(*asked) is expected


FEATURES = {"pro": ["export", "api"], "free": ["basic"]}


@pytest.mark.parametrize(
    ("plan", "feature", "expected"),
    [
        ("pro", "export", True),
        ("pro", "api", True),
        ("pro", "basic", False),
        ("free", "basic", True),
        ("free", "export", False),
        ("team", "export", False),
    ],
)
def test_has_feature_reads_the_features_of_the_plan(
    plan: str, feature: str, expected: bool
) -> None:
    settings = Settings.from_config({"STRIPE_BILLING_FEATURES": FEATURES}, environ={})

    assert BillingAccount(user_id="1", plan=plan).has_feature(feature, settings) is expected


def test_features_may_be_given_as_json() -> None:
    settings = Settings.from_config(
        {}, environ={"STRIPE_BILLING_FEATURES": '{"pro": ["export"], "team": []}'}
    )

    assert settings.features == {"pro": ("export",), "team": ()}


@pytest.mark.parametrize(
    "value", ['["pro"]', {"pro": "export"}, {"pro": 3}], ids=["list", "text", "number"]
)
def test_features_that_are_not_lists_per_plan_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="STRIPE_BILLING_FEATURES"):
        Settings.from_config({"STRIPE_BILLING_FEATURES": value}, environ={})


def test_no_features_configured_means_no_feature() -> None:
    settings = Settings.from_config({}, environ={})

    assert not BillingAccount(user_id="1", plan="pro").has_feature("export", settings)
