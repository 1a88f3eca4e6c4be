"""Exactly once under real concurrency: separate processes, separate connections, PostgreSQL.

Eight worker processes (``spawn``: nothing inherited but the arguments) each
build their own host app and engine over the tables the test made, and deliver
events through the real webhook route, released together by a barrier. Each
worker counts the signals its own app sends and hands the count back.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import random
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Host, build_host
from support import NOW, post_event, sign, subscription_event

from flask_stripe_billing import signals

pytestmark = pytest.mark.postgres

WORKERS = 8
#: Generous bounds: only reached when something is stuck, never waited for otherwise.
TIMEOUT = 60
T0 = NOW - 3600


# The worker processes


def worker_main(index: int, barrier: Any, tasks: Any, results: Any) -> None:
    """One process: its own app and engine; runs delivery tasks until told to stop."""
    try:
        host = build_host(create_tables=False)
        with host.app.app_context():  # connect now, not at the barrier
            host.db.session.execute(sa.text("SELECT 1"))
        client = host.app.test_client()
        seen: dict[str, list[Any]] = {"outcomes": [], "plan_changed": [], "lifecycle": []}

        def on_received(sender: Any, *, event: Any, status: str, **kwargs: Any) -> None:
            if sender is host.app:
                seen["outcomes"].append([event.id, status])

        def on_plan_changed(sender: Any, *, event: Any, **kwargs: Any) -> None:
            if sender is host.app:
                seen["plan_changed"].append(event.id)

        def on_lifecycle(sender: Any, *, event: Any, **kwargs: Any) -> None:
            if sender is host.app:
                seen["lifecycle"].append([event.type, event.id])

        signals.webhook_received.connect(on_received, weak=False)
        signals.plan_changed.connect(on_plan_changed, weak=False)
        for lifecycle_signal in (
            signals.payment_failed,
            signals.payment_succeeded,
            signals.payment_action_required,
            signals.trial_will_end,
        ):
            lifecycle_signal.connect(on_lifecycle, weak=False)
    except BaseException:
        results.put({"error": traceback.format_exc()})
        return
    results.put({"ready": True})

    while (task := tasks.get()) is not None:
        for values in seen.values():
            values.clear()
        try:
            answer = run_task(host, client, index, barrier, results, task)
            results.put({**answer, **seen})
        except BaseException:
            results.put({"error": traceback.format_exc()})


def run_task(
    host: Host, client: Any, index: int, barrier: Any, results: Any, task: dict[str, Any]
) -> dict[str, Any]:
    """Deliver one signed event; optionally wait at the barrier or hold the row lock."""
    body: bytes = task["body"]
    headers = {"Stripe-Signature": sign(body)}
    store = host.billing.user_store
    if task.get("hold_lock"):
        original = store.write_outcome

        def holding_write(**outcome: Any) -> Any:
            """Runs with the account row locked: say where, then wait to be killed."""
            session = host.db.session
            pid = session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            results.put({"holding_lock": pid})
            session.execute(sa.text("SELECT pg_sleep(:s)"), {"s": TIMEOUT})
            return original(**outcome)

        store.write_outcome = holding_write
    try:
        if task.get("barrier"):
            barrier.wait(TIMEOUT)
        response = client.post(
            "/stripe/webhook", data=body, headers=headers, content_type="application/json"
        )
    finally:
        if task.get("hold_lock"):
            del store.write_outcome
    return {"status": response.status_code}


class Workers:
    """The worker processes, each with its own task and result queue."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.barrier = context.Barrier(count)
        self.tasks = [context.Queue() for _ in range(count)]
        self.results = [context.Queue() for _ in range(count)]
        self.processes = [
            context.Process(
                target=worker_main,
                args=(index, self.barrier, self.tasks[index], self.results[index]),
                daemon=True,
            )
            for index in range(count)
        ]
        for process in self.processes:
            process.start()
        for index in range(count):
            assert self.receive(index) == {"ready": True}

    def send(self, index: int, **task: Any) -> None:
        self.tasks[index].put(task)

    def receive(self, index: int) -> dict[str, Any]:
        try:
            message: dict[str, Any] = self.results[index].get(timeout=TIMEOUT)
        except queue.Empty:
            self.barrier.reset()  # release the others (BrokenBarrierError) for the next test
            raise AssertionError(f"worker {index} did not answer within {TIMEOUT} s") from None
        if "error" in message:
            self.barrier.reset()
            raise AssertionError(f"worker {index} failed:\n{message['error']}")
        return message

    def deliver_together(self, bodies: list[bytes]) -> list[dict[str, Any]]:
        """Each worker delivers its body, all released at the same moment."""
        assert len(bodies) == len(self.processes)
        for index, body in enumerate(bodies):
            self.send(index, body=body, barrier=True)
        return [self.receive(index) for index in range(len(bodies))]

    def stop(self) -> None:
        for tasks in self.tasks:
            tasks.put(None)
        for process in self.processes:
            process.join(TIMEOUT)
            if process.is_alive():
                process.terminate()
                process.join(TIMEOUT)


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    pool = Workers(WORKERS)
    yield pool
    pool.stop()


@pytest.fixture
def row_writes(host: Host) -> Iterator[Any]:
    """The number of UPDATEs that reached the users table (a trigger counts them)."""
    statements = [
        "CREATE TABLE IF NOT EXISTS test_row_writes (user_id integer NOT NULL)",
        "TRUNCATE test_row_writes",
        """CREATE OR REPLACE FUNCTION test_count_row_write() RETURNS trigger AS $$
           BEGIN INSERT INTO test_row_writes VALUES (NEW.id); RETURN NEW; END
           $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER test_count_row_write AFTER UPDATE ON users
           FOR EACH ROW EXECUTE FUNCTION test_count_row_write()""",
    ]
    with host.app.app_context(), host.db.engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))

    def count() -> int:
        with host.app.app_context(), host.db.engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM test_row_writes")).scalar())

    yield count
    with host.app.app_context(), host.db.engine.begin() as connection:
        connection.execute(sa.text("DROP TRIGGER IF EXISTS test_count_row_write ON users"))
        connection.execute(sa.text("DROP TABLE test_row_writes"))
        connection.execute(sa.text("DROP FUNCTION test_count_row_write()"))


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def event_rows(host: Host) -> dict[str, tuple[str, int]]:
    return {row["id"]: (row["status"], row["attempts"]) for row in host.events()}


def state(host: Host) -> tuple[Any, ...]:
    user = host.user(1)
    return (
        user.plan,
        user.stripe_subscription_status,
        user.stripe_subscription_id,
        user.current_period_end and int(user.current_period_end.timestamp()),
        user.cancel_at_period_end,
    )


# the same event, at the same moment, on eight workers


def test_same_event_delivered_by_every_worker_at_once_is_applied_once(
    host: Host, workers: Workers, row_writes: Any
) -> None:
    body = body_of(subscription_event(status="active", event_id="evt_same", created=T0))

    answers = workers.deliver_together([body] * WORKERS)

    assert [answer["status"] for answer in answers] == [200] * WORKERS
    outcomes = sorted(status for answer in answers for _, status in answer["outcomes"])
    assert outcomes == ["duplicate"] * (WORKERS - 1) + ["processed"]
    assert sum(len(answer["plan_changed"]) for answer in answers) == 1
    assert event_rows(host) == {"evt_same": ("processed", WORKERS)}
    assert row_writes() == 1
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status) == ("pro", "active")
    assert user.updated_at is not None


# different events for one customer, at the same moment


def test_concurrent_events_for_one_customer_end_in_the_newest_state(
    host: Host, workers: Workers, row_writes: Any
) -> None:
    shuffle = random.Random(20240611).shuffle
    # A subscription's statuses as Stripe moves it (never out of `canceled`, which
    # is final: a late event calling a canceled subscription active is stale).
    statuses = ["active", "trialing", "past_due", "unpaid", "past_due", "active", "trialing"]
    for round_ in range(3):
        base = T0 + 100 * round_
        events = [
            subscription_event(
                status=status,
                period_end=NOW + 86400 * (10 * round_ + i),
                cancel_at_period_end=i % 2 == 1,
                event_id=f"evt_r{round_}_{i}",
                created=base + i,
            )
            for i, status in enumerate(statuses)
        ]
        newest_status = ["active", "unpaid", "trialing"][round_]
        events.append(
            subscription_event(
                status=newest_status,
                period_end=NOW + 86400 * (10 * round_ + 9),
                cancel_at_period_end=round_ == 1,
                event_id=f"evt_r{round_}_newest",
                created=base + 50,
            )
        )
        shuffle(events)
        writes_before = row_writes()

        answers = workers.deliver_together([body_of(event) for event in events])

        assert [answer["status"] for answer in answers] == [200] * WORKERS
        expected_plan = "free" if newest_status == "unpaid" else "pro"
        assert state(host) == (
            expected_plan,
            newest_status,
            "sub_test",
            NOW + 86400 * (10 * round_ + 9),
            round_ == 1,
        )
        record = host.subscription("sub_test")  # its watermark: the newest event's time
        assert (record["status"], int(record["last_event_at"].timestamp())) == (
            newest_status,
            base + 50,
        )
        rows = {key: value for key, value in event_rows(host).items() if f"_r{round_}_" in key}
        assert len(rows) == WORKERS
        assert rows[f"evt_r{round_}_newest"] == ("processed", 1)
        assert {status for status, _ in rows.values()} <= {"processed", "stale"}
        assert {attempts for _, attempts in rows.values()} == {1}
        outcomes = [outcome for answer in answers for outcome in answer["outcomes"]]
        assert sorted(outcomes) == sorted([key, status] for key, (status, _) in rows.items())
        processed = {key for key, (status, _) in rows.items() if status == "processed"}
        assert row_writes() - writes_before <= len(processed)
        plan_changes = [key for answer in answers for key in answer["plan_changed"]]
        assert set(plan_changes) <= processed
        assert len(plan_changes) == len(set(plan_changes))


# a connection dropped in the middle of the transaction


def test_connection_killed_mid_transaction_answers_503_and_the_retry_applies(
    host: Host, received: Any, monkeypatch: Any
) -> None:
    store = host.billing.user_store
    original = store.write_outcome

    def write_on_a_dying_connection(**outcome: Any) -> Any:
        host.db.session.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return original(**outcome)

    monkeypatch.setattr(store, "write_outcome", write_on_a_dying_connection)
    event = subscription_event(status="active", event_id="evt_killed", created=T0)

    response = post_event(host.client, event)

    assert response.status_code == 503
    assert response.get_json()["error"] == "external_service_error"
    assert host.events() == []
    user = host.user(1)
    assert (user.plan, user.stripe_subscription_status, user.updated_at) == ("free", None, None)
    assert host.subscriptions() == []  # the record was rolled back with the rest
    assert received == {}

    monkeypatch.undo()  # the database is back; Stripe delivers the event again
    assert post_event(host.client, event).status_code == 200

    assert state(host)[:3] == ("pro", "active", "sub_test")
    assert event_rows(host) == {"evt_killed": ("processed", 1)}
    assert [call["new_plan"] for call in received["plan_changed"]] == ["pro"]


def test_lock_holder_killed_lets_the_waiting_delivery_through_and_its_retry_applies(
    host: Host, workers: Workers
) -> None:
    newer = subscription_event(
        status="trialing", period_end=NOW + 86400 * 30, event_id="evt_newer", created=T0 + 20
    )
    older = subscription_event(
        status="active", period_end=NOW + 86400 * 10, event_id="evt_older", created=T0 + 10
    )

    workers.send(0, body=body_of(newer), hold_lock=True)
    holder = workers.receive(0)["holding_lock"]
    workers.send(1, body=body_of(older))
    blocked = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
    )
    terminate = sa.text("SELECT pg_terminate_backend(:pid)")
    with host.app.app_context(), host.db.engine.connect() as connection:
        try:
            deadline = time.monotonic() + TIMEOUT
            while connection.execute(blocked, {"pid": holder}).scalar() == 0:
                assert time.monotonic() < deadline, "the second delivery never waited for the lock"
                time.sleep(0.02)
        finally:  # also when the wait failed: never leave the lock held
            assert connection.execute(terminate, {"pid": holder}).scalar() is True
    killed, waited = workers.receive(0), workers.receive(1)

    assert killed["status"] == 503
    assert (killed["outcomes"], killed["plan_changed"]) == ([], [])
    assert waited["status"] == 200
    assert waited["outcomes"] == [["evt_older", "processed"]]
    assert event_rows(host) == {"evt_older": ("processed", 1)}
    assert state(host) == ("pro", "active", "sub_test", NOW + 86400 * 10, False)

    assert post_event(host.client, newer).status_code == 200  # Stripe retries

    assert state(host) == ("pro", "trialing", "sub_test", NOW + 86400 * 30, False)
    assert event_rows(host) == {"evt_older": ("processed", 1), "evt_newer": ("processed", 1)}
