"""What the ``flask billing`` commands share: not-found errors and one-line failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from ..errors import BillingError
from ..redact import redact
from ..reports import error_text
from ..stores.base import StoreUnavailableError


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
