"""A realistic, pre-signed mix of Stripe events built from the real fixture payloads.

Per user a subscription history (checkout, created, updates, deleted, a new
subscription); across users interleaved; then ~5% duplicates, ~2% unknown
customers and ~5% out-of-order pairs, as Stripe delivers them.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import checkout_event, sign, subscription_event

#: One user's history, in order: (event type, status or payment status).
HISTORY = (
    ("checkout.session.completed", "paid"),
    ("customer.subscription.created", "active"),
    ("customer.subscription.updated", "past_due"),
    ("customer.subscription.updated", "active"),
    ("customer.subscription.updated", "active"),
    ("customer.subscription.deleted", "canceled"),
)
LAYOUTS = ("2020", "basil", "dahlia")


@dataclass(frozen=True)
class Delivery:
    """One POST: the exact body and its Stripe-Signature header."""

    body: bytes
    signature: str


def build(
    count: int, users: int, secret: str, *, tag: str, start: int, seed: int = 7
) -> list[Delivery]:
    """``count`` signed deliveries; ``tag`` keeps event ids unique across rounds.

    ``start`` is the first event's creation time: give each round a later one,
    so that a round's events are newer than the last round's (not all stale).
    """
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    steps = [0] * (users + 1)
    base = start
    user = 0
    while len(events) < count:
        user = user % users + 1
        step = steps[user]
        steps[user] += 1
        kind, status = HISTORY[step % len(HISTORY)]
        generation = step // len(HISTORY)
        created = base + step * 60 + user % 60
        customer = f"cus_bench_{user}"
        if rng.random() < 0.02:
            customer = f"cus_unknown_{tag}_{len(events)}"
        event_id = f"evt_{tag}_{len(events)}"
        subscription = f"sub_{tag}_{user}_{generation}"
        if kind.startswith("checkout"):
            event = checkout_event(
                customer=customer,
                subscription=subscription,
                payment_status=status,
                event_id=event_id,
                created=created,
                layout=LAYOUTS[user % 3],
            )
        else:
            event = subscription_event(
                kind,
                status=status,
                customer=customer,
                subscription=subscription,
                event_id=event_id,
                created=created,
                layout=LAYOUTS[user % 3],
            )
        events.append(event)
    _reorder(events, rng, share=0.05)
    bodies = [json.dumps(event).encode() for event in events]
    _duplicate(bodies, rng, share=0.05)
    return [Delivery(body, sign(body, secret)) for body in bodies[:count]]


def _reorder(events: list[dict[str, Any]], rng: random.Random, share: float) -> None:
    """Swap ~share of neighbours so an older event arrives after a newer one."""
    for _ in range(int(len(events) * share)):
        i = rng.randrange(len(events) - 1)
        events[i], events[i + 1] = events[i + 1], events[i]


def _duplicate(bodies: list[bytes], rng: random.Random, share: float) -> None:
    """Deliver ~share of the events a second time, a little later."""
    for _ in range(int(len(bodies) * share)):
        i = rng.randrange(len(bodies))
        bodies.insert(min(len(bodies), i + rng.randrange(1, 50)), bodies[i])
