"""What the ``flask billing`` commands share: not-found errors, one-line failures, and
delivering a signed test event."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
import requests
from flask import Flask

from ..errors import BillingError, StoreUnavailableError
from ..redact import redact
from ..state import app_object
from ..web.delivery import post_stripe_event, sign_payload, webhook_path
from .reports import error_text

#: Seconds to wait for a delivery to another server (``--url``).
DELIVERY_TIMEOUT = 10


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
