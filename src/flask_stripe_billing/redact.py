"""Keep secrets out of stored error texts and logs."""

from __future__ import annotations

import re
import traceback

_SECRET = re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_\w+|\bwhsec_\w+")
MAX_ERROR_LENGTH = 2000


def redact(text: str) -> str:
    """``text`` with Stripe keys and signing secrets masked, cut to a sane length."""
    return _SECRET.sub("[redacted]", text)[:MAX_ERROR_LENGTH]


def describe_error(error: BaseException) -> str:
    """A one-line description of an exception, safe to store and show."""
    return redact(f"{type(error).__name__}: {error}")


def describe_traceback(error: BaseException) -> str:
    """The exception's traceback as text, secrets masked, for the log (never cut short)."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return _SECRET.sub("[redacted]", text).rstrip()
