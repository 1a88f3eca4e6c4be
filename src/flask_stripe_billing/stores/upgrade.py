"""Whether the database has every table and column this release needs: asked once at
start-up, and again while something is missing (a migration may have run since)."""

from __future__ import annotations

import logging

from ..errors import SchemaOutdatedError
from ..redact import describe_error
from .base import EVENTS_TABLE, SchemaInspection
from .tables import USERS, SchemaGap

logger = logging.getLogger("flask_stripe_billing")


class SchemaWatch:
    """The database's gaps for one app's stores (a :class:`SchemaInspection`; a store
    without it is not inspected, and has none).

    What is missing is logged once, as one error naming each table and column, the
    release that added it and the command that adds it. Once nothing is missing, the
    database is not asked again.
    """

    def __init__(self, *stores: object) -> None:
        """Watch the first of ``stores`` that can tell (the account store, then the log)."""
        inspecting = (store for store in stores if isinstance(store, SchemaInspection))
        self._inspection: SchemaInspection | None = next(inspecting, None)
        self._current = self._inspection is None
        self._logged = False

    def start(self) -> None:
        """The start-up inspection. A new database (neither the event log nor the users
        table exists yet: ``db.create_all()`` or the first migration is still to come) is
        not logged at start-up; nor is one that cannot be asked."""
        gaps = self._inspect()
        kinds = {gap.kind for gap in gaps if gap.column is None}
        if gaps and not {EVENTS_TABLE, USERS} <= kinds:
            self._log(gaps)

    def gaps(self) -> tuple[SchemaGap, ...]:
        """What the database lacks now (logged, if not yet); nothing once all was there."""
        if self._current:
            return ()
        gaps = self._inspect()
        if gaps:
            self._log(gaps)
        return gaps

    def lacking(self, kind: str) -> str | None:
        """What the database lacks of the library table ``kind`` (the table, or columns of
        it), worded as the start-up error words it, with the command that adds it; None
        when it has all of it. For a page that shows what it can of the rest."""
        gaps = [gap for gap in self.gaps() if gap.kind == kind]
        if not gaps or self._inspection is None:
            return None
        described = "; ".join(gap.describe() for gap in gaps)
        return f"The database lacks {described}. Run {self._inspection.upgrade_command()}."

    def require(self) -> None:
        """Raise :class:`SchemaOutdatedError` (503) while the database lacks something."""
        gaps = self.gaps()
        if gaps and self._inspection is not None:
            missing = [gap.name for gap in gaps]
            raise SchemaOutdatedError(missing, self._inspection.upgrade_command())

    def _inspect(self) -> tuple[SchemaGap, ...]:
        """The store's gaps; none when the database cannot be asked (the request that
        needs it then says so)."""
        if self._inspection is None:
            return ()
        try:
            gaps = self._inspection.schema_gaps()
        except Exception as error:
            logger.debug("Schema not inspected: %s", describe_error(error))
            return ()
        self._current = not gaps
        return gaps

    def _log(self, gaps: tuple[SchemaGap, ...]) -> None:
        if self._logged or self._inspection is None:
            return
        self._logged = True
        command = self._inspection.upgrade_command()
        logger.error(
            "The database lacks what flask-stripe-billing needs: %s. Run %s. Until then the "
            "webhooks answer 503 and Stripe retries them (nothing is lost).",
            "; ".join(gap.describe() for gap in gaps),
            command,
            extra={"missing": [gap.name for gap in gaps], "command": command},
        )
