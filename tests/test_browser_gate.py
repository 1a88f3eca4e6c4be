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
import json
import os
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from support import checkout_event, sign, subscription_event
from werkzeug.serving import make_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from simple_app.app import DEMO_WEBHOOK_SECRET, create_app, db  # noqa: E402

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:  # reported by the fixture below: skipped, or failed under REQUIRE_BROWSER=1
    webdriver = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Without these, Chromium in a container without internet stalls on its own connections.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--window-size=1000,700",
)
WAIT = 10  # seconds, for any one step
BOB = 2  # the example's second user: free, no Stripe customer yet
#: 127.0.0.1 only: never through an HTTP proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def browser_missing() -> str | None:
    """Why this machine cannot run the browser test, or None."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        return (
            f"needs Chromium and chromedriver: {' and '.join(missing)} not found "
            "(Debian: apt-get install chromium chromium-driver)"
        )
    if webdriver is None:
        return "needs selenium (pip install -e '.[test]')"
    return None


@pytest.fixture(autouse=True)
def _require_browser() -> None:
    """Skip without a browser; fail instead under REQUIRE_BROWSER=1. Runs before the others."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but this test {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where the screenshots go: $TEST_ARTIFACTS_DIR/test_browser_gate, else tmp_path."""
    configured = os.environ.get("TEST_ARTIFACTS_DIR")
    folder = Path(configured) / "test_browser_gate" if configured else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Served:
    """examples/simple_app on 127.0.0.1, and the webhook Stripe would call."""

    base_url: str
    app: Flask

    def post_webhook(self, event: dict[str, Any]) -> tuple[int, Any]:
        """POST a signed event over HTTP, with the example's webhook secret."""
        body = json.dumps(event).encode()
        request = urllib.request.Request(
            f"{self.base_url}/stripe/webhook",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign(body, DEMO_WEBHOOK_SECRET),
            },
            method="POST",
        )
        with OPENER.open(request, timeout=WAIT) as answer:
            return answer.status, json.loads(answer.read())

    def user(self, user_id: int) -> dict[str, Any]:
        with OPENER.open(f"{self.base_url}/users/{user_id}", timeout=WAIT) as answer:
            data: dict[str, Any] = json.loads(answer.read())
            return data


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """The example app in a werkzeug server thread, on a fresh SQLite file."""
    for name in ("STRIPE_WEBHOOK_SECRET", "SECRET_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'gate.db'}"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        thread.join(WAIT)
        server.server_close()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def driver(artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Chromium through /usr/bin/chromedriver; never anything downloaded."""
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile.name}"):
        options.add_argument(flag)
    service = Service(str(CHROMEDRIVER), log_output=str(artifacts / "chromedriver.log"))
    chrome = webdriver.Chrome(options=options, service=service)
    chrome.set_page_load_timeout(WAIT)
    try:
        yield chrome
    finally:
        chrome.quit()
        profile.cleanup()


@dataclass
class Screens:
    """Screenshots of each step, numbered in order, in the artefacts folder."""

    driver: Any
    folder: Path
    saved: list[Path] = field(default_factory=list)

    def save(self, name: str) -> None:
        path = self.folder / f"{len(self.saved) + 1}-{name}.png"
        assert self.driver.save_screenshot(str(path)), f"no screenshot {path}"
        self.saved.append(path)


def page(driver: Any) -> tuple[str, str]:
    """The page's heading and its text."""
    heading: str = driver.find_element(By.TAG_NAME, "h1").text
    body: str = driver.find_element(By.TAG_NAME, "body").text
    return heading, body


def test_gated_pages_refuse_bob_until_a_signed_upgrade_then_open(
    example: Served, driver: Any, artifacts: Path
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
