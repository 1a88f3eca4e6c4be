"""Headless Chromium for the browser tests, and the example app they drive.

Chromium and chromedriver are the system's (Debian: ``apt-get install chromium
chromium-driver``); nothing is downloaded. conftest.py loads this module as a plugin, so
its fixtures (``driver``, ``artifacts``, ``require_browser``) serve every test
module; a browser test module marks its tests ``usefixtures("require_browser")``:
without a browser they are skipped, or failed under ``REQUIRE_BROWSER=1``.
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
from support import sign

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from simple_app.app import DEMO_WEBHOOK_SECRET, create_app, db  # noqa: E402 (examples first)
from werkzeug.serving import make_server  # noqa: E402

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:  # reported by require_browser: skipped, or failed under REQUIRE_BROWSER=1
    webdriver = None  # type: ignore[assignment]

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
    "--no-proxy-server",  # 127.0.0.1 directly, whatever the environment's proxy
    "--window-size=1000,700",
)
WAIT = 10  # seconds, for any one step
#: 127.0.0.1 only: never through an HTTP proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def browser_missing() -> str | None:
    """Why this machine cannot run the browser tests, or None."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        return (
            f"needs Chromium and chromedriver: {' and '.join(missing)} not found "
            "(Debian: apt-get install chromium chromium-driver)"
        )
    if webdriver is None:
        return "needs selenium (pip install -e '.[test]')"
    return None


@pytest.fixture
def require_browser() -> None:
    """Skip without a browser; fail instead under REQUIRE_BROWSER=1."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but this test {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where the screenshots go: $TEST_ARTIFACTS_DIR/<test module>, else tmp_path."""
    configured = os.environ.get("TEST_ARTIFACTS_DIR")
    module = request.module.__name__.rsplit(".", 1)[-1]
    folder = Path(configured) / module if configured else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def driver(artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Chromium through /usr/bin/chromedriver, with a fresh profile."""
    # Selenium Manager is skipped when the driver's path is given; offline, in case it is not.
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

    @contextlib.contextmanager
    def kept_on_failure(self) -> Iterator[None]:
        """On a failure inside, save a last screenshot and the page's HTML, then re-raise."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # the browser may be what failed
                self.save("failure")
                (self.folder / "failure.html").write_text(self.driver.page_source)
            raise


@dataclass
class ServedApp:
    """examples/simple_app served on 127.0.0.1, and the webhook Stripe would call."""

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
        """A user's billing state, as the example's ``/users/<id>`` shows it."""
        with OPENER.open(f"{self.base_url}/users/{user_id}", timeout=WAIT) as answer:
            data: dict[str, Any] = json.loads(answer.read())
            return data


@pytest.fixture
def served_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedApp]:
    """examples/simple_app in a werkzeug server thread on 127.0.0.1, on a fresh SQLite file."""
    for name in ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "SECRET_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'example.db'}"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ServedApp(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        thread.join(WAIT)
        server.server_close()
        with app.app_context():
            db.engine.dispose()
