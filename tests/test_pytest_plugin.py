"""The pytest plugin, as a host project meets it: installed, auto-loaded, no set-up."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

#: Top-level packages the plugin must not import until a test uses one of its fixtures.
HEAVY_PACKAGES = frozenset(
    {"flask", "flask_stripe_billing", "sqlalchemy", "stripe", "requests", "werkzeug", "blinker"}
)

HOST_CONFTEST = """
import pytest
from flask import Flask

from flask_stripe_billing import BillingAccount, InMemoryUserStore, StripeBilling


@pytest.fixture
def app():
    app = Flask("host")
    app.config.update(TESTING=True, STRIPE_WEBHOOK_SECRET="whsec_host_only")
    store = InMemoryUserStore([BillingAccount(user_id="1", stripe_customer_id="cus_alice")])
    StripeBilling(app, user_store=store)
    return app
"""

HOST_TEST = """
from flask_stripe_billing.testing import assert_plan, assert_subscription_status


def test_alice_subscribes_then_cancels(app, stripe_webhook, stripe_event, stripe_signals):
    event = stripe_event("customer.subscription.created", customer="cus_alice")
    response = stripe_webhook(event)

    assert response.status_code == 200
    assert_plan(app, "1", "pro")
    assert_subscription_status(app, "1", "active")
    assert [call["new_plan"] for call in stripe_signals["plan_changed"]] == ["pro"]

    stripe_webhook("customer.subscription.deleted", customer="cus_alice")

    assert_plan(app, "1", "free")
    assert [call["new_plan"] for call in stripe_signals["plan_changed"]] == ["pro", "free"]
"""


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "stripe_billing"]

    assert entry.value == "pytest_flask_stripe_billing"


def test_loading_the_plugin_imports_nothing_but_itself() -> None:
    """pytest imports the plugin in every run of every project that has the package
    installed: measured after ``import pytest``, as pytest loads it."""
    measure = (
        "import json, sys, pytest\n"
        "before = set(sys.modules)\n"
        "import pytest_flask_stripe_billing\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", measure],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = json.loads(run.stdout)
    (line,) = [
        line for line in run.stderr.splitlines() if line.endswith("| pytest_flask_stripe_billing")
    ]
    cumulative_us = int(line.split("|")[1])
    print(f"the plugin's import: {cumulative_us / 1000:.1f} ms, modules {imported}")

    assert [name for name in imported if name.split(".")[0] in HEAVY_PACKAGES] == []
    assert imported == ["pytest_flask_stripe_billing"]


def test_a_project_that_uses_no_fixture_of_the_plugin_never_imports_the_package(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_unrelated=f"""
        import sys


        def test_nothing_heavy_is_imported(request):
            assert request.config.pluginmanager.get_plugin("stripe_billing") is not None
            heavy = {sorted(HEAVY_PACKAGES)!r}
            assert sorted(m for m in sys.modules if m.split(".")[0] in heavy) == []
        """
    )

    result = pytester.runpytest_subprocess("-p", "stripe_billing")

    result.assert_outcomes(passed=1)


def test_a_host_project_posts_events_to_its_own_app(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HOST_CONFTEST)
    pytester.makepyfile(test_billing=HOST_TEST)

    result = pytester.runpytest()

    result.assert_outcomes(passed=1)


def test_the_plugin_can_be_switched_off_by_its_name(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HOST_CONFTEST)
    pytester.makepyfile(test_billing=HOST_TEST)

    result = pytester.runpytest("-p", "no:stripe_billing")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'stripe_webhook' not found*"])


def test_without_an_app_fixture_stripe_webhook_says_what_to_define(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_no_app="""
        def test_posts(stripe_webhook):
            stripe_webhook("customer.subscription.created")


        def test_unrelated_tests_still_pass():
            assert True


        def test_building_events_needs_no_app(stripe_event):
            assert stripe_event("customer.subscription.created")["type"] == (
                "customer.subscription.created"
            )
        """
    )

    result = pytester.runpytest()

    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*stripe_webhook posts to your Flask app, which it takes from a fixture named 'app',"
            " and this test has none. Define one in conftest.py, e.g.*",
            "*def app():*",
            "*or name yours in the ini file: stripe_billing_app_fixture = my_app*",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_the_app_fixture_may_have_another_name(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nstripe_billing_app_fixture = flask_app\n")
    pytester.makeconftest(HOST_CONFTEST.replace("def app():", "def flask_app():"))
    pytester.makepyfile(
        test_billing="""
        from flask_stripe_billing.testing import assert_plan


        def test_subscribes(flask_app, stripe_webhook):
            stripe_webhook("checkout.session.completed", customer="cus_alice")
            assert_plan(flask_app, "1", "pro")
        """
    )

    result = pytester.runpytest()

    result.assert_outcomes(passed=1)


def test_an_app_fixture_that_is_no_flask_app_is_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_odd_app="""
        import pytest


        @pytest.fixture
        def app():
            return "not an app"


        def test_posts(stripe_webhook):
            pass
        """
    )

    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*stripe_webhook needs a Flask app, but the 'app' fixture gave str*"]
    )
