"""The pytest plugin for host apps' tests: Stripe events built, signed and posted, no set-up.

Loaded automatically (entry point ``pytest11``, name ``stripe_billing``) in every
pytest run wherever flask-stripe-billing is installed, including the runs of
projects that never use it. So this module lives outside the package and
imports nothing but pytest: ``flask_stripe_billing`` (and with it Flask,
SQLAlchemy and stripe-python) is imported by a fixture, when a test uses one.
The fixtures reach for the host's Flask app only then too, so a project
without an ``app`` fixture is not affected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

try:
    from pytest import FixtureLookupError
except ImportError:  # older pytest: not yet exported
    from _pytest.fixtures import FixtureLookupError

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.test import TestResponse

    from flask_stripe_billing.testing import SignalRecorder

#: The ini option naming the fixture that gives the host's Flask app.
APP_FIXTURE_OPTION = "stripe_billing_app_fixture"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``stripe_billing_app_fixture = app`` in the ini file: which fixture is the app."""
    parser.addini(
        APP_FIXTURE_OPTION,
        "Name of the fixture giving the Flask app that stripe_webhook posts to.",
        default="app",
    )


@pytest.fixture
def stripe_event() -> Callable[..., dict[str, Any]]:
    """Build a Stripe event from a real payload: ``stripe_event("customer.subscription.created",
    customer="cus_1", status="active")``. The arguments are those of
    :func:`flask_stripe_billing.testing.build_event`.
    """
    from flask_stripe_billing.testing import build_event  # noqa: PLC0415  (lazy)

    return build_event


@pytest.fixture
def stripe_webhook(request: pytest.FixtureRequest) -> Callable[..., TestResponse]:
    """Post a signed event to your app's webhook; returns the test client's response.

    ``stripe_webhook(event)`` posts an event dict (e.g. from ``stripe_event``);
    ``stripe_webhook("customer.subscription.deleted", customer="cus_1")`` builds
    and posts one. ``secret=`` and ``path=`` default to the app's own. The app
    is your project's ``app`` fixture (another name: ini option
    ``stripe_billing_app_fixture``).
    """
    from flask_stripe_billing.testing import build_event, post_stripe_event  # noqa: PLC0415  (lazy)

    app = _host_app(request)

    def post(
        event: dict[str, Any] | str,
        *,
        secret: str | None = None,
        path: str | None = None,
        **build: Any,
    ) -> TestResponse:
        if isinstance(event, str):
            event = build_event(event, **build)
        elif build:
            raise TypeError("give build_event arguments with an event type, not an event")
        return post_stripe_event(app.test_client(), event, secret=secret, path=path)

    return post


@pytest.fixture
def stripe_signals() -> Iterator[SignalRecorder]:
    """Every Flask-Stripe-Billing signal sent during the test: ``stripe_signals["plan_changed"]``
    lists each call's keyword arguments (plus ``sender``).
    """
    from flask_stripe_billing.testing import record_signals  # noqa: PLC0415  (lazy)

    with record_signals() as recorder:
        yield recorder


def _host_app(request: pytest.FixtureRequest) -> Flask:
    """The host's Flask app, from its own fixture; a clear failure when there is none."""
    from flask import Flask  # noqa: PLC0415  (lazy)

    name = str(request.config.getini(APP_FIXTURE_OPTION) or "app")
    try:
        app = request.getfixturevalue(name)
    except FixtureLookupError:
        pytest.fail(
            f"stripe_webhook posts to your Flask app, which it takes from a fixture named "
            f"{name!r}, and this test has none. Define one in conftest.py, e.g.\n\n"
            f"    @pytest.fixture\n"
            f"    def {name}():\n"
            f"        return create_app(...)  # with StripeBilling set up\n\n"
            f"or name yours in the ini file: {APP_FIXTURE_OPTION} = my_app",
            pytrace=False,
        )
    if not isinstance(app, Flask):
        pytest.fail(
            f"stripe_webhook needs a Flask app, but the {name!r} fixture gave {type(app).__name__}",
            pytrace=False,
        )
    return app
