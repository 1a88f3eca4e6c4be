"""Keep secrets, card numbers, payloads and SQL parameters out of stored error texts, logs
and the operations page."""

from __future__ import annotations

import re
import traceback
from typing import Any

from sqlalchemy import exc as sa_exc

_SECRET = re.compile(
    r"\b(?:sk|rk|pk)_(?:live|test)_\w+|\bwhsec_\w+"
    # A client secret: a PaymentIntent's or SetupIntent's id, "_secret_", then the secret.
    r"|\b[a-z]+_\w+?_secret_\w+"
)


#: 13 to 19 digits, maybe grouped by spaces or dashes, not inside an id or a longer number.
_CARD_NUMBER = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")


#: JSON keys whose values are secret whatever they look like.
SECRET_KEYS = frozenset({"client_secret", "secret", "password", "cvc", "cvv", "card_number"})


REDACTED = "[redacted]"


MAX_ERROR_LENGTH = 2000


#: A database error's reason is its driver message's first line, cut to this length.
MAX_DATABASE_REASON_LENGTH = 200


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"


_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def redact(text: str) -> str:
    """``text`` masked (:func:`mask`), cut to a sane length."""
    return mask(text)[:MAX_ERROR_LENGTH]


def mask(text: str) -> str:
    """``text`` with Stripe keys, signing secrets, client secrets and card numbers masked."""
    return _CARD_NUMBER.sub(_card_number_masked, _SECRET.sub(REDACTED, text))


def redact_json(value: Any) -> Any:
    """A copy of a parsed JSON value with every secret masked, for showing a payload:
    the values of :data:`SECRET_KEYS`, and each string (or number) :func:`mask` changes."""
    if isinstance(value, dict):
        return {
            key: REDACTED if str(key).lower() in SECRET_KEYS else redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, int) and not isinstance(value, bool) and mask(str(value)) != str(value):
        return REDACTED
    return value


def _card_number_masked(match: re.Match[str]) -> str:
    """A card number (digits that pass the Luhn check) masked; other digits kept."""
    digits = [int(c) for c in match.group() if c.isdigit()]
    total = sum(
        d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits))
    )
    return REDACTED if total % 10 == 0 else match.group()


def describe_error(error: BaseException) -> str:
    """A one-line description of an exception, safe to store and show."""
    return redact(f"{type(error).__name__}: {_reason(error)}")


def describe_traceback(error: BaseException) -> str:
    """The exception's traceback as text, for the log (never cut short).

    Secrets are masked, and a database error shows its driver's short reason in
    place of SQLAlchemy's text, which quotes the statement and every parameter
    (the whole event payload, for the event log's INSERT).
    """
    parts: list[str] = []
    for exception, link in reversed(_chain(error)):
        if exception.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(exception.__traceback__))
        reason = _reason(exception)
        parts.append(f"{_qualified_name(exception)}{': ' if reason else ''}{reason}\n{link}")
    return mask("".join(parts)).rstrip()


def _reason(error: BaseException) -> str:
    """``str(error)``, except for database errors: the driver's first line, short."""
    if isinstance(error, sa_exc.StatementError):
        cause = error.orig if error.orig is not None else error.args[0] if error.args else ""
        first_line = str(cause).strip().split("\n", 1)[0]
        return f"{type(cause).__name__}: {first_line[:MAX_DATABASE_REASON_LENGTH]}"
    return str(error)


def _chain(error: BaseException) -> list[tuple[BaseException, str]]:
    """The exception, then its causes, each with the line that leads to the one before."""
    chain: list[tuple[BaseException, str]] = [(error, "")]
    seen = {id(error)}
    current = error
    while True:
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            return chain
        if id(current) in seen:
            return chain
        seen.add(id(current))
        chain.append((current, link))


def _qualified_name(error: BaseException) -> str:
    module = type(error).__module__
    name = type(error).__qualname__
    return name if module in ("builtins", "__main__") else f"{module}.{name}"
