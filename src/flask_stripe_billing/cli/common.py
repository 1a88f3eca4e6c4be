"""What the ``flask billing`` commands share: the types of their arguments (checked by the
webhook's rules), not-found errors, one-line failures, and delivering a signed test event."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import requests
from flask import Flask

from .._util import utcnow
from ..core.limits import check_storable
from ..errors import BillingError, EventParseError, StoreUnavailableError
from ..redact import redact
from ..state import app_object
from ..stores.dbapi.sql import quote
from ..web.delivery import post_stripe_event, sign_payload, webhook_path
from .reports import error_text

#: Seconds to wait for a delivery to another server (``--url``).
DELIVERY_TIMEOUT = 10


#: Seconds in a day, for ``--older-than DAYS``.
DAY = 86_400


class StripeId(click.types.StringParamType):
    """An id (or event type) as the webhook stores it: not empty, and by the webhook's own
    rules (at most 255 characters, 100 for a type; no NUL or lone surrogate)."""

    name = "id"

    def __init__(self, key: str) -> None:
        #: The key the webhook reads it under (``customer``, ``user_id``, ``id``, ``type``…),
        #: whose limits apply; the error names it.
        self.key = key

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        if not text.strip():
            self.fail(f"{self.key} is blank", param, ctx)
        try:
            check_storable({self.key: text})
        except EventParseError as error:
            self.fail(str(error), param, ctx)
        return text


class Days(click.IntRange):
    """A whole number of days, from 1, that reaches back no further than 1970 (the times the
    event log holds)."""

    name = "days"

    def __init__(self) -> None:
        super().__init__(min=1)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        days = int(super().convert(value, param, ctx))
        try:
            check_storable({"created": int(utcnow().timestamp()) - days * DAY})
        except EventParseError:
            self.fail(f"{days} days ago is before 1970", param, ctx)
        return days


class SQLName(click.types.StringParamType):
    """A table name the DB-API store accepts (a plain identifier, or ``schema.table``)."""

    name = "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        try:
            quote(text)
        except ValueError:
            self.fail("not a plain SQL identifier (letters, digits, _)", param, ctx)
        return text


class WritableFile(click.Path):
    """A file the command may create or rewrite: its folder exists and is writable, and an
    existing file is a writable file."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, writable=True, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        if "\x00" in os.fsdecode(value):
            self.fail("the path holds a NUL character", param, ctx)
        path = Path(os.fsdecode(super().convert(value, param, ctx)))
        folder = path.parent
        if not folder.is_dir():
            self.fail(f"folder {click.format_filename(folder)!r} does not exist", param, ctx)
        if not os.access(folder, os.W_OK):
            self.fail(f"folder {click.format_filename(folder)!r} is not writable", param, ctx)
        return path


class NotFound(click.ClickException):
    """An event or user named on the command line does not exist (exit code 2)."""

    exit_code = 2


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a store or Stripe failure into a one-line CLI error (exit code 1)."""
    try:
        yield
    except StoreUnavailableError as error:
        raise database_unavailable(error) from None
    except BillingError as error:
        raise click.ClickException(error_text(error)) from None


def database_unavailable(error: StoreUnavailableError) -> click.ClickException:
    """The CLI error for a store that cannot be reached."""
    return click.ClickException(f"The database is unavailable: {redact(str(error))}")


def deliver(
    body: bytes, secret: str, url: str | None, path: Callable[[Flask], str] = webhook_path
) -> tuple[str, int, str]:
    """POST the signed body to this app in-process (at ``path(app)``, the webhook by
    default), or to ``url`` (and nowhere else).

    Returns where it went, the HTTP status and the answer's text.
    """
    if url is None:
        app = app_object()
        route = path(app)
        response = post_stripe_event(app.test_client(), body, secret=secret, path=route)
        return f"{route} (in-process)", response.status_code, response.get_data(as_text=True)
    try:
        answer = requests.post(
            url,
            data=body,
            headers={
                "Stripe-Signature": sign_payload(body, secret),
                "Content-Type": "application/json",
            },
            timeout=DELIVERY_TIMEOUT,
        )
    except requests.RequestException as error:
        raise click.ClickException(f"Could not deliver to {url}: {redact(str(error))}") from None
    return url, answer.status_code, answer.text
