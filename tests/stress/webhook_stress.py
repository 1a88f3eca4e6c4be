"""Stress the webhook under real load: gunicorn workers, PostgreSQL, duplicates at once.

Usage (a PostgreSQL database of its own is best; nothing is dropped, every row
this run writes carries its run id)::

    .ci/postgres start
    createdb -h 127.0.0.1 -p 55432 -U postgres billing_stress
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:55432/billing_stress \\
        python tests/stress/webhook_stress.py [--users 50] [--events 6] [--copies 4]

It creates the example app's tables and ``--users`` users linked to Stripe
customers, starts the example app (examples/simple_app, through stress_wsgi.py)
under gunicorn with ``--workers`` workers on a free port of 127.0.0.1, and sends
each user two overlapping subscriptions' events: a first subscription created
``incomplete`` that expires a day later, and its retry, created and then updated
``--events`` times (active or trialing, each with its own ``created`` second
and period end). Each event goes ``--copies`` times at once, from ``--threads``
threads, in any order. The retry grants ``pro`` and the expiring first
subscription never displaces it, so each user must see exactly one
``plan_changed`` signal and end on the retry's newest event.

With ``--restart-db COMMAND`` the command (e.g. ``.ci/postgres restart``) runs
once a third of the deliveries are sent: the database goes away mid-stream.
Every delivery answered other than 2xx is then delivered again, as Stripe does,
until all are answered 200 (at most ``--redeliveries`` more passes).

It exits 1 when an event was lost (not recorded), applied more than once (more
than one non-duplicate outcome, or more than one plan change for a user), still
not answered 200 after the redeliveries, or left an account in another state
than its retry's newest event's; 2 when it could not run.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # stress_wsgi, and tests/support.py

SECRET = "whsec_stress_only_not_secret"
STATUSES = ("active", "trialing")


def main() -> int:
    options = parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        print("DATABASE_URL must name a PostgreSQL database (postgresql+psycopg://...)")
        return 2
    os.environ["STRIPE_WEBHOOK_SECRET"] = SECRET  # for this process's app and gunicorn's
    started = time.monotonic()
    run = secrets.token_hex(4)
    users = create_users(run, options.users)
    events, plan, newest = make_events(run, users, options.events, options.copies)
    print(
        f"run {run}: {len(users)} users, {len(events)} distinct events, "
        f"{len(plan)} deliveries, {options.workers} gunicorn workers, {options.threads} threads"
    )

    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        port = free_port()
        server = start_gunicorn(port, options.workers, log)
        try:
            wait_until_up(port, server, deadline=time.monotonic() + 30)
            restart = restart_after(options.restart_db, len(plan) // 3)
            answers, seconds = deliver(port, plan, options.threads, options.timeout, restart)
            first_pass = collections.Counter(answers.values())
            for _ in range(options.redeliveries):
                again = [index for index, code in answers.items() if code != 200]
                if not again:
                    break
                time.sleep(1)  # Stripe waits before it retries
                retried, more = deliver(
                    port, [plan[i] for i in again], options.threads, options.timeout, None
                )
                answers.update({again[i]: code for i, code in retried.items()})
                seconds += more
        finally:
            stop(server)
        log.seek(0)
        server_log = log.read()

    codes = [answers.get(index, 0) for index in range(len(plan))]
    report = collect(run, users, events, newest, codes, server_log)
    report["first pass answers"] = dict(first_pass)
    report["database restarted"] = bool(restart and restart.done)
    # Not a failure of the library (its receivers' errors are logged, never raised),
    # but of the harness's own receivers: their count would then be short.
    report["receivers that raised"] = server_log.count("Receiver of signal")
    print(f"sent in {seconds:.1f} s ({len(plan) / max(seconds, 1e-9):.0f} deliveries/s)")
    for name, value in report.items():
        print(f"{name + ':':28} {value}")
    print(f"total time: {time.monotonic() - started:.1f} s")
    failed = [
        report["non-200 answers"],
        report["lost (events not recorded)"],
        report["applied more than once"],
        report["users not in newest state"],
        report["plan_changed signals"] != len(users),
        report["users with plan_changed != 1"],
        not report["attempts recorded"] >= codes.count(200),
        options.restart_db is not None and not report["database restarted"],
    ]
    if any(failed):
        print("FAILED")
        raised = server_log.find("Receiver of signal")
        print(server_log[raised : raised + 3000] if raised >= 0 else server_log[-3000:])
        return 1
    print("OK: every event recorded and applied exactly once")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--events", type=int, default=6, help="distinct events per user")
    parser.add_argument("--copies", type=int, default=4, help="deliveries of each event")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=16, help="concurrent deliveries")
    parser.add_argument("--timeout", type=float, default=45, help="seconds for all deliveries")
    parser.add_argument(
        "--restart-db", metavar="COMMAND", help="restart the database mid-stream with COMMAND"
    )
    parser.add_argument(
        "--redeliveries", type=int, default=10, help="passes re-sending non-200 deliveries"
    )
    options = parser.parse_args()
    if not (1 <= options.threads <= 64 and 1 <= options.workers <= 8):
        parser.error("keep --threads within 1..64 and --workers within 1..8")
    return options


def create_users(run: str, count: int) -> list[tuple[int, str]]:
    """Tables (through the example app) and ``count`` free users with customers."""
    import sqlalchemy as sa
    from stress_wsgi import User, app, db

    with app.app_context():
        first = (db.session.scalar(sa.select(sa.func.max(User.id))) or 0) + 1
        users = [(first + n, f"cus_stress_{run}_{n}") for n in range(count)]
        for user_id, customer in users:
            db.session.add(
                User(
                    id=user_id,
                    email=f"stress-{run}-{user_id}@example.com",
                    stripe_customer_id=customer,
                )
            )
        db.session.commit()
        db.engine.dispose()
    return users


def make_events(
    run: str, users: list[tuple[int, str]], per_user: int, copies: int
) -> tuple[list[bytes], list[bytes], dict[int, tuple[str, int]]]:
    """The events' bodies, the delivery plan, and each user's newest (status, period end).

    Per user: the first subscription created ``incomplete`` and expiring a day
    later, its retry created and updated. The plan takes the users one after
    the other, each user's events and their copies shuffled together: the
    threads deliver them at the same moment, to different workers, in any order.
    """
    from support import NOW

    rng = random.Random(run)
    bodies, plan, newest = [], [], {}
    start = NOW - 3 * 86400
    for user_id, customer in rng.sample(users, len(users)):
        first, retry = f"sub_stress_{run}_{user_id}_a", f"sub_stress_{run}_{user_id}_b"
        name = f"evt_stress_{run}_{user_id}"
        block = [
            stress_event(name, 0, customer, "created", first, "incomplete", start, start),
            stress_event(
                name, 1, customer, "updated", first, "incomplete_expired", start + 86400, start
            ),
        ]
        for number in range(per_user):
            status = rng.choice(STATUSES)
            kind = "created" if number == 0 else "updated"
            at = start + 60 + number
            block.append(
                stress_event(name, 2 + number, customer, kind, retry, status, at, start + 60)
            )
            newest[user_id] = (status, NOW + 86400 * (32 + number), retry)
        bodies += block
        block = [body for body in block for _ in range(copies)]
        rng.shuffle(block)
        plan += block
    return bodies, plan, newest


def stress_event(
    name: str,
    number: int,
    customer: str,
    kind: str,
    subscription: str,
    status: str,
    created: int,
    subscription_created: int,
) -> bytes:
    """One signed-to-be subscription event's body, from the real payload."""
    from support import NOW, subscription_event

    payload = subscription_event(
        f"customer.subscription.{kind}",
        status=status,
        customer=customer,
        subscription=subscription,
        period_end=NOW + 86400 * (30 + number),
        event_id=f"{name}_{number}",
        created=created,
    )
    payload["data"]["object"]["created"] = subscription_created
    return json.dumps(payload).encode()


@dataclass
class Restart:
    """Run ``command`` once ``after`` deliveries were answered."""

    command: str
    after: int
    done: bool = False

    def __call__(self, answered: int) -> None:
        if not self.done and answered >= self.after:
            self.done = True
            print(f"restarting the database: {self.command}", flush=True)
            subprocess.run(self.command, shell=True, check=True, stdout=subprocess.DEVNULL)


def restart_after(command: str | None, after: int) -> Restart | None:
    return Restart(command, after) if command else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_gunicorn(port: int, workers: int, log: Any) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(HERE),
        "--timeout",
        "30",
        "--log-level",
        "warning",
        "stress_wsgi:app",
    ]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def wait_until_up(port: int, server: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/users/1", timeout=2):
                return
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not answer within 30 s") from None
            time.sleep(0.1)


def deliver(
    port: int, plan: list[bytes], threads: int, timeout: float, restart: Restart | None
) -> tuple[dict[int, int], float]:
    """POST every body, signed now; each one's status code by index (0: no answer)."""
    from support import sign

    url = f"http://127.0.0.1:{port}/stripe/webhook"
    stopped = threading.Event()
    answered = itertools.count(1)
    lock = threading.Lock()

    def post(body: bytes) -> int:
        if stopped.is_set():
            return 0
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Stripe-Signature": sign(body, SECRET)},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                code = int(response.status)
        except urllib.error.HTTPError as error:
            code = int(error.code)
        except OSError:
            code = 0
        if restart is not None:
            with lock:
                restart(next(answered))
        return code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(post, body) for body in plan]
        _, pending = wait(futures, timeout=timeout)
        if pending:
            stopped.set()
            print(f"time is up after {timeout} s: {len(pending)} deliveries not sent")
            for future in pending:
                future.cancel()
    answers = {
        index: future.result()
        for index, future in enumerate(futures)
        if future.done() and not future.cancelled()
    }
    return answers, time.monotonic() - started


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=15)


def collect(
    run: str,
    users: list[tuple[int, str]],
    events: list[bytes],
    newest: dict[int, tuple[str, int]],
    answers: list[int],
    server_log: str,
) -> dict[str, Any]:
    """What the database and the signal rows say about this run."""
    import sqlalchemy as sa
    from stress_wsgi import SIGNALS, User, app, db

    prefix = f"evt_stress_{run}_%"
    expected_ids = {json.loads(body)["id"] for body in events}
    with app.app_context():
        table = db.metadata.tables["stripe_billing_events"]
        rows = db.session.execute(
            sa.select(table.c.id, table.c.status, table.c.attempts).where(table.c.id.like(prefix))
        ).all()
        signals = db.session.execute(
            sa.select(
                SIGNALS.c.signal,
                SIGNALS.c.event_id,
                SIGNALS.c.status,
                SIGNALS.c.user_id,
                SIGNALS.c.pid,
            ).where(SIGNALS.c.event_id.like(prefix))
        ).all()
        accounts = db.session.scalars(
            sa.select(User).where(User.id.in_([user_id for user_id, _ in users]))
        ).all()
        db.session.remove()
        db.engine.dispose()

    outcomes: dict[str, list[str]] = collections.defaultdict(list)
    for signal in signals:
        if signal.signal == "webhook_received":
            outcomes[signal.event_id].append(signal.status)
    applied_twice = sum(
        1 for statuses in outcomes.values() if sum(s != "duplicate" for s in statuses) > 1
    )
    plan_changes = [signal for signal in signals if signal.signal == "plan_changed"]
    per_user = collections.Counter(signal.user_id for signal in plan_changes)
    changed = [a for a in accounts if a.plan != "free" or a.stripe_subscription_status is not None]
    not_newest = [
        a.id
        for a in accounts
        if (
            a.plan,
            a.stripe_subscription_status,
            a.current_period_end and int(a.current_period_end.timestamp()),
            a.stripe_subscription_id,
        )
        != ("pro", *newest[a.id])
    ]
    per_worker = collections.Counter(s.pid for s in signals if s.signal == "webhook_received")
    welcome_lines = sum(
        f"stress-{run}-" in line and "Welcome to pro" in line for line in server_log.splitlines()
    )
    return {
        "deliveries sent": len(answers),
        "non-200 answers": sum(code != 200 for code in answers),
        "distinct events": len(expected_ids),
        "event rows": len(rows),
        "event rows by status": dict(collections.Counter(row.status for row in rows)),
        "attempts recorded": sum(row.attempts for row in rows),
        "outcomes by status": dict(
            collections.Counter(s for statuses in outcomes.values() for s in statuses)
        ),
        "deliveries per worker": sorted(per_worker.values(), reverse=True),
        "account changes": len(changed),
        "plan_changed signals": len(plan_changes),
        "users with plan_changed != 1": sum(per_user[str(u)] != 1 for u, _ in users),
        "'Welcome to pro' log lines": welcome_lines,
        "users not in newest state": len(not_newest),
        "applied more than once": applied_twice,
        "lost (events not recorded)": len(expected_ids - {row.id for row in rows}),
    }


if __name__ == "__main__":
    sys.exit(main())
