"""Fuzzing at the edge: generated bodies and headers never get a 500 or a non-JSON answer.

Real Stripe payloads from tests/fixtures, mutated by hypothesis (values replaced
by hostile ones, keys dropped, bytes cut or flipped, nesting, NaN, NUL, lone
surrogates, huge numbers), are posted signed, badly signed and unsigned to the
webhook; generated bodies go to the checkout route for a signed-in user, with
Stripe's API mocked by responses. Every answer is JSON, none is a 5xx, and an
answer that refuses the request leaves every account and the event log as they
were. The counts are printed with the test's result.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses
import sqlalchemy as sa
from conftest import NO_SESSIONS, OPEN_SESSIONS, Host
from flask import request
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support import (
    CHECKOUT_FIXTURES,
    FIXTURES,
    LAYOUTS,
    SECRET,
    checkout_event,
    envelope,
    load,
    load_object,
    sign,
    subscription_event,
)

#: Requests per generated example (cheaper than one example per request).
BATCH = 10
#: 1,000 x 10 = 10,000 webhook bodies and 250 x 8 = 2,000 checkout bodies.
WEBHOOK_EXAMPLES = 1_000
CHECKOUT_EXAMPLES = 250
CHECKOUT_BATCH = 8
FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


def base_events() -> list[dict[str, Any]]:
    """Every real payload we have, as delivered events (DATA_ONLY objects wrapped)."""
    events = []
    for path in sorted((FIXTURES / "events").glob("*.json")):
        data = load(f"events/{path.name}")
        if data.get("object") == "event":
            events.append(data)
        else:
            kind = path.name.split("__", 1)[1].removesuffix(".DATA_ONLY.json")
            events.append(envelope(kind, load_object(f"events/{path.name}")))
    for layout in LAYOUTS:
        events.append(subscription_event(layout=layout, status="active"))
        events.append(subscription_event("customer.subscription.deleted", layout=layout))
    for layout in CHECKOUT_FIXTURES:
        events.append(checkout_event(layout=layout, customer=None, client_reference_id="2"))
    return events


BASES = base_events()

NASTY_INTS = [0, -1, 1, 2**31, 2**53, 2**63 - 1, 2**63, -(2**63) - 1, 10**20, 253_402_300_800]
NASTY_TEXT = ["", "\x00", "\ud800", "a\udfffb", "x" * 256, "é" * 300, "\u202e", "null", "0"]
scalars = st.one_of(
    st.sampled_from(NASTY_INTS),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(NASTY_TEXT),
    st.text(st.characters(exclude_categories=()), max_size=12),
    st.booleans(),
    st.none(),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``value``."""
    children = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


BASE_PATHS = [list(paths(event)) for event in BASES]
TOP_FIELDS = ["id", "type", "created", "object", "data", "livemode", "api_version"]


def replace_at(value: Any, path: tuple[Any, ...], new: Any) -> None:
    for key in path[:-1]:
        value = value[key]
    value[path[-1]] = new


def delete_at(value: Any, path: tuple[Any, ...]) -> None:
    for key in path[:-1]:
        value = value[key]
    del value[path[-1]]


def webhook_body(rnd: random.Random, values: list[Any]) -> bytes:
    """A real event with a few mutations, encoded (sometimes badly).

    Hypothesis draws the hostile ``values`` and the seed of ``rnd`` for each batch;
    the cheap choices (which event, which path, which byte) come from ``rnd``.
    """
    index = rnd.randrange(len(BASES))
    event = json.loads(json.dumps(BASES[index]))
    if rnd.random() < 0.5:
        event["id"] = f"evt_fuzz_{rnd.randrange(10**6)}"
    for _ in range(rnd.randrange(4)):
        kind = rnd.choice(["replace", "replace", "top", "delete", "nest"])
        if kind == "top":
            event[rnd.choice(TOP_FIELDS)] = copy.deepcopy(rnd.choice(values))
            continue
        path = rnd.choice(BASE_PATHS[index])
        try:
            if kind == "replace":
                new = rnd.choice([*values, *NASTY_INTS, *NASTY_TEXT])
                replace_at(event, path, copy.deepcopy(new))
            elif kind == "delete":
                delete_at(event, path)
            else:
                depth = rnd.choice([10, 60, 61, 62, 65, 200])
                replace_at(event, path, json.loads("[" * depth + "]" * depth))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed or replaced the path
    text = json.dumps(event, ensure_ascii=rnd.random() < 0.5)
    if rnd.random() < 0.1:  # nesting too deep for json itself (RecursionError)
        depth = rnd.choice([1_000, 5_000, 50_000])
        text = text.replace("{}", "[" * depth + "]" * depth, 1)
    body = text.encode("utf-8", "surrogatepass")
    cut = rnd.choice(["none", "none", "none", "truncate", "flip", "insert"])
    if cut != "none" and body:
        at = rnd.randrange(len(body))
        if cut == "truncate":
            body = body[:at]
        elif cut == "flip":
            body = body[:at] + bytes([body[at] ^ rnd.randrange(1, 256)]) + body[at + 1 :]
        else:
            body = body[:at] + rnd.randbytes(rnd.randrange(1, 9)) + body[at:]
    return body


def signature_header(rnd: random.Random, body: bytes) -> dict[str, str]:
    """A Stripe-Signature that is valid, wrong, old, ahead, malformed or absent."""
    kind = rnd.choice(["valid"] * 6 + ["wrong", "old", "ahead", "garbage", "none"])
    now = int(time.time())
    if kind == "none":
        return {}
    if kind == "garbage":
        return {"Stripe-Signature": rnd.choice(GARBAGE_HEADERS)}
    secret = "whsec_not_ours" if kind == "wrong" else SECRET
    offset = {"old": -3_600, "ahead": 10**9}.get(kind, 0)
    return {"Stripe-Signature": sign(body, secret, now + offset)}


GARBAGE_HEADERS = [
    "",
    "t=",
    "t=abc,v1=00",
    "v1=00",
    "t=1,t=2",
    "t=99999999999999999999999,v1=ab",
    "t=-1,v1=ab",
    ",,,,",
    "\xff\xfe",
    "t=1700000000,v1=" + "0" * 64,
]


def snapshot(host: Host) -> tuple[Any, ...]:
    """Every user's billing columns and the number of stored events (plain SQL: it is hot)."""
    with host.app.app_context():
        engine = host.db.engine
    with engine.connect() as connection:
        rows = connection.execute(SNAPSHOT_USERS).all()
        count = connection.execute(SNAPSHOT_EVENTS).scalar()
    return (tuple(tuple(row) for row in rows), count)


SNAPSHOT_USERS = sa.text(
    "SELECT id, plan, stripe_customer_id, stripe_subscription_id, stripe_subscription_status,"
    " current_period_end, cancel_at_period_end, updated_at FROM users ORDER BY id"
)
SNAPSHOT_EVENTS = sa.text("SELECT count(*) FROM stripe_billing_events")


def check_answer(response: Any, allowed: set[int]) -> None:
    """A JSON answer with an expected status; an error in the design's shape."""
    text = response.get_data(as_text=True)
    assert response.status_code in allowed, text[:500]
    assert response.mimetype == "application/json", text[:500]
    body = json.loads(text)
    if response.status_code >= 400:
        assert set(body) == {"error", "message", "details"}, body


def report(capsys: pytest.CaptureFixture[str], route: str, counts: Counter[int]) -> None:
    shown = ", ".join(f"{status}: {number}" for status, number in sorted(counts.items()))
    with capsys.disabled():
        print(f"\nfuzz {route}: {sum(counts.values())} requests ({shown}); 0 answers of 5xx")


def test_fuzzed_webhook_bodies_get_json_and_change_nothing_when_refused(
    make_host: Callable[..., Host], capsys: pytest.CaptureFixture[str]
) -> None:
    host = make_host()
    host.add_user(1, stripe_customer_id="cus_test")
    host.add_user(2)
    client = host.client
    counts: Counter[int] = Counter()
    state = {"before": snapshot(host)}

    @settings(FUZZ_SETTINGS, max_examples=WEBHOOK_EXAMPLES)
    @given(st.lists(json_values, min_size=4, max_size=4), st.integers(0, 2**32 - 1))
    def deliver(values: list[Any], seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(BATCH):
            body = webhook_body(rnd, values)
            headers = signature_header(rnd, body)
            content_type = rnd.choice(["application/json", "text/plain", ""])
            response = client.post(
                "/stripe/webhook", data=body, headers=headers, content_type=content_type
            )
            counts[response.status_code] += 1
            check_answer(response, {200, 400, 413})
            after = snapshot(host)
            if response.status_code != 200:
                assert after == state["before"], body[:300]
            state["before"] = after

    deliver()
    report(capsys, "POST /stripe/webhook", counts)
    assert sum(counts.values()) >= BATCH * WEBHOOK_EXAMPLES
    assert counts[200] and counts[400]


checkout_json = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "interval": st.one_of(
                st.sampled_from(["monthly", "yearly", "weekly", ""]), json_values
            ),
            "price_id": st.one_of(
                st.sampled_from(["price_monthly", "price_yearly", "price_gold", "price_other"]),
                json_values,
            ),
        },
    ),
    json_values,
)


@st.composite
def checkout_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["json", "json", "json", "raw", "deep", "empty"]))
    if kind == "raw":
        return draw(st.binary(max_size=64))
    if kind == "deep":
        depth = draw(st.sampled_from([64, 65, 1_000, 50_000]))
        return b"[" * depth + b"]" * depth
    if kind == "empty":
        return b""
    return json.dumps(draw(checkout_json), ensure_ascii=draw(st.booleans())).encode(
        "utf-8", "surrogatepass"
    )


CHECKOUT_CONFIG = {
    "STRIPE_API_KEY": "sk_test_51FuzzCheckoutKey00000000000",
    "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
    "STRIPE_PRICE_PRO_YEARLY": "price_yearly",
    "STRIPE_BILLING_PLANS": {"price_gold": "gold"},
    "STRIPE_SUCCESS_URL": "https://app.example.com/billing/success",
    "STRIPE_CANCEL_URL": "https://app.example.com/pricing",
}
API = "https://api.stripe.com/v1"


def test_fuzzed_checkout_bodies_get_json_and_change_nothing_when_refused(
    make_host: Callable[..., Host], capsys: pytest.CaptureFixture[str]
) -> None:
    host = make_host(CHECKOUT_CONFIG, current_user_id=lambda: request.headers.get("X-User"))
    host.add_user(1, email="ada@example.com")
    client = host.client
    counts: Counter[int] = Counter()
    session = load(
        "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json"
    )
    customer = load("stripe-openapi/customer.json")
    state = {"before": snapshot(host)}

    with responses.RequestsMock(assert_all_requests_are_fired=False) as stripe_api:
        stripe_api.add(responses.POST, f"{API}/customers", json=customer)
        stripe_api.add(responses.POST, f"{API}/checkout/sessions", json=session)
        stripe_api.add(responses.GET, OPEN_SESSIONS, json=NO_SESSIONS)

        @settings(FUZZ_SETTINGS, max_examples=CHECKOUT_EXAMPLES)
        @given(st.data())
        def order(data: st.DataObject) -> None:
            for _ in range(CHECKOUT_BATCH):
                body = data.draw(checkout_bodies())
                user = data.draw(st.sampled_from(["1", "1", "1", "", "999"]))
                content_type = data.draw(
                    st.sampled_from(
                        ["application/json", "application/json; charset=utf-8", "text/plain"]
                    )
                )
                headers = {"X-User": user} if user else {}
                response = client.post(
                    "/billing/checkout-session",
                    data=body,
                    headers=headers,
                    content_type=content_type,
                )
                counts[response.status_code] += 1
                check_answer(response, {200, 400, 401, 413})
                after = snapshot(host)
                if response.status_code != 200:
                    assert after == state["before"], body[:300]
                state["before"] = after

        order()
    report(capsys, "POST /billing/checkout-session", counts)
    assert sum(counts.values()) >= CHECKOUT_BATCH * CHECKOUT_EXAMPLES
    assert counts[200] and counts[400]
