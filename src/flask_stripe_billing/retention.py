"""How long the event log keeps each status: the policy ``flask billing prune`` applies.

Finished events (processed, ignored, stale) go after the days asked for. Events
still waiting for a replay (unmatched, failed, received) are kept longer, by
default 90 days, but not forever: past that, Stripe's own retries are long
over and the event can only be read in the Dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping

from .stores.base import FINAL_STATUSES, RETRYABLE_STATUSES

#: Days an unresolved event (unmatched, failed, received) is kept by default.
DEFAULT_UNRESOLVED_DAYS = 90


def retention_days(older_than: int, keep: Mapping[str, int]) -> dict[str, int]:
    """Days to keep each status: ``older_than`` for finished events, at least
    :data:`DEFAULT_UNRESOLVED_DAYS` for unresolved ones, then ``keep`` per status."""
    unresolved = max(DEFAULT_UNRESOLVED_DAYS, older_than)
    days = {status: older_than for status in FINAL_STATUSES}
    days |= {status: unresolved for status in RETRYABLE_STATUSES}
    unknown = set(keep) - set(days)
    if unknown:
        raise ValueError(f"no event status {', '.join(sorted(unknown))}")
    return dict(sorted((days | dict(keep)).items()))
