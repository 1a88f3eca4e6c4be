"""What a JSON body may hold before anything is stored: bounded nesting, storable values.

A signed body that breaks one of these rules cannot be a Stripe event (Stripe's
ids are at most 255 characters, its times are Unix seconds, its text is
Unicode without NUL), and storing it would fail in the database, over and over
as Stripe retries. Checking first turns it into a 400 instead.
"""

from __future__ import annotations

import json
import math
import re
from itertools import repeat
from typing import Any

from ..errors import EventParseError

#: Deepest nesting accepted; Stripe's events, expanded objects included, stay near 10.
MAX_DEPTH = 64


#: The event log's and BillingMixin's id columns are ``String(255)``.
MAX_ID_LENGTH = 255


#: The event log's ``type`` column is ``String(100)``.
MAX_TYPE_LENGTH = 100


#: BillingMixin's ``stripe_subscription_status`` column is ``String(50)``.
MAX_STATUS_LENGTH = 50


#: Unix times are after 1970 and before the year 10000 (what a datetime can hold).
MAX_TIMESTAMP = 253_402_300_800


#: Every integer fits a signed 64-bit column.
INT64_LIMIT = 2**63


#: Keys whose text value is an id stored in a ``String(255)`` column.
ID_KEYS = frozenset(
    {"id", "customer", "subscription", "client_reference_id", "user_id", "customer_account"}
)


#: Keys whose text value has a length limit (see :func:`_check_length`).
LIMITED_TEXT_KEYS = ID_KEYS | {"status"}


#: The kinds of value :func:`_check_value` always visits (text only when it must).
_ALWAYS_CHECKED = frozenset({dict, list, int, float})


_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


#: The JSON escapes that decode to a NUL or to (half of) a surrogate pair.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def load_json(body: str | bytes) -> Any:
    """Decode standard JSON nested at most :data:`MAX_DEPTH` deep; ValueError otherwise."""
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    # Fewer brackets than the limit cannot nest deeper than it: no walk needed.
    if not isinstance(body, str) or body.count("{") + body.count("[") > MAX_DEPTH:
        _check_depth(value)
    return value


def check_storable(payload: Any, source: str | None = None) -> None:
    """Raise :class:`EventParseError` unless every value of the event fits where it is stored.

    ``payload`` comes from :func:`load_json`. ``source``, the JSON text it was
    decoded from, when known, spares checking each text for NUL characters and
    lone surrogates: they can only come from escapes the text would show.
    """
    if isinstance(payload, dict):
        event_type = payload.get("type")
        if isinstance(event_type, str) and len(event_type) > MAX_TYPE_LENGTH:
            raise EventParseError(f"type is longer than {MAX_TYPE_LENGTH} characters")
    _check_value("", payload, check_text=source is None or not _is_clean_text(source))


def _is_clean_text(source: str) -> bool:
    """Whether no text decoded from ``source`` can hold a NUL or a lone surrogate."""
    if "\\u" in source and _UNSTORABLE_ESCAPE.search(source) is not None:
        return False
    try:
        source.encode("utf-8")  # fails on a lone surrogate in the text itself
    except UnicodeEncodeError:
        return False
    return True


def _check_value(key: str, value: Any, *, check_text: bool) -> None:
    """Check ``value``, held under ``key`` (list items under their list's key), and all
    it holds; recursion is bounded by the depth :func:`load_json` allows.

    An item that cannot break a rule (None, a bool, or text neither checked for NUL
    characters nor under a key with a length limit) is skipped without a call: an
    event holds hundreds of values, most of them such text.
    """
    kind = type(value)
    if kind is dict or kind is list:
        pairs = value.items() if kind is dict else zip(repeat(key), value)
        for item_key, item in pairs:
            if check_text and kind is dict:
                _check_text(item_key, "a key")
            item_kind = type(item)
            if item_kind in _ALWAYS_CHECKED or (
                item_kind is str and (check_text or item_key in LIMITED_TEXT_KEYS)
            ):
                _check_value(item_key, item, check_text=check_text)
    elif kind is str:
        if check_text:
            _check_text(value, key)
        _check_length(key, value)
    elif kind is int:
        _check_integer(key, value)
    elif kind is float and not math.isfinite(value):
        raise EventParseError(f"{_shown(key)} is not a finite number")


def _check_depth(value: Any) -> None:
    """Walk without recursion: a value nested deeper than MAX_DEPTH is refused."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def _check_text(text: str, where: str) -> None:
    match = _UNSTORABLE_TEXT.search(text)
    if match is not None:
        what = "a NUL character" if match.group() == "\x00" else "a lone surrogate"
        raise EventParseError(f"{_shown(where)} holds {what}")


def _check_length(key: str, text: str) -> None:
    if key in ID_KEYS and len(text) > MAX_ID_LENGTH:
        raise EventParseError(f"{key} is longer than {MAX_ID_LENGTH} characters")
    if key == "status" and len(text) > MAX_STATUS_LENGTH:
        raise EventParseError(f"status is longer than {MAX_STATUS_LENGTH} characters")


def _check_integer(key: str, number: int) -> None:
    if _is_timestamp_key(key) and not 0 < number < MAX_TIMESTAMP:
        raise EventParseError(f"{key} is not a Unix time between 1970 and the year 9999")
    if not -INT64_LIMIT <= number < INT64_LIMIT:
        raise EventParseError(f"{_shown(key)} does not fit in 64 bits")


def _is_timestamp_key(key: str) -> bool:
    """Stripe names its Unix times ``created``, ``*_at``, ``*_end``, ``*_start``, ``*_date``."""
    return key in ("created", "billing_cycle_anchor") or key.endswith(
        ("_at", "_end", "_start", "_date")
    )


def _shown(key: str) -> str:
    """A key as an error message names it: short, and ``a value`` for list items."""
    return (key[:40] + "...") if len(key) > 40 else key or "a value"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
