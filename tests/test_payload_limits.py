"""The storable-payload checks: the shortcut taken when the JSON text is known
must refuse exactly what the full check refuses, with the same message."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_stripe_billing.core.limits import MAX_DEPTH, check_storable, load_json
from flask_stripe_billing.errors import EventParseError

#: Keys the rules look at (ids, status, Unix times) and a few they don't.
KEYS = st.sampled_from(
    ["id", "customer", "status", "created", "current_period_end", "trial_start", "note", "a\x00"]
)
TEXTS = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["\x00", "\ud800", "\udfff", "\ud83d\ude00", "ok\u00d7", "x" * 256, "s" * 51]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, -1, 1, 253_402_300_800, 1_700_000_000]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALARS = st.one_of(TEXTS, NUMBERS, st.booleans(), st.none())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(KEYS, TEXTS), inner, max_size=4)
    ),
    max_leaves=12,
)


def refusal(payload: Any, source: str | None) -> str | None:
    """The message ``check_storable`` refuses with, or None when it accepts."""
    try:
        check_storable(payload, source)
    except EventParseError as error:
        return str(error)
    return None


@settings(max_examples=600, deadline=None)
@given(payload=st.dictionaries(st.one_of(KEYS, TEXTS), VALUES, max_size=5))
def test_the_shortcut_refuses_what_the_full_check_refuses(payload: dict[str, Any]) -> None:
    for text in (json.dumps(payload), json.dumps(payload, ensure_ascii=False)):
        decoded = load_json(text)  # escaped surrogate pairs decode to one character
        assert refusal(decoded, text) == refusal(decoded, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": "evt_\\u0000"}', "id holds a NUL character"),
        ('{"note": "\\ud800"}', "note holds a lone surrogate"),
        ('{"note": "\ud800"}', "note holds a lone surrogate"),
        ('{"created": 0}', "created is not a Unix time between 1970 and the year 9999"),
        ('{"n": 1e999}', "n is not a finite number"),
    ],
)
def test_a_known_text_is_still_checked(text: str, message: str) -> None:
    assert refusal(load_json(text), text) == message


def test_a_body_nested_past_the_limit_is_refused_whatever_its_brackets_count() -> None:
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(ValueError, match="nested more than"):
        load_json(deep)
    assert load_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
