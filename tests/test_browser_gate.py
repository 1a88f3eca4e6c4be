"""The example's gated pages in a real browser: refused, a simulated upgrade, then open.

Headless Chromium through the system's chromedriver (Debian: ``apt-get install
chromium chromium-driver``), set up as in test_browser.py; nothing is
downloaded. examples/simple_app is served on 127.0.0.1 in this process. Bob,
on the free plan, opens ``/pro`` (gated by plan) and ``/export`` (gated by
feature) and is sent to the pricing page; Stripe's webhooks of an upgrade are
then posted signed, as ``stripe trigger`` would; both pages open. A screenshot
of each step is saved under $TEST_ARTIFACTS_DIR/test_browser_gate (default:
the test's tmp_path).

Skipped when Chromium or chromedriver is missing, failed instead under
REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from browser_support import Screens, ServedApp  # first: it puts the examples on the path
from support import checkout_event, subscription_event

with contextlib.suppress(ImportError):  # without selenium, require_browser skips these tests
    from selenium.webdriver.common.by import By

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("require_browser")]

BOB = 2  # the example's second user: free, no Stripe customer yet


@pytest.fixture
def example(served_example: ServedApp) -> ServedApp:
    """The example app served on 127.0.0.1 (browser_support), on a fresh SQLite file."""
    return served_example


def page(driver: Any) -> tuple[str, str]:
    """The page's heading and its text."""
    heading: str = driver.find_element(By.TAG_NAME, "h1").text
    body: str = driver.find_element(By.TAG_NAME, "body").text
    return heading, body


def test_gated_pages_refuse_bob_until_a_signed_upgrade_then_open(
    example: ServedApp, driver: Any, artifacts: Path
) -> None:
    screens = Screens(driver, artifacts)
    base = example.base_url
    try:
        # Bob, on the free plan, asks for the page gated by plan: sent to pricing.
        driver.get(f"{base}/pro?as={BOB}")
        assert driver.current_url == f"{base}/pricing"
        heading, body = page(driver)
        assert heading == "Pricing"
        assert "Acting as bob@example.com (free)" in body
        screens.save("pro-refused")

        # And the page gated by feature (STRIPE_BILLING_FEATURES = {"pro": ["export"]}).
        driver.get(f"{base}/export")
        assert driver.current_url == f"{base}/pricing"
        screens.save("export-refused")

        # Stripe's webhooks of bob's upgrade, signed: the Checkout session completes
        # (it links bob to his new customer), then the subscription is updated.
        completed = checkout_event(
            customer="cus_bob", subscription="sub_bob", client_reference_id=str(BOB)
        )
        updated = subscription_event(customer="cus_bob", subscription="sub_bob", status="active")
        assert example.post_webhook(completed) == (200, {"received": True})
        assert example.post_webhook(updated) == (200, {"received": True})
        bob = example.user(BOB)
        assert (bob["plan"], bob["subscription_status"]) == ("pro", "active")

        # The same browser, the same pages: both open now.
        driver.get(f"{base}/export")
        assert driver.current_url == f"{base}/export"
        heading, body = page(driver)
        assert heading == "Export"
        assert "Your pro plan includes exports, bob@example.com." in body
        screens.save("export-open")

        driver.get(f"{base}/pro")
        assert driver.current_url == f"{base}/pro"
        heading, body = page(driver)
        assert heading == "Pro"
        assert "Welcome, bob@example.com: everything here is for pro users." in body
        screens.save("pro-open")
    except BaseException:
        with contextlib.suppress(Exception):  # the browser may be what failed
            screens.save("failure")
            (artifacts / "failure.html").write_text(driver.page_source)
        raise
    assert [path.name for path in screens.saved] == [
        "1-pro-refused.png",
        "2-export-refused.png",
        "3-export-open.png",
        "4-pro-open.png",
    ]
    assert all(path.stat().st_size > 1000 for path in screens.saved)
