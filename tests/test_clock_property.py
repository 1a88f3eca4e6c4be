"""One clock: with this server's clock off Stripe's by -30 s … +30 s, a subscription's
history delivered through every path at once — snapshot webhooks, thin notifications
(their object fetched), ``flask billing sync`` and a cancel-now through the management
route — in any order, with repeats, ends exactly as delivering its snapshot events once,
in order, does.

Stripe is simulated: its events are created 10 s apart on Stripe's clock, and every
read answers the subscription as it is at the moment of the read, with the ``Date``
header of that moment. Deliveries happen in real time, each after its event was made.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from conftest import ON_POSTGRES, Host, build_host
from flask import request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manage_support import http_date
from support import NOW, post_event, sign, subscription_event
from test_order_property import NEXT_STATUSES, reset
from test_order_property import state_of as order_state_of
from thin_support import API, THIN_SECRET, notification, thin_config

from flask_stripe_billing import _util

#: Stripe's clock when the history starts; its events come 10 s apart.
T0 = NOW - 3600
STEP = 10
PLANS = {"price_pro": "pro"}
EXAMPLES = 30 if ON_POSTGRES else 60
SUBSCRIPTION_URL = f"{API}/v1/subscriptions/sub_test"
LIST_URL = f"{API}/v1/subscriptions"


class Stripe:
    """The simulated Stripe: its clock, and the subscription's state at each moment."""

    def __init__(self) -> None:
        self.now = T0
        self.states: list[dict[str, Any]] = []
        self.skew = 0
        #: While the management route cancels: the deletion is not made until Stripe is
        #: asked to cancel (``DELETE``).
        self.holding = False

    def current(self) -> dict[str, Any]:
        """The subscription now: the state of the last event made at or before ``now``."""
        made = min((self.now - T0) // STEP, len(self.states) - 1 - int(self.holding))
        return copy.deepcopy(self.states[max(0, made)])

    def answer(self, body: Any) -> tuple[int, dict[str, str], str]:
        return 200, {"Date": http_date(self.now)}, json.dumps(body)


STRIPE = Stripe()


@st.composite
def histories(draw: Any) -> list[dict[str, Any]]:
    """One subscription's events, oldest first (created at T0, then one each STEP)."""
    status = draw(st.sampled_from(["incomplete", "trialing", "active"]))
    steps = [("customer.subscription.created", status)]
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        if status not in NEXT_STATUSES:
            break
        status = draw(st.sampled_from(NEXT_STATUSES[status]))
        ended = status == "canceled"
        steps.append(("customer.subscription." + ("deleted" if ended else "updated"), status))
    events = []
    for number, (event_type, status) in enumerate(steps):
        created = T0 + number * STEP
        event = subscription_event(
            event_type,
            status=status,
            price="price_pro",
            period_end=T0 + 30 * 86400,
            cancel_at_period_end=draw(st.booleans()) and status not in ("canceled",),
            event_id=f"evt_{number:02d}",
            created=created,
        )
        obj = event["data"]["object"]
        obj["created"] = T0
        if status in ("canceled", "incomplete_expired"):
            obj["ended_at"] = created
        events.append(event)
    return events


@st.composite
def schedules(draw: Any, events: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
    """What happens when: (Stripe time, kind, event index), in time order. Every event is
    delivered at least once (snapshot or thin), some again, each after it was made; some
    syncs; an ending deletion may be made by the management route at its own moment."""
    last = len(events) - 1
    plan: list[tuple[int, str, int]] = []
    for index in range(len(events)):
        kinds = draw(
            st.lists(st.sampled_from(["snapshot", "thin", "thin_twin"]), min_size=1, max_size=3)
        )
        for kind in kinds:
            gap = draw(st.integers(min_value=index, max_value=last))
            plan.append((T0 + gap * STEP + draw(st.integers(0, STEP - 1)), kind, index))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        gap = draw(st.integers(min_value=0, max_value=last))
        plan.append((T0 + gap * STEP + draw(st.integers(0, STEP - 1)), "sync", gap))
    final = events[last]
    if final["type"] == "customer.subscription.deleted" and draw(st.booleans()):
        plan.append((T0 + last * STEP, "manage", last))
    order = draw(st.permutations(range(len(plan))))
    # Real time: in time order; what shares a second happens in a drawn order.
    ranked = sorted(range(len(plan)), key=lambda n: (plan[n][0], order.index(n)))
    return [plan[n] for n in ranked]


@pytest.fixture(scope="module")
def clock_host() -> Iterator[Host]:
    host = build_host(
        thin_config(
            STRIPE_BILLING_PLANS=PLANS,
            STRIPE_BILLING_MANAGEMENT_ROUTES="1",
            STRIPE_API_MAX_RETRIES="0",
        ),
        current_user_id=lambda: request.headers.get("X-User"),
    )
    yield host
    with host.app.app_context():
        host.db.session.remove()
        host.db.drop_all()
        host.db.engine.dispose()


@pytest.fixture(scope="module")
def simulated_stripe() -> Iterator[responses.RequestsMock]:
    """Stripe's API answering from the simulation, and this server's clock off Stripe's."""

    class ServerClock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            at = datetime.fromtimestamp(STRIPE.now + STRIPE.skew, UTC)
            return at if tz is not None else at.replace(tzinfo=None)

    def listed(_: Any) -> tuple[int, dict[str, str], str]:
        page = {"object": "list", "url": "/v1/subscriptions", "has_more": False}
        return STRIPE.answer({**page, "data": [STRIPE.current()]})

    def cancelled(_: Any) -> tuple[int, dict[str, str], str]:
        STRIPE.holding = False
        return STRIPE.answer(STRIPE.current())

    patch = pytest.MonkeyPatch()
    patch.setattr(_util, "datetime", ServerClock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback("GET", SUBSCRIPTION_URL, lambda _: STRIPE.answer(STRIPE.current()))
        mock.add_callback("GET", LIST_URL, listed)
        mock.add_callback("DELETE", SUBSCRIPTION_URL, cancelled)
        yield mock
    patch.undo()


def state_of(host: Host) -> tuple[Any, ...]:
    """User 1's billing columns and the subscription rows, without the ordering watermark
    (a read dates its record by its own moment) and the wall-clock ``updated_at``."""
    return order_state_of(host, skipped=("updated_at", "last_event_at"))


def thin_type(event: dict[str, Any]) -> str:
    return "v1." + str(event["type"])


def happen(host: Host, events: list[dict[str, Any]], kind: str, index: int) -> None:
    """One delivery or call, at Stripe's current moment."""
    event = events[index]
    if kind == "snapshot":
        assert post_event(host.client, event).status_code == 200
    elif kind in ("thin", "thin_twin"):
        body = notification(
            thin_type(event),
            event_id=f"evt_thin_{index:02d}",
            created=datetime.fromtimestamp(event["created"], UTC) + timedelta(milliseconds=1),
            snapshot_event=event["id"] if kind == "thin_twin" else None,
        )
        response = post_event(host.client, body, secret=THIN_SECRET, path="/stripe/thin-webhook")
        assert response.status_code == 200, response.get_data(as_text=True)
    elif kind == "sync":
        result = host.app.test_cli_runner().invoke(args=["billing", "sync", "--no-features", "1"])
        assert result.exit_code == 0, result.output
    else:
        STRIPE.holding = True
        response = host.client.post(
            "/billing/subscription/cancel", json={"at_period_end": False}, headers={"X-User": "1"}
        )
        STRIPE.holding = False
        # 409: the app has not heard of the subscription yet (it was ended elsewhere).
        assert response.status_code in (200, 409), response.get_data(as_text=True)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), skew=st.integers(min_value=-30, max_value=30))
def test_every_path_with_the_server_clock_off_by_up_to_30s_ends_like_in_order_delivery(
    clock_host: Host, simulated_stripe: responses.RequestsMock, data: Any, skew: int
) -> None:
    events = data.draw(histories(), label="history")
    plan = data.draw(schedules(events), label="schedule")
    STRIPE.states = [event["data"]["object"] for event in events]
    STRIPE.skew = skew

    reset(clock_host)
    for event in events:
        STRIPE.now = event["created"]
        body = json.dumps(event).encode()
        response = clock_host.client.post(
            "/stripe/webhook",
            data=body,
            headers={"Stripe-Signature": sign(body)},
            content_type="application/json",
        )
        assert response.status_code == 200
    in_order = state_of(clock_host)

    reset(clock_host)
    for at, kind, index in plan:
        STRIPE.now = at
        happen(clock_host, events, kind, index)

    assert state_of(clock_host) == in_order
    statuses = {row["status"] for row in clock_host.events()}
    assert statuses <= {"processed", "stale", "duplicate"}, clock_host.events()
