"""One line of ``flask billing check``: what was looked at, its state, what it means."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One line of the check: what was looked at, its state and what that means."""

    #: set, default, missing, invalid, ok, warning or failed.
    state: str
    subject: str
    detail: str = ""
    #: Whether this stops the webhook (or the online check) from working: exit code 1.
    problem: bool = False
