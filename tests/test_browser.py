"""The example app in a real browser: Upgrade → Checkout → signed webhook → the Pro page;
and the settings page: cancel, resume, preview and switch the plan.

Headless Chromium, driven by Selenium through the system's chromedriver
(Debian: ``apt-get install chromium chromium-driver``); nothing is downloaded.
examples/simple_app is served on 127.0.0.1 in this process, with Stripe's API
mocked by responses: the Checkout session it creates points at a fake
Checkout page served by the same app for this test. The webhook is sent by the
test, signed, as ``stripe trigger`` would. A screenshot of each step is saved
under $TEST_ARTIFACTS_DIR (default: the test's tmp_path).

Skipped when Chromium or chromedriver is missing, failed instead under
REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from browser_support import (  # first: it puts the examples on the path
    OPENER,
    WAIT,
    Screens,
    ServedApp,
)
from flask import Blueprint, Flask, abort, redirect, render_template_string
from simple_app.app import create_app, db
from support import NOW, checkout_event, envelope, load
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from flask_stripe_billing import signals

try:
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # require_browser skips (or fails) these tests
    pass

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("require_browser")]


API = "https://api.stripe.com/v1"
API_KEY = "sk_test_51BrowserTestKey00000000"
BOB = 2  # the example's second user: no Stripe customer yet
CUSTOMER = load("stripe-openapi/customer.json")
SESSION = load(
    "api-objects/pay-rails-vcr__2026-03-25.dahlia__checkout.session.mode_subscription.open.json"
)
ENVIRONMENT = (
    "STRIPE_API_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_PRICE_PRO_MONTHLY",
    "STRIPE_PRICE_PRO_YEARLY",
    "STRIPE_SUCCESS_URL",
    "STRIPE_CANCEL_URL",
    "STRIPE_PORTAL_RETURN_URL",
    "STRIPE_BILLING_PLANS",
    "PRO_PLAN_NAME",
    "SECRET_KEY",
    "DATABASE_URL",
)

FAKE_CHECKOUT_PAGE = """<!doctype html>
<title>Fake Stripe Checkout</title>
<h1>Fake Stripe Checkout</h1>
<p>Test only: stands in for checkout.stripe.com.</p>
<p>Session <code id="session">{{ session.id }}</code>, customer {{ session.customer }}.</p>
<p>Subscribe to <b id="price">{{ session.metadata.price_id }}</b>
  for user {{ session.client_reference_id }}.</p>
<form method="post" action="{{ url_for('fake_checkout.pay', session_id=session.id) }}">
  <button id="pay">Pay</button>
</form>
<p><a href="{{ session.cancel_url }}">Back</a></p>
"""


@dataclass
class FakeStripe:
    """Stripe's API (through responses) and its Checkout page, for the app at ``base_url``."""

    base_url: str
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def mock_api(self, mock: responses.RequestsMock) -> None:
        mock.add(responses.POST, f"{API}/customers", json=CUSTOMER)
        mock.add_callback(responses.POST, f"{API}/checkout/sessions", callback=self.create)
        mock.add_callback(
            responses.GET,
            re.compile(rf"{re.escape(API)}/checkout/sessions/cs_\w+"),
            callback=self.retrieve,
        )

    def create(self, request: Any) -> tuple[int, dict[str, str], str]:
        """``POST /v1/checkout/sessions``: an open session whose url is the fake page."""
        sent = {key: values[0] for key, values in parse_qs(request.body).items()}
        session_id = f"cs_test_browser_{next(self._numbers)}"
        session = copy.deepcopy(SESSION) | {
            "id": session_id,
            "url": f"{self.base_url}/fake-checkout/{session_id}",
            "customer": sent["customer"],
            "client_reference_id": sent["client_reference_id"],
            "metadata": {
                "user_id": sent["metadata[user_id]"],
                "price_id": sent["metadata[price_id]"],
            },
            "success_url": sent["success_url"],
            "cancel_url": sent["cancel_url"],
            "status": "open",
            "payment_status": "unpaid",
            "subscription": None,
        }
        self.sessions[session_id] = session
        return 200, {"Request-Id": "req_browser"}, json.dumps(session)

    def retrieve(self, request: Any) -> tuple[int, dict[str, str], str]:
        """``GET /v1/checkout/sessions/<id>``: the session as it is now."""
        session = self.sessions.get(request.path_url.rsplit("/", 1)[-1].split("?")[0])
        if session is None:
            return 404, {}, json.dumps({"error": {"type": "invalid_request_error"}})
        return 200, {"Request-Id": "req_browser"}, json.dumps(session)

    def checkout_pages(self) -> Blueprint:
        """The fake checkout.stripe.com: shows a session; Pay completes it and goes back."""
        pages = Blueprint("fake_checkout", __name__, url_prefix="/fake-checkout")

        @pages.get("/<session_id>")
        def show(session_id: str) -> str:
            session = self.sessions.get(session_id) or abort(404)
            return render_template_string(FAKE_CHECKOUT_PAGE, session=session)

        @pages.post("/<session_id>/pay")
        def pay(session_id: str) -> Response:
            session = self.sessions.get(session_id) or abort(404)
            session.update(status="complete", payment_status="paid", subscription="sub_bob")
            return redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))

        return pages


@dataclass
class ServedExample(ServedApp):
    """examples/simple_app on 127.0.0.1 with a fake Stripe; what it signalled."""

    stripe: FakeStripe = field(kw_only=True)
    api_calls: responses.RequestsMock = field(kw_only=True)
    plan_changes: list[dict[str, Any]] = field(default_factory=list)

    def status(self, path: str, cookies: list[dict[str, Any]]) -> int:
        """The HTTP status of a GET with the browser's cookies (which a page does not show)."""
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in cookies)
        request = urllib.request.Request(f"{self.base_url}{path}", headers={"Cookie": cookie})
        try:
            with OPENER.open(request, timeout=WAIT) as answer:
                status: int = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        return status


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedExample]:
    """The example app in a werkzeug server thread; Stripe's API mocked in this process."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    served: dict[str, Flask] = {}
    # Bind first: the app's Checkout URLs need the port, and the app reads them at set-up.
    server = make_server(
        "127.0.0.1", 0, lambda environ, start: served["app"](environ, start), threaded=True
    )
    base_url = f"http://127.0.0.1:{server.server_port}"
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'browser.db'}",
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_PRICE_PRO_MONTHLY": "price_monthly",
            "STRIPE_PRICE_PRO_YEARLY": "price_yearly",
            "STRIPE_SUCCESS_URL": base_url + "/billing/success?session_id={CHECKOUT_SESSION_ID}",
            "STRIPE_CANCEL_URL": base_url + "/pricing",
            "STRIPE_BILLING_PLANS": {"price_monthly": "pro", "price_yearly": "pro-yearly"},
        }
    )
    stripe = FakeStripe(base_url)
    app.register_blueprint(stripe.checkout_pages())  # for this test only
    served["app"] = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        stripe.mock_api(mock)
        example = ServedExample(base_url, app, stripe=stripe, api_calls=mock)

        def record(sender: Flask, **kwargs: Any) -> None:
            example.plan_changes.append(kwargs)

        signals.plan_changed.connect(record, sender=app)
        thread.start()
        try:
            yield example
        finally:
            server.shutdown()
            thread.join(WAIT)
            server.server_close()
            signals.plan_changed.disconnect(record, sender=app)
            with app.app_context():
                db.engine.dispose()


def heading(driver: Any) -> str:
    text: str = driver.find_element(By.TAG_NAME, "h1").text
    return text


#: The loaded page's heading and error message, read in one step (no element
#: references that a navigation could invalidate in between); null while loading.
PAGE_STATE = """
const text = (selector) => (document.querySelector(selector) || {}).textContent || "";
return document.readyState === "complete" ? [text("h1"), text("#error")] : null;
"""


def wait_for_page(driver: Any, title: str, *, or_error: bool = False) -> None:
    """Wait until the page headed ``title`` has loaded (or, with ``or_error``, an error shows)."""

    def arrived(driver: Any) -> bool:
        state = driver.execute_script(PAGE_STATE)
        return bool(state) and (state[0] == title or (or_error and bool(state[1])))

    # Retried, not failed, while the page is being replaced under the script.
    wait = WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,))
    try:
        wait.until(arrived)
    except TimeoutException:
        pytest.fail(f"no page {title!r} after {WAIT} s; on {driver.current_url}", pytrace=False)


def test_upgrade_in_the_browser_then_the_webhook_makes_bob_pro(
    example: ServedExample, driver: Any, artifacts: Path
) -> None:
    screens = Screens(driver, artifacts)
    base = example.base_url
    try:
        # Bob, on the free plan, opens the pricing page.
        driver.get(f"{base}/pricing?as={BOB}")
        assert heading(driver) == "Pricing"
        assert "Acting as bob@example.com (free)" in driver.find_element(By.TAG_NAME, "p").text
        screens.save("pricing")

        # "Upgrade to Pro — monthly": the page POSTs to /billing/checkout-session and goes
        # to the url it answers: (fake) Checkout.
        button = driver.find_element(By.XPATH, "//button[text()='Upgrade to Pro — monthly']")
        button.click()
        wait_for_page(driver, "Fake Stripe Checkout", or_error=True)
        assert heading(driver) == "Fake Stripe Checkout", driver.find_element(By.ID, "error").text
        (session,) = example.stripe.sessions.values()
        assert driver.current_url == session["url"]
        assert driver.find_element(By.ID, "session").text == session["id"]
        assert driver.find_element(By.ID, "price").text == "price_monthly"
        assert (session["client_reference_id"], session["customer"]) == (str(BOB), CUSTOMER["id"])
        assert example.user(BOB)["stripe_customer_id"] == CUSTOMER["id"]  # stored before Checkout
        screens.save("fake-checkout")

        # Before Stripe's webhook, bob is still free: the /pro gate sends him to pricing.
        driver.get(f"{base}/pro")
        assert heading(driver) == "Pricing"
        assert driver.current_url == f"{base}/pricing"
        screens.save("pro-before-webhook")

        # Stripe sends checkout.session.completed for bob's session, signed.
        event = checkout_event(
            customer=session["customer"],
            subscription="sub_bob",
            client_reference_id=str(BOB),
            metadata=session["metadata"],
        )
        event["data"]["object"]["id"] = session["id"]
        assert example.post_webhook(event) == (200, {"received": True})
        bob = example.user(BOB)
        assert (bob["plan"], bob["subscription_status"]) == ("pro", "active")

        driver.get(f"{base}/pro")
        assert heading(driver) == "Pro"
        assert "Welcome, bob@example.com: everything here is for pro users." in driver.page_source
        assert example.status("/pro", driver.get_cookies()) == 200
        screens.save("pro-after-webhook")

        # Bob finishes on Checkout and comes back: the extension's success route syncs the
        # session from Stripe's API, which changes nothing more (the webhook was first), and
        # sends him to his account page with a flash message.
        driver.get(session["url"])
        driver.find_element(By.ID, "pay").click()
        wait_for_page(driver, "Account")
        assert driver.current_url == f"{base}/account"
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "Thank you! You are now on the pro plan." in body
        assert driver.find_element(By.CLASS_NAME, "stripe-billing-plan").text == "pro"
        screens.save("success")
        retrieved = [call for call in example.api_calls.calls if call.request.method == "GET"]
        assert [call.request.path_url.split("?")[0] for call in retrieved] == [
            f"/v1/checkout/sessions/{session['id']}"
        ]
        assert [(c["old_plan"], c["new_plan"]) for c in example.plan_changes] == [("free", "pro")]
    except BaseException:
        with contextlib.suppress(Exception):  # the browser may be what failed
            screens.save("failure")
            (artifacts / "failure.html").write_text(driver.page_source)
        raise
    assert [path.name for path in screens.saved] == [
        "1-pricing.png",
        "2-fake-checkout.png",
        "3-pro-before-webhook.png",
        "4-pro-after-webhook.png",
        "5-success.png",
    ]


ALICE = 1  # the example's first user: customer cus_demo_alice
#: Alice's subscription as Stripe's API answers it (a real recorded answer, API 2025-10-29).
ALICES_SUBSCRIPTION = load(
    "api-objects/pay-rails-vcr__2025-10-29.clover__subscription.active.before_price_swap.json"
)
PREVIEW = load("stripe-openapi/invoice.json")


@dataclass
class FakeSubscription:
    """One subscription at (fake) Stripe: read, changed by the form fields sent, previewed."""

    obj: dict[str, Any]

    def mock_api(self, mock: responses.RequestsMock) -> None:
        url = f"{API}/subscriptions/{self.obj['id']}"
        mock.add_callback(responses.GET, url, callback=self.read)
        mock.add_callback(responses.POST, url, callback=self.update)
        mock.add(responses.POST, f"{API}/invoices/create_preview", json=PREVIEW)

    def read(self, request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {}, json.dumps(self.obj)

    def update(self, request: Any) -> tuple[int, dict[str, str], str]:
        """``POST /v1/subscriptions/<id>``: cancel_at_period_end, or the item's new price."""
        sent = {key: values[0] for key, values in parse_qs(request.body).items()}
        item = self.obj["items"]["data"][0]
        if "cancel_at_period_end" in sent:
            ending = sent["cancel_at_period_end"] == "true"
            self.obj["cancel_at_period_end"] = ending
            self.obj["cancel_at"] = item["current_period_end"] if ending else None
        if "items[0][price]" in sent:
            assert sent["items[0][id]"] == item["id"]
            item["price"]["id"] = item["plan"]["id"] = sent["items[0][price]"]
        return 200, {"Date": formatdate(usegmt=True)}, json.dumps(self.obj)


def click_and_wait(driver: Any, element_id: str, message: str) -> None:
    """Click a button whose route reloads the page, then wait for the page's message."""
    driver.find_element(By.ID, element_id).click()
    try:
        WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,)).until(
            lambda d: (
                d.execute_script(
                    "const m = document.getElementById('message');"
                    "const e = document.getElementById('error');"
                    "return document.readyState === 'complete' && m && e"
                    " ? m.textContent + '|' + e.textContent : null;"
                )
                in (f"{message}|",)
                or bool(d.find_element(By.ID, "error").text)
            )
        )
    except TimeoutException:
        pytest.fail(f"no {message!r} after clicking #{element_id}", pytrace=False)
    assert driver.find_element(By.ID, "error").text == ""
    assert driver.find_element(By.ID, "message").text == message


def test_the_settings_page_cancels_resumes_and_switches_the_plan(
    example: ServedExample, driver: Any, artifacts: Path
) -> None:
    screens = Screens(driver, artifacts)
    base = example.base_url
    fake = FakeSubscription(copy.deepcopy(ALICES_SUBSCRIPTION))
    fake.obj["customer"] = "cus_demo_alice"
    item = fake.obj["items"]["data"][0]
    item["price"]["id"] = item["plan"]["id"] = "price_monthly"
    fake.mock_api(example.api_calls)
    subscribed = envelope(
        "customer.subscription.updated",
        copy.deepcopy(fake.obj),
        created=NOW - 600,
        api_version="2025-10-29.clover",
    )
    assert example.post_webhook(subscribed) == (200, {"received": True})
    try:
        # Alice, on pro monthly, opens her settings page.
        driver.get(f"{base}/settings?as={ALICE}")
        assert heading(driver) == "Settings"
        assert driver.find_element(By.ID, "plan").text == "pro"
        assert driver.find_element(By.ID, "status").text == "active"
        screens.save("settings")

        # Cancel at the end of the period: the plan stays, the page offers to resume.
        click_and_wait(driver, "cancel", "Done: cancel.")
        assert driver.find_element(By.ID, "plan").text == "pro"
        assert driver.find_elements(By.ID, "resume")
        assert example.user(ALICE)["cancel_at_period_end"] is True
        screens.save("cancelled")

        # Resume: renews again.
        click_and_wait(driver, "resume", "Done: resume.")
        assert driver.find_elements(By.ID, "cancel")
        assert example.user(ALICE)["cancel_at_period_end"] is False
        screens.save("resumed")

        # Switch to yearly: first Stripe's preview, then the switch now.
        driver.find_element(By.CSS_SELECTOR, "#interval option[value=yearly]").click()
        driver.find_element(By.ID, "preview").click()
        WebDriverWait(driver, WAIT).until(
            lambda d: (
                d.find_element(By.ID, "preview-result").text or d.find_element(By.ID, "error").text
            )
        )
        assert driver.find_element(By.ID, "error").text == ""
        assert driver.find_element(By.ID, "preview-result").text == (
            "Switching now: your next invoice is 10.00 USD."
        )
        screens.save("preview")
        click_and_wait(driver, "switch-now", "Done: change plan.")
        assert driver.find_element(By.ID, "plan").text == "pro-yearly"
        assert example.user(ALICE)["plan"] == "pro-yearly"
        screens.save("switched")

        posts = [
            (call.request.path_url, parse_qs(call.request.body))
            for call in example.api_calls.calls
            if call.request.method == "POST"
        ]
        subscription_path = f"/v1/subscriptions/{fake.obj['id']}"
        assert [path for path, _ in posts] == [
            subscription_path,
            subscription_path,
            "/v1/invoices/create_preview",
            subscription_path,
        ]
        assert posts[0][1] == {"cancel_at_period_end": ["true"]}
        assert posts[1][1] == {"cancel_at_period_end": ["false"]}
        assert posts[3][1]["items[0][price]"] == ["price_yearly"]
        assert [(c["old_plan"], c["new_plan"]) for c in example.plan_changes] == [
            ("free", "pro"),
            ("pro", "pro-yearly"),
        ]
    except BaseException:
        with contextlib.suppress(Exception):
            screens.save("failure")
            (artifacts / "failure.html").write_text(driver.page_source)
        raise
    assert len(screens.saved) == 5
