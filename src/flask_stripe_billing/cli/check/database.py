"""Whether the library's own tables exist: what an upgrade whose migration has not run
yet lacks, named by ``flask billing check``."""

from __future__ import annotations

from ...state import BillingState
from ...stores.base import ENTITLEMENTS_TABLE, SUBSCRIPTIONS_TABLE, TableInspection
from .findings import Finding


def check_library_tables(state: BillingState) -> list[Finding]:
    """A finding for each of the library's other tables that is missing (an upgrade whose
    migration has not run): subscription records (a problem), entitlements (a warning).

    Only a log that can tell (:class:`TableInspection`) is asked; one that cannot
    tell, or a database that does not answer (the event log's check reports it),
    gives no finding.
    """
    kinds = (
        (state.subscription_log, SUBSCRIPTIONS_TABLE, "subscription records", True),
        (state.entitlement_log, ENTITLEMENTS_TABLE, "entitlements", False),
    )
    found: list[Finding] = []
    for log, kind, subject, required in kinds:
        if not isinstance(log, TableInspection):
            continue
        name = log.library_tables()[kind]
        try:
            missing = log.missing_tables()
        except Exception:
            continue
        if name not in missing:
            continue
        fails = "subscription events fail" if required else "entitlement summaries fail"
        found.append(
            Finding(
                "missing" if required else "warning",
                subject,
                f"table {name} does not exist: {log.create_tables_hint()} ({fails} until then)",
                problem=required,
            )
        )
    return found
