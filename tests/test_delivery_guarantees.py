"""What Stripe's delivery habits (retries, duplicates, disorder) and failures do to accounts."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Host
from support import NOW, SECRET, checkout_event, post_event, subscription_event

from flask_stripe_billing import BillingAccount, StripeEvent, signals

T0 = NOW - 3600
API_KEY = "sk_test_51HzSecretKey0123456789"


def update_user(host: Host, user_id: int, **fields: Any) -> None:
    """Change the host's own user row, as the host app would."""
    with host.app.app_context():
        user = host.db.session.get(host.User, user_id)
        for name, value in fields.items():
            setattr(user, name, value)
        host.db.session.commit()


def make_pro(host: Host, received: dict[str, Any]) -> None:
    """User 1 on the paid plan with the current subscription ``sub_test``.

    Its ``created`` event (``evt_pro``, dated T0) is delivered first: the
    subscription's record is the source of truth, the account its projection.
    The signals of this set-up are forgotten.
    """
    created = subscription_event("customer.subscription.created", event_id="evt_pro", created=T0)
    assert_received(post_event(host.client, created))
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_id) == ("pro", "sub_test")
    received.clear()


def event_rows(host: Host) -> list[tuple[Any, ...]]:
    return [(row["id"], row["status"], row["user_id"], row["attempts"]) for row in host.events()]


def assert_received(response: Any) -> None:
    assert response.status_code == 200
    assert response.get_json() == {"received": True}


# duplicates


def test_duplicate_delivery_changes_nothing_and_signals_once(host: Host, received: Any) -> None:
    event = subscription_event(status="active", event_id="evt_dup")

    assert_received(post_event(host.client, event))
    first = host.user(1)
    assert_received(post_event(host.client, event))

    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    assert user.updated_at is not None
    assert user.updated_at == first.updated_at
    assert event_rows(host) == [("evt_dup", "processed", "1", 2)]
    assert [call["new_plan"] for call in received["plan_changed"]] == ["pro"]


# ordering


def test_older_event_arriving_after_newer_one_changes_nothing(host: Host, received: Any) -> None:
    make_pro(host, received)
    deleted = subscription_event(
        "customer.subscription.deleted", status="canceled", event_id="evt_new", created=T0 + 20
    )
    older_update = subscription_event(status="active", event_id="evt_old", created=T0 + 10)

    assert_received(post_event(host.client, deleted))
    after_delete = host.user(1)
    assert (after_delete.plan, after_delete.stripe_subscription_status) == ("free", "canceled")

    assert_received(post_event(host.client, older_update))

    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("free", "canceled")
    assert user.updated_at == after_delete.updated_at
    assert event_rows(host) == [
        ("evt_pro", "processed", "1", 1),
        ("evt_new", "processed", "1", 1),
        ("evt_old", "stale", "1", 1),
    ]
    assert [(c["old_plan"], c["new_plan"]) for c in received["plan_changed"]] == [("pro", "free")]


def test_events_arriving_in_order_are_both_applied(host: Host, received: Any) -> None:
    make_pro(host, received)
    older_update = subscription_event(
        status="active", cancel_at_period_end=True, event_id="evt_old", created=T0 + 10
    )
    deleted = subscription_event(
        "customer.subscription.deleted", status="canceled", event_id="evt_new", created=T0 + 20
    )

    assert_received(post_event(host.client, older_update))
    user = host.user(1)
    assert (user.plan, user.cancel_at_period_end) == ("pro", True)

    assert_received(post_event(host.client, deleted))
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("free", "canceled")
    assert user.cancel_at_period_end is False
    assert event_rows(host) == [
        ("evt_pro", "processed", "1", 1),
        ("evt_old", "processed", "1", 1),
        ("evt_new", "processed", "1", 1),
    ]
    assert [(c["old_plan"], c["new_plan"]) for c in received["plan_changed"]] == [("pro", "free")]


def test_deleted_event_for_other_subscription_keeps_plan(host: Host, received: Any) -> None:
    make_pro(host, received)
    before = host.user(1)
    deleted = subscription_event(
        "customer.subscription.deleted",
        status="canceled",
        subscription="sub_other",
        event_id="evt_other_deleted",
    )

    assert_received(post_event(host.client, deleted))

    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    assert user.stripe_subscription_id == "sub_test"
    assert user.updated_at == before.updated_at
    assert event_rows(host) == [
        ("evt_pro", "processed", "1", 1),
        ("evt_other_deleted", "processed", "1", 1),
    ]
    assert {row["id"]: row["status"] for row in host.subscriptions()} == {
        "sub_test": "active",
        "sub_other": "canceled",
    }
    assert "plan_changed" not in received
    assert "subscription_status_changed" not in received


def test_no_op_update_moves_watermark_so_older_events_are_stale(host: Host, received: Any) -> None:
    assert_received(post_event(host.client, subscription_event(event_id="evt_1", created=T0 + 10)))
    applied = host.user(1)
    assert (applied.plan, applied.stripe_subscription_status) == ("pro", "active")

    # The same state again, newer: nothing to write but the watermark.
    assert_received(post_event(host.client, subscription_event(event_id="evt_3", created=T0 + 30)))
    assert host.user(1).updated_at == applied.updated_at

    # Both older than evt_3 (though newer than evt_1), arriving late.
    late_past_due = subscription_event(status="past_due", event_id="evt_2a", created=T0 + 20)
    # (not ``canceled``: an end is never stale against a live record)
    late_canceled = subscription_event(status="unpaid", event_id="evt_2b", created=T0 + 21)
    assert_received(post_event(host.client, late_past_due))
    assert_received(post_event(host.client, late_canceled))

    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    assert user.updated_at == applied.updated_at
    assert event_rows(host) == [
        ("evt_1", "processed", "1", 1),
        ("evt_3", "processed", "1", 1),
        ("evt_2a", "stale", "1", 1),
        ("evt_2b", "stale", "1", 1),
    ]
    assert len(received["plan_changed"]) == 1


# unknown customers


def test_subscription_created_delivered_after_its_checkout_still_applies(
    make_host: Any, received: Any
) -> None:
    """Stripe sends subscription.created a second before checkout.session.completed,
    but may deliver them the other way round; the trial must not be lost."""
    host = make_host()
    host.add_user(5)
    created = subscription_event(
        "customer.subscription.created",
        status="trialing",
        customer="cus_new",
        subscription="sub_trial",
        period_end=T0 + 14 * 86400,
        user_id="5",
        event_id="evt_sub_created",
        created=T0,
    )
    completed = checkout_event(
        customer="cus_new",
        subscription="sub_trial",
        payment_status="no_payment_required",
        client_reference_id="5",
        event_id="evt_checkout",
        created=T0 + 1,
    )

    assert_received(post_event(host.client, completed))
    assert_received(post_event(host.client, created))

    user = host.user(5)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "trialing")
    assert user.current_period_end is not None
    assert user.stripe_customer_id == "cus_new"
    assert [row["status"] for row in host.events()] == ["processed", "processed"]
    assert [c["new_plan"] for c in received["plan_changed"]] == ["pro"]


def deliver_for_unknown_customer(host: Host, received: Any) -> dict[str, Any]:
    """User 2 exists but is not linked yet; an event for its future customer arrives."""
    host.add_user(2)
    event = subscription_event(
        status="active", customer="cus_new", subscription="sub_new", event_id="evt_unknown"
    )
    assert_received(post_event(host.client, event))

    assert host.user(2).plan == "free"
    [row] = host.events()
    assert (row["id"], row["status"], row["customer_id"]) == ("evt_unknown", "unmatched", "cus_new")
    assert row["user_id"] is None
    assert row["error"] == "no account is linked to customer cus_new"
    [call] = received["customer_not_found"]
    assert (call["customer_id"], call["reason"]) == ("cus_new", row["error"])
    assert call["event"].id == "evt_unknown"
    assert host.subscriptions() == []
    return event


def test_unknown_customer_event_is_applied_when_delivered_again_after_linking(
    host: Host, received: Any
) -> None:
    event = deliver_for_unknown_customer(host, received)
    update_user(host, 2, stripe_customer_id="cus_new")

    assert_received(post_event(host.client, event))

    user = host.user(2)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    assert user.stripe_subscription_id == "sub_new"
    assert event_rows(host) == [("evt_unknown", "processed", "2", 2)]
    assert [call["user_id"] for call in received["plan_changed"]] == ["2"]
    assert host.user(1).plan == "free"


def test_unknown_customer_event_is_applied_by_process_event_after_linking(
    host: Host, received: Any
) -> None:
    deliver_for_unknown_customer(host, received)
    update_user(host, 2, stripe_customer_id="cus_new")

    with host.app.app_context():
        outcome = host.billing.process_event("evt_unknown")

    assert outcome.status == "processed"
    assert outcome.after is not None
    assert (outcome.after.user_id, outcome.after.plan) == ("2", "pro")
    applied = host.user(2)
    assert (applied.plan, applied.stripe_subscription_status) == ("pro", "active")
    assert [(row[0], row[1], row[2]) for row in event_rows(host)] == [
        ("evt_unknown", "processed", "2")
    ]
    assert [call["user_id"] for call in received["plan_changed"]] == ["2"]

    with host.app.app_context():
        again = host.billing.process_event("evt_unknown")

    assert again.status == "duplicate"
    user = host.user(2)
    assert (user.plan, user.updated_at) == ("pro", applied.updated_at)
    assert [(row[0], row[1]) for row in event_rows(host)] == [("evt_unknown", "processed")]
    assert len(received["plan_changed"]) == 1


def test_process_event_of_unknown_id_raises_lookup_error(host: Host) -> None:
    with host.app.app_context(), pytest.raises(LookupError, match="evt_never_received"):
        host.billing.process_event("evt_never_received")
    assert host.events() == []


# failures


def test_failing_receiver_is_logged_and_does_not_undo_the_change(
    host: Host, received: Any, caplog: Any
) -> None:
    later: list[str] = []

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver broke")

    def later_receiver(sender: Any, **kwargs: Any) -> None:
        later.append(kwargs["new_plan"])

    signals.plan_changed.connect(broken)
    signals.plan_changed.connect(later_receiver)
    try:
        with caplog.at_level(logging.ERROR, logger="flask_stripe_billing"):
            response = post_event(host.client, subscription_event(event_id="evt_receiver"))
    finally:
        signals.plan_changed.disconnect(broken)
        signals.plan_changed.disconnect(later_receiver)

    assert_received(response)
    assert host.user(1).plan == "pro"
    assert event_rows(host) == [("evt_receiver", "processed", "1", 1)]
    assert later == ["pro"]
    assert [call["new_plan"] for call in received["plan_changed"]] == ["pro"]
    [record] = [r for r in caplog.records if "raised" in r.getMessage()]
    assert record.name == "flask_stripe_billing"
    assert record.levelno == logging.ERROR
    assert "plan-changed" in record.getMessage()
    assert "RuntimeError: receiver broke" in record.getMessage()  # the traceback, masked


def test_handler_bug_is_recorded_as_failed_and_applied_when_delivered_again(
    host: Host, received: Any, monkeypatch: Any, caplog: Any
) -> None:
    store = host.billing.user_store

    def buggy_write(**outcome: Any) -> BillingAccount:
        raise RuntimeError(f"bug while using {SECRET} and {API_KEY}")

    monkeypatch.setattr(store, "write_outcome", buggy_write)
    event = subscription_event(status="active", event_id="evt_bug")

    with caplog.at_level(logging.DEBUG, logger="flask_stripe_billing"):
        assert_received(post_event(host.client, event))

    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("free", None)
    assert user.updated_at is None
    [row] = host.events()
    assert (row["id"], row["status"]) == ("evt_bug", "failed")
    assert row["error"].startswith("RuntimeError: bug while using")
    for secret in (SECRET, API_KEY, SECRET.partition("_")[2], API_KEY.partition("_")[2]):
        assert secret not in row["error"]
        assert secret not in caplog.text
    [failure] = received["webhook_failed"]
    assert failure["event"].id == "evt_bug"
    assert isinstance(failure["error"], RuntimeError)
    assert "plan_changed" not in received

    monkeypatch.undo()  # the bug is fixed and deployed; Stripe retries
    assert_received(post_event(host.client, event))

    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    [row] = host.events()
    assert (row["status"], row["error"], row["attempts"]) == ("processed", None, 2)
    assert [call["new_plan"] for call in received["plan_changed"]] == ["pro"]


def test_database_down_while_recording_answers_503_and_the_retry_is_applied(
    host: Host, received: Any, monkeypatch: Any
) -> None:
    store = host.billing.user_store

    def database_down(event: StripeEvent, payload: str, **options: Any) -> Any:
        raise sa.exc.OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(store, "record_and_lock", database_down)
    event = subscription_event(status="active", event_id="evt_db_down")

    response = post_event(host.client, event)

    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "external_service_error"
    assert body["message"]
    assert "connection refused" not in response.get_data(as_text=True)
    assert host.events() == []
    assert host.user(1).plan == "free"
    assert received == {}

    monkeypatch.undo()  # the database is back; Stripe retries
    assert_received(post_event(host.client, event))

    assert host.user(1).plan == "pro"
    assert event_rows(host) == [("evt_db_down", "processed", "1", 1)]
    assert [call["status"] for call in received["webhook_received"]] == ["processed"]


def test_signals_are_sent_only_after_the_commit(make_host: Any, tmp_path: Any) -> None:
    # In-memory SQLite shares one connection; a file database gives a second one.
    config = (
        {}
        if os.environ.get("DATABASE_URL")
        else {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'billing.db'}"}
    )
    host = make_host(config)
    host.add_user(1, stripe_customer_id="cus_test")
    seen: list[tuple[Any, ...]] = []

    def read_from_another_connection(sender: Any, **kwargs: Any) -> None:
        try:  # a receiver's error would only be logged: keep it for the assertion
            with host.db.engine.connect() as connection:
                plan = connection.execute(sa.text("SELECT plan FROM users WHERE id = 1")).scalar()
                status = connection.execute(
                    sa.text("SELECT status FROM stripe_billing_events WHERE id = :id"),
                    {"id": kwargs["event"].id},
                ).scalar()
            seen.append((plan, status))
        except Exception as error:
            seen.append(("error", repr(error)))

    signals.plan_changed.connect(read_from_another_connection)
    try:
        response = post_event(host.client, subscription_event(event_id="evt_committed"))
    finally:
        signals.plan_changed.disconnect(read_from_another_connection)

    assert_received(response)
    assert seen == [("pro", "processed")]
    assert host.user(1).plan == "pro"
