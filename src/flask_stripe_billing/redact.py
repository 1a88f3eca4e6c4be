"""Keep secrets out of stored error texts and logs."""

from __future__ import annotations

import re

_SECRET = re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9]+")
MAX_ERROR_LENGTH = 2000


def redact(text: str) -> str:
    """``text`` with Stripe keys and signing secrets masked, cut to a sane length."""
    return _SECRET.sub("[redacted]", text)[:MAX_ERROR_LENGTH]


def describe_error(error: BaseException) -> str:
    """A one-line description of an exception, safe to store and show."""
    return redact(f"{type(error).__name__}: {error}")
