"""The operations page in a real browser: a failed event replayed from the page, an
unmatched one linked to its account and applied, and the page refused to a non-admin.

examples/simple_app (which mounts the page behind its own admin check: alice) is served
on 127.0.0.1 in this process; Stripe's events are sent signed by the test, as Stripe
would. Headless Chromium through the system's chromedriver; a screenshot of each step
goes to $TEST_ARTIFACTS_DIR/test_browser_admin (default: the test's tmp_path). Skipped
without Chromium, failed instead under REQUIRE_BROWSER=1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser_support import WAIT, Screens, ServedApp  # first: it puts the examples on the path
from simple_app.app import billing
from support import NOW, subscription_event

from flask_stripe_billing import BillingAccount

try:
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # require_browser skips (or fails) these tests
    pass

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("require_browser")]

ALICE, BOB = 1, 2  # the example's users: alice (the admin, cus_demo_alice), bob (no customer)


def wait_for(driver: Any, selector: str, text: str) -> None:
    """Wait until the loaded page's ``selector`` element contains ``text``."""
    script = (
        "const e = document.querySelector(arguments[0]);"
        "return document.readyState === 'complete' && e ? e.textContent : null;"
    )
    wait = WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,))
    try:
        wait.until(lambda d: text in (d.execute_script(script, selector) or ""))
    except TimeoutException:
        found = driver.execute_script(script, selector)
        pytest.fail(f"no {text!r} in {selector} on {driver.current_url}: {found!r}", pytrace=False)


def text_of(driver: Any, element_id: str) -> str:
    value: str = driver.find_element(By.ID, element_id).text
    return value


def test_a_failed_event_is_replayed_and_an_unmatched_one_linked_from_the_page(
    served_example: ServedApp, driver: Any, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screens = Screens(driver, artifacts)
    served = served_example
    base = served.base_url
    admin = f"{base}/billing/admin"
    # A bug in the deployed release: writing an account raises, so alice's event fails.
    store = billing.user_store
    real_write = store.write_outcome  # type: ignore[union-attr]

    def buggy_write(**outcome: Any) -> BillingAccount | None:
        if outcome["changes"] or outcome["records"]:
            raise RuntimeError("bug in the deployed release")
        return real_write(**outcome)

    monkeypatch.setattr(store, "write_outcome", buggy_write)
    alices = subscription_event(customer="cus_demo_alice", event_id="evt_alice_paid", created=NOW)
    assert served.post_webhook(alices) == (200, {"received": True})
    monkeypatch.undo()  # the fix is deployed
    # Bob paid through a Payment Link whose customer no account has yet.
    bobs = subscription_event(customer="cus_bob_link", subscription="sub_bob", event_id="evt_bob")
    assert served.post_webhook(bobs) == (200, {"received": True})
    assert served.user(ALICE)["plan"] == served.user(BOB)["plan"] == "free"
    with screens.kept_on_failure():
        # Bob is no admin: the page is refused.
        driver.get(f"{base}/?as={BOB}")
        driver.get(f"{admin}/")
        wait_for(driver, "h1", "Forbidden")
        assert "evt_alice_paid" not in driver.page_source
        screens.save("refused-to-bob")

        # Alice, the admin, opens the failed events.
        driver.get(f"{base}/?as={ALICE}")
        driver.get(f"{admin}/?status=failed")
        wait_for(driver, "h1", "Event log")
        rows = driver.find_elements(By.CSS_SELECTOR, "#events tbody tr")
        assert [row.find_element(By.TAG_NAME, "a").text for row in rows] == ["evt_alice_paid"]
        screens.save("failed-events")

        driver.find_element(By.LINK_TEXT, "evt_alice_paid").click()
        wait_for(driver, "h1", "Event evt_alice_paid")
        assert text_of(driver, "event-error") == "RuntimeError: bug in the deployed release"
        assert '"customer": "cus_demo_alice"' in text_of(driver, "payload")
        screens.save("failed-event")

        driver.find_element(By.ID, "replay").click()
        wait_for(driver, "#message", "Replayed evt_alice_paid: processed.")
        assert text_of(driver, "status") == "processed"
        assert text_of(driver, "error") == ""
        assert served.user(ALICE)["plan"] == "pro"
        screens.save("replayed")

        # Bob's unmatched event: linked to bob's account from its page, and applied.
        driver.get(f"{admin}/?status=unmatched")
        wait_for(driver, "h1", "Event log")
        driver.find_element(By.LINK_TEXT, "evt_bob").click()
        wait_for(driver, "h1", "Event evt_bob")
        assert "cus_bob_link (no account)" in driver.page_source
        driver.find_element(By.ID, "link-user").send_keys(str(BOB))
        screens.save("unmatched-event")

        driver.find_element(By.ID, "link").click()
        wait_for(driver, "#message", "Linked user 2 to customer cus_bob_link (was none).")
        assert text_of(driver, "message") == (
            "Linked user 2 to customer cus_bob_link (was none). "
            "Replayed its waiting events: 1 event: 1 processed."
        )
        assert text_of(driver, "plan") == "pro"
        timeline = driver.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
        assert [row.find_element(By.TAG_NAME, "a").text for row in timeline] == ["evt_bob"]
        bob = served.user(BOB)
        assert (bob["plan"], bob["stripe_customer_id"]) == ("pro", "cus_bob_link")
        screens.save("linked-account")
    assert [path.name for path in screens.saved] == [
        "1-refused-to-bob.png",
        "2-failed-events.png",
        "3-failed-event.png",
        "4-replayed.png",
        "5-unmatched-event.png",
        "6-linked-account.png",
    ]
