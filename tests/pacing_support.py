"""A clock for an app's pace of Stripe calls that moves only when the pace waits: tests
measure the pace and the deadlines by it, never by the wall clock."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import responses
from conftest import Host

from flask_stripe_billing.state import get_state


class FakeClock:
    """Seconds that pass only when someone sleeps; notes when each request went out."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sent: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds

    def answer(
        self, status: int, body: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        """A ``responses`` callback's answer, with the time the request was sent noted."""
        self.sent.append(self.now)
        return status, headers or {}, body


def fake_clock(host: Host, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Put the host's pace of Stripe calls (and their deadlines) on a fake clock."""
    pacer = get_state(host.app).require_stripe().pacer
    fake = FakeClock()
    monkeypatch.setattr(pacer, "clock", fake.clock)
    monkeypatch.setattr(pacer, "sleep", fake.sleep)
    return fake


def gaps(times: list[float]) -> list[float]:
    """Seconds between one request and the next."""
    return [round(later - earlier, 6) for earlier, later in itertools.pairwise(times)]


def calls_to(mock: responses.RequestsMock, fragment: str) -> list[Any]:
    """The requests sent to URLs containing ``fragment``."""
    return [call for call in mock.calls if fragment in call.request.url]
