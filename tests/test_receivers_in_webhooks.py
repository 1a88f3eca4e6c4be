"""What a signal receiver's ``app.logger.info`` and ``flash`` do during a webhook: the
log line is emitted (once the app's logger is set to INFO); a flash goes into the
session of Stripe's request, which no browser of the user ever reads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Host
from flask import Flask, flash, get_flashed_messages, session
from support import post_event, subscription_event

from flask_stripe_billing import signals


def test_a_receivers_logger_info_during_a_webhook_is_emitted(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    host.app.logger.setLevel(logging.INFO)  # what docs/signals.md says to configure

    def welcome(app: Flask, *, account: Any, new_plan: str, **extra: Any) -> None:
        app.logger.info("Welcome to %s, %s!", new_plan, account.email)

    with signals.plan_changed.connected_to(welcome, sender=host.app):
        answer = post_event(host.client, subscription_event())

    assert answer.status_code == 200
    logged = [
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == host.app.logger.name
    ]  # other receivers (an example app imported by another test) may log beside it
    assert logged.count((logging.INFO, "Welcome to pro, user1@example.com!")) == 1


def test_a_receivers_flash_during_a_webhook_never_reaches_the_users_browser(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"SECRET_KEY": "test"})
    host.add_user(1, stripe_customer_id="cus_test")
    host.app.add_url_rule("/messages", "messages", lambda: {"flashed": get_flashed_messages()})
    flashed_into: list[dict[str, Any]] = []

    def welcome(app: Flask, *, new_plan: str, **extra: Any) -> None:
        flash(f"Welcome to {new_plan}!")
        flashed_into.append(dict(session))  # the session of Stripe's request

    browser = host.app.test_client()
    browser.get("/messages")  # the user is on the site, with a session of their own
    stripe = host.app.test_client()
    with signals.plan_changed.connected_to(welcome, sender=host.app):
        answer = post_event(stripe, subscription_event())

    assert answer.status_code == 200
    assert host.user(1).plan == "pro"
    assert flashed_into == [{"_flashes": [("message", "Welcome to pro!")]}]
    assert browser.get("/messages").json == {"flashed": []}  # never shown to the user
    assert stripe.get("/messages").json == {"flashed": ["Welcome to pro!"]}  # Stripe's cookie
