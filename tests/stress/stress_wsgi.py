"""The WSGI app that webhook_stress.py runs under gunicorn: the example app, unchanged,
plus receivers that write every ``webhook_received`` and ``plan_changed`` signal to a
``stress_signals`` table, so that the script can count them across worker processes.

Not a test module (pytest does not collect it); imported by gunicorn as
``stress_wsgi:app`` and by the script, which creates the tables through it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from simple_app.app import User, create_app, db  # noqa: E402

from flask_stripe_billing import signals  # noqa: E402

#: One row per signal sent, by any worker (in db.metadata: create_all makes it).
SIGNALS = sa.Table(
    "stress_signals",
    db.metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("signal", sa.String(40), nullable=False),
    sa.Column("event_id", sa.String(255), nullable=False, index=True),
    sa.Column("status", sa.String(40)),
    sa.Column("user_id", sa.String(255)),
    sa.Column("new_plan", sa.String(50)),
    sa.Column("pid", sa.Integer, nullable=False),
)


#: How often a signal row is tried: the database restarts mid-run, and a pooled connection
#: that was open across the restart fails once before the pool replaces it.
RECORD_ATTEMPTS = 20


def record(signal: str, event_id: str, **values: Any) -> None:
    """Write one signal row on its own connection (the webhook's transaction is over).

    Retried while the database restarts, so that the count is of the signals sent,
    not of the rows the harness managed to write.
    """
    row = SIGNALS.insert().values(signal=signal, event_id=event_id, pid=os.getpid(), **values)
    for attempt in range(RECORD_ATTEMPTS):
        try:
            with db.engine.begin() as connection:
                connection.execute(row)
            return
        except (sa.exc.OperationalError, sa.exc.InterfaceError):
            if attempt == RECORD_ATTEMPTS - 1:
                raise
            time.sleep(0.25)


def on_received(sender: Any, *, event: Any, status: str, **kwargs: Any) -> None:
    record("webhook_received", event.id, status=status)


def on_plan_changed(sender: Any, *, event: Any, user_id: str, new_plan: str, **kwargs: Any) -> None:
    record("plan_changed", event.id, user_id=user_id, new_plan=new_plan)


signals.webhook_received.connect(on_received)
signals.plan_changed.connect(on_plan_changed)

app = create_app()

__all__ = ["SIGNALS", "User", "app", "db"]
