"""Whether the library's own tables and the host's billing columns exist: what an upgrade
whose migration has not run yet lacks, named by ``flask billing check``."""

from __future__ import annotations

from ...state import BillingState
from ...stores.base import (
    ENTITLEMENTS_TABLE,
    EVENTS_TABLE,
    SUBSCRIPTIONS_TABLE,
    SchemaInspection,
    TableInspection,
)
from ...stores.tables import USERS, SchemaGap
from .findings import Finding

#: What each library table keeps, as the check names it.
SUBJECTS = {SUBSCRIPTIONS_TABLE: "subscription records", ENTITLEMENTS_TABLE: "entitlements"}


def check_library_tables(state: BillingState) -> list[Finding]:
    """A finding for each of the library's other tables, and each billing column, that is
    missing (an upgrade whose migration has not run).

    A store that can tell it all (:class:`SchemaInspection`, as the shipped ones) gets a
    problem for each, naming the release that added it and the command that adds it: the
    webhooks answer 503 until then. One that tells tables only (:class:`TableInspection`):
    subscription records (a problem), entitlements (a warning). One that cannot tell, or a
    database that does not answer (the event log's check reports it), gives no finding.
    """
    inspecting = (
        store
        for store in (state.user_store, state.event_log)
        if isinstance(store, SchemaInspection)
    )
    inspection = next(inspecting, None)
    if inspection is not None:
        try:
            gaps = inspection.schema_gaps()
        except Exception:
            return []
        return [_gap(gap, inspection.upgrade_command()) for gap in gaps if gap.kind != EVENTS_TABLE]
    kinds = (
        (state.subscription_log, SUBSCRIPTIONS_TABLE, True),
        (state.entitlement_log, ENTITLEMENTS_TABLE, False),
    )
    found: list[Finding] = []
    for log, kind, required in kinds:
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
                SUBJECTS[kind],
                f"table {name} does not exist: {log.create_tables_hint()} ({fails} until then)",
                problem=required,
            )
        )
    return found


def _gap(gap: SchemaGap, command: str) -> Finding:
    """``missing  billing columns  column users.trial_end does not exist (added in …): run …``."""
    subject = "billing columns" if gap.kind == USERS else SUBJECTS.get(gap.kind, gap.kind)
    what = "table" if gap.column is None else "column"
    return Finding(
        "missing",
        subject,
        f"{what} {gap.name} does not exist (added in {gap.added}): run {command} "
        "(the webhooks answer 503 until then)",
        problem=True,
    )
