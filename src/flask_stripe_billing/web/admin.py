"""The operations page: an opt-in blueprint for the people on support duty.

The event log (filtered, paged by keyset), an event's detail (its payload with
secrets and card numbers masked), an account's subscription records,
entitlements, usage and timeline, and four actions: replay an event, replay all that
wait, link a customer to an account, sync an account from Stripe. Each action
calls the function the CLI calls (the pipeline's replay, the link action, the
sync action); none does the work itself.

Access only through the host's permission check (``admin_required`` or the
``STRIPE_BILLING_ADMIN`` setting): without one the blueprint refuses to register.
Actions are POST forms, checked like the checkout forms (:func:`.checkout.ensure_own_site`,
and Flask-WTF's token when ``CSRFProtect`` is on).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from flask.sansio.app import App
from werkzeug.wrappers import Response

from ..actions.link import link_customer
from ..actions.sync import sync_customer, sync_features
from ..core.account import BillingAccount, SubscriptionRecord
from ..core.outcomes import FINAL_STATUSES, RETRYABLE_STATUSES, EventStatus, Outcome
from ..core.usage import UsageStatus
from ..errors import BillingError, NotFoundError, ValidationError
from ..pipeline import intake
from ..redact import mask, redact_json
from ..state import EXTENSION_KEY, BillingState, app_object, get_state
from ..stores.base import (
    ENTITLEMENTS_TABLE,
    PURCHASES_TABLE,
    SUBSCRIPTIONS_TABLE,
    USAGE_TABLE,
    EventCursor,
    EventPaging,
    EventRecord,
)
from ..stores.tables import USERS
from .checkout import ensure_own_site
from .http import DEFAULT_ANSWER, HTTP_ANSWERS

#: The host's permission check, called for every request to the page: truthy lets the
#: caller in; a response (say, a redirect to the login) is the answer instead.
AdminCheck = Callable[[], object]


#: The setting that may hold the permission check instead of ``admin_required=``.
ADMIN_SETTING = "STRIPE_BILLING_ADMIN"


#: Where each app keeps its admin blueprints' checks: ``app.extensions[...][name]``.
ADMIN_KEY = "stripe_billing_admin"


#: The blueprint's name and default prefix.
DEFAULT_NAME = "stripe_billing_admin"
DEFAULT_PREFIX = "/billing/admin"


#: Events per page of the log (``?limit=`` up to :data:`MAX_PAGE_SIZE`).
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


#: Events of an account's timeline shown on its page (the rest: the log, filtered).
TIMELINE_SIZE = 50


#: Events replayed by one click of "Replay all waiting" (click again for more).
REPLAY_BATCH = 100


#: Every status an event may have, for the filter.
STATUSES = tuple(sorted(RETRYABLE_STATUSES | FINAL_STATUSES))


TEMPLATES = "stripe_billing/admin"


@dataclass(frozen=True)
class AccountSection:
    """A further table on the account page: a title and records (dataclasses, one row each,
    their fields the columns), or a note saying why there are none to show."""

    title: str
    records: Sequence[Any]
    #: Shown instead of the records: why they cannot be read (say, the database lacks
    #: their table, and the command that adds it).
    note: str | None = None


#: What adds a section to an account's page (None: nothing to show for this account).
SectionSource = Callable[[BillingState, BillingAccount], "AccountSection | None"]


#: An account's usage rows shown on its page, newest first (all: ``flask billing usage``).
USAGE_ROWS = 50


@dataclass(frozen=True)
class UsageRow:
    """One reported meter event, as the account page's Usage table shows it."""

    event_name: str
    value: int
    identifier: str
    #: :class:`UsageStatus`: pending, sent or failed.
    status: str
    #: Why the last send failed (Stripe's words), or why the row waits.
    reason: str | None
    happened: datetime
    reported: datetime | None
    sent: datetime | None
    attempts: int


def usage_section(state: BillingState, account: BillingAccount) -> AccountSection | None:
    """The account's newest usage rows, its title counting the pending and failed among
    them (None: the account has none, or the store keeps no usage)."""
    if state.usage_log is None:
        return None
    missing = state.schema.lacking(USAGE_TABLE)
    if missing is not None:
        return AccountSection("Usage", (), missing)
    listed = state.usage_log.list_usage(user_id=account.user_id, limit=USAGE_ROWS + 1)
    if not listed:
        return None
    shown = listed[:USAGE_ROWS]
    counts = Counter(record.status for record in shown)
    among = f" among the newest {USAGE_ROWS}" if len(listed) > USAGE_ROWS else ""
    pending, failed = counts[UsageStatus.PENDING], counts[UsageStatus.FAILED]
    title = f"Usage ({pending} pending, {failed} failed{among})"
    rows = [
        UsageRow(
            event_name=record.event_name,
            value=record.value,
            identifier=record.identifier,
            status=record.status,
            reason=record.error,
            happened=record.timestamp,
            reported=record.reported_at,
            sent=record.sent_at,
            attempts=record.attempts,
        )
        for record in shown
    ]
    return AccountSection(title, rows)


@dataclass(frozen=True)
class PurchaseRow:
    """One purchase as the account page shows it (amounts in the currency's smallest unit)."""

    id: str
    product: str | None
    quantity: int | None
    amount: int | None
    currency: str | None
    status: str
    amount_refunded: int
    dispute_status: str | None
    checkout_session_id: str | None
    created: datetime | None


def purchases_section(state: BillingState, account: BillingAccount) -> AccountSection | None:
    """The account's one-time purchases, newest first (None: the store keeps none)."""
    if state.purchase_log is None:
        return None
    missing = state.schema.lacking(PURCHASES_TABLE)
    if missing is not None:
        return AccountSection("Purchases", (), missing)
    rows = [
        PurchaseRow(
            p.id,
            p.product,
            p.quantity,
            p.amount,
            p.currency,
            p.status,
            p.amount_refunded,
            p.dispute_status,
            p.checkout_session_id,
            p.created,
        )
        for p in state.purchase_log.purchases_of(account.user_id)
    ]
    return AccountSection("Purchases", rows)


#: The account page's sections beyond subscriptions and entitlements, from the store's
#: optional logs.
ACCOUNT_SECTIONS: tuple[SectionSource, ...] = (purchases_section, usage_section)


def create_admin_blueprint(
    admin_required: AdminCheck | None = None,
    *,
    name: str = DEFAULT_NAME,
    url_prefix: str = DEFAULT_PREFIX,
    account_sections: Iterable[SectionSource] = (),
) -> Blueprint:
    """The operations page's blueprint, let in by ``admin_required`` (else the app's
    ``STRIPE_BILLING_ADMIN``); registering it without either raises RuntimeError."""
    blueprint = Blueprint(name, __name__, url_prefix=url_prefix, template_folder="templates")
    sections = (*ACCOUNT_SECTIONS, *account_sections)

    def set_up(setup: BlueprintSetupState) -> None:
        _keep_setup(setup.app, setup.name, admin_required, sections)

    blueprint.record(set_up)  # first: a refused registration adds no route
    blueprint.before_request(_require_admin)
    blueprint.register_error_handler(BillingError, _error_page)
    blueprint.add_url_rule("/", view_func=event_log, methods=["GET"])
    blueprint.add_url_rule("/events/<event_id>", view_func=event_detail, methods=["GET"])
    blueprint.add_url_rule("/events/<event_id>/replay", view_func=replay_event, methods=["POST"])
    blueprint.add_url_rule("/replay-waiting", view_func=replay_waiting, methods=["POST"])
    blueprint.add_url_rule("/accounts", view_func=find_account, methods=["GET"])
    blueprint.add_url_rule("/accounts/<user_id>", view_func=account_page, methods=["GET"])
    blueprint.add_url_rule("/accounts/<user_id>/sync", view_func=sync_account, methods=["POST"])
    blueprint.add_url_rule("/link", view_func=link_account, methods=["POST"])
    return blueprint


@dataclass(frozen=True)
class AdminSetup:
    """One admin blueprint on one app: its permission check and the account page's sections."""

    check: AdminCheck
    sections: tuple[SectionSource, ...]


def _keep_setup(
    app: App,
    name: str,
    admin_required: AdminCheck | None,
    sections: tuple[SectionSource, ...],
) -> None:
    """Keep the blueprint's set-up for ``app``, or refuse to register it (fail closed)."""
    check = admin_required if admin_required is not None else app.config.get(ADMIN_SETTING)
    if not callable(check):
        raise RuntimeError(
            "The operations page needs a permission check: "
            "billing.admin_blueprint(admin_required=...) or app.config"
            f"[{ADMIN_SETTING!r}], a callable answering whether the current user may see "
            "it; the blueprint was not registered"
        )
    if EXTENSION_KEY not in app.extensions:
        raise RuntimeError(
            "Set StripeBilling up on the app (billing.init_app(app)) before registering "
            "the operations page"
        )
    app.extensions.setdefault(ADMIN_KEY, {})[name] = AdminSetup(check, sections)


def _setup() -> AdminSetup | None:
    """The set-up of the admin blueprint handling this request."""
    setups: dict[str, AdminSetup] = current_app.extensions.get(ADMIN_KEY, {})
    return setups.get(request.blueprint or "")


def _require_admin() -> Response | None:
    """Let the request in only when the host's check says so: a response it returns (a
    redirect to its login, say) is the answer; anything else falsy is a 403 page."""
    setup = _setup()
    answer = setup.check() if setup is not None else None
    if isinstance(answer, Response):
        return answer
    if not answer:
        return _page("error.html", 403, title="Forbidden", message="You may not see this page.")
    return None


def _error_page(error: BillingError) -> Response:
    """An HTML page for a refused or failed request, with the error's status."""
    status, _ = next(
        (HTTP_ANSWERS[kind] for kind in type(error).__mro__ if kind in HTTP_ANSWERS),
        DEFAULT_ANSWER,
    )
    return _page("error.html", status, title="Not done", message=mask(error.message))


def _page(template: str, status: int = 200, **context: Any) -> Response:
    """A rendered page of the blueprint's templates."""
    response = current_app.make_response(
        render_template(f"{TEMPLATES}/{template}", **context, **_helpers())
    )
    response.status_code = status
    return response


def _helpers() -> dict[str, Any]:
    """What every template uses: times shown in UTC, record tables, the statuses."""
    return {"when": show_time, "cells": cells, "statuses": STATUSES}


def show_time(value: datetime | None) -> str:
    """A time as the page shows it: UTC, to the second."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cells(record: Any) -> list[tuple[str, str]]:
    """A dataclass record's fields as (name, text) pairs, for a table row."""
    if not is_dataclass(record):
        return [("value", str(record))]
    return [(f.name, _text(getattr(record, f.name))) for f in fields(record)]


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return show_time(value)
    if isinstance(value, frozenset | set | tuple | list):
        return ", ".join(sorted(str(item) for item in value)) or "—"
    return "—" if value is None else mask(str(value))


# The event log


@dataclass(frozen=True)
class LogFilters:
    """The event log's filters, as the query string gives them."""

    status: str | None = None
    event_type: str | None = None
    customer_id: str | None = None
    #: Received at or after (inclusive), before (exclusive); dates are days in UTC.
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def from_args(cls, args: Any) -> LogFilters:
        """The filters of ``request.args``; 400 for a status or time that is not one."""
        status = (args.get("status") or "").strip() or None
        if status is not None and status not in STATUSES:
            raise ValidationError(f"No event status {status!r}", {"statuses": list(STATUSES)})
        return cls(
            status=status,
            event_type=(args.get("type") or "").strip() or None,
            customer_id=(args.get("customer") or "").strip() or None,
            since=parse_time(args.get("since"), "since"),
            until=parse_time(args.get("until"), "until"),
        )

    @property
    def args(self) -> dict[str, str]:
        """The filters as query arguments (those set), for links to other pages."""
        values = {
            "status": self.status,
            "type": self.event_type,
            "customer": self.customer_id,
            "since": _time_arg(self.since),
            "until": _time_arg(self.until),
        }
        return {name: value for name, value in values.items() if value}

    @property
    def by_time(self) -> bool:
        return self.since is not None or self.until is not None


def parse_time(value: str | None, name: str) -> datetime | None:
    """A filter's time: ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]`` in UTC (None: not set)."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{name}: {text!r} is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM)", {}
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _time_arg(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S")


def cursor_token(record: EventRecord) -> str:
    """The ``after`` argument of the page that follows ``record``."""
    return f"{record.received_at.astimezone(UTC).isoformat()}|{record.id}"


def parse_cursor(token: str | None) -> EventCursor | None:
    """The cursor an ``after`` argument names; 400 for one this page did not make."""
    if not token:
        return None
    received, _, event_id = token.partition("|")
    try:
        at = datetime.fromisoformat(received)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not event_id:
        raise ValidationError("This page link is not valid; start from the first page", {})
    return EventCursor(at, event_id)


def page_size(value: str | None) -> int:
    """The ``limit`` argument, within 1 and :data:`MAX_PAGE_SIZE`."""
    if not value:
        return PAGE_SIZE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise ValidationError(f"limit: give a whole number from 1 to {MAX_PAGE_SIZE}", {})
    return int(value)


@dataclass(frozen=True)
class LogPage:
    """One page of the event log and the cursor of the next (None: the last page)."""

    events: list[EventRecord]
    next_after: str | None
    #: False: the event log offers no :class:`EventPaging`; the newest events only.
    paged: bool


def read_page(
    state: BillingState, filters: LogFilters, after: EventCursor | None, limit: int
) -> LogPage:
    """A page of the event log: by keyset when the log pages, else its newest events."""
    log = state.event_log
    statuses = None if filters.status is None else [filters.status]
    with log.transaction():
        if isinstance(log, EventPaging):
            events = log.page_events(
                statuses=statuses,
                event_type=filters.event_type,
                customer_id=filters.customer_id,
                received_since=filters.since,
                received_before=filters.until,
                after=after,
                limit=limit + 1,
            )
        elif after is not None or filters.by_time:
            raise ValidationError(
                "This store's event log offers no paging (EventPaging): "
                "only its newest events are shown, without time filters",
                {},
            )
        else:
            events = log.list_events(
                statuses=statuses,
                event_type=filters.event_type,
                customer_id=filters.customer_id,
                limit=limit,
            )
            return LogPage(events, None, paged=False)
    shown = events[:limit]
    more = len(events) > limit
    return LogPage(shown, cursor_token(shown[-1]) if more else None, paged=True)


def event_log() -> Response:
    """The event log, newest received first, filtered and paged."""
    filters = LogFilters.from_args(request.args)
    limit = page_size(request.args.get("limit"))
    after = parse_cursor(request.args.get("after"))
    page = read_page(get_state(), filters, after, limit)
    return _page(
        "events.html",
        filters=filters,
        page=page,
        first_page=after is not None,
        limit=limit if limit != PAGE_SIZE else None,
        waiting=sorted(RETRYABLE_STATUSES),
    )


# One event


def event_detail(event_id: str) -> Response:
    """One event: its payload (masked), attempts, error, outcome, and what may be done."""
    state = get_state()
    with state.event_log.transaction():
        record = state.event_log.get_event(event_id)
        if record is None:
            raise NotFoundError(f"No stored event {event_id}", {"event_id": event_id})
        holder = None
        if record.customer_id:
            holder = state.user_store.get_by_customer_id(record.customer_id)
    return _page(
        "event.html",
        event=record,
        payload=shown_payload(record.payload),
        error=mask(record.error) if record.error else None,
        holder=holder,
        replayable=record.status in RETRYABLE_STATUSES,
        linkable=record.status == EventStatus.UNMATCHED and bool(record.customer_id),
    )


def shown_payload(payload: str) -> str:
    """The stored payload pretty-printed, secrets and card numbers masked."""
    try:
        parsed = json.loads(payload)
    except ValueError:
        return mask(payload)
    return json.dumps(redact_json(parsed), indent=2, ensure_ascii=False)


# One account


def find_account() -> Response:
    """``?q=`` a user id or a Stripe customer id: that account's page."""
    query = (request.args.get("q") or "").strip()
    state = get_state()
    account = None
    if query:
        with state.event_log.transaction():
            account = state.user_store.get(query) or state.user_store.get_by_customer_id(query)
    if account is None:
        flash(f"No account has user id or customer {query!r}.", "error")
        return redirect(url_for(".event_log", customer=query or None))
    return redirect(url_for(".account_page", user_id=account.user_id))


def account_page(user_id: str) -> Response:
    """An account: its billing state, subscription records, entitlements, further sections,
    and the timeline of its customer's events. While the database lacks a table (a
    migration not yet run) the page shows the rest, and says so where that table's
    section would be."""
    state = get_state()
    log = state.event_log
    with log.transaction():
        try:
            account = state.account_of(user_id)
        except LookupError:
            raise NotFoundError(f"No user {user_id}", {"user_id": user_id}) from None
        missing = {
            kind: note
            for kind in (USERS, SUBSCRIPTIONS_TABLE, ENTITLEMENTS_TABLE)
            if (note := state.schema.lacking(kind)) is not None
        }
        records: list[SubscriptionRecord] = []
        if SUBSCRIPTIONS_TABLE not in missing:
            records = state.subscription_log.subscriptions_of(account.user_id)
        customer_id = account.stripe_customer_id
        entitlements = None
        readable = ENTITLEMENTS_TABLE not in missing
        if state.entitlement_log is not None and readable and customer_id:
            entitlements = state.entitlement_log.entitlements_of(customer_id)
        timeline: list[EventRecord] = []
        if customer_id:
            timeline = log.list_events(customer_id=customer_id, limit=TIMELINE_SIZE + 1)
        setup = _setup()
        sources = setup.sections if setup is not None else ()
        extra = [section for source in sources if (section := source(state, account))]
    return _page(
        "account.html",
        account=account,
        subscriptions=records,
        entitlements=entitlements,
        keeps_entitlements=state.entitlement_log is not None,
        missing_columns=missing.get(USERS),
        missing_subscriptions=missing.get(SUBSCRIPTIONS_TABLE),
        missing_entitlements=missing.get(ENTITLEMENTS_TABLE),
        sections=extra,
        timeline=timeline[:TIMELINE_SIZE],
        more_events=len(timeline) > TIMELINE_SIZE,
        can_sync=state.stripe is not None,
    )


# The actions: each a POST from this page, then back to it with what happened.


def replay_event(event_id: str) -> Response:
    """Process one stored event again, through the pipeline."""
    ensure_own_site()
    state = get_state()
    try:
        outcome = intake.run_stored(state, app_object(), event_id)
    except LookupError:
        raise NotFoundError(f"No stored event {event_id}", {"event_id": event_id}) from None
    _flash_outcome(event_id, outcome)
    return _back(url_for(".event_detail", event_id=event_id))


def replay_waiting() -> Response:
    """Process again the oldest :data:`REPLAY_BATCH` failed, unmatched or received events."""
    ensure_own_site()
    state = get_state()
    with state.event_log.transaction():
        records = state.event_log.list_events(
            statuses=RETRYABLE_STATUSES, oldest_first=True, limit=REPLAY_BATCH + 1
        )
    if not records:
        flash("No failed, unmatched or received events to replay.", "message")
        return _back(url_for(".event_log"))
    counts = replay_all(state, records[:REPLAY_BATCH])
    more = " More wait: replay again." if len(records) > REPLAY_BATCH else ""
    flash(f"Replayed {_tally(counts)}.{more}", "message")
    return _back(url_for(".event_log"))


def replay_all(state: BillingState, records: Sequence[EventRecord]) -> Counter[str]:
    """Replay each event in turn, oldest first; how many ended with each status."""
    counts: Counter[str] = Counter()
    for record in records:
        try:
            counts[intake.run_stored(state, app_object(), record.id).status] += 1
        except (BillingError, LookupError):
            counts["not replayed"] += 1
    return counts


def link_account() -> Response:
    """Link the account (``user_id``) to the customer (``customer_id``), then replay the
    customer's events that waited as unmatched."""
    ensure_own_site()
    user_id = request.form.get("user_id", "").strip()
    customer_id = request.form.get("customer_id", "").strip()
    if not user_id or not customer_id:
        raise ValidationError("Give both a user id and a customer id", {})
    state = get_state()
    try:
        linked = link_customer(state, user_id, customer_id)
    except LookupError as error:
        raise NotFoundError(str(error), {"user_id": user_id}) from None
    was = linked.previous_customer_id or "none"
    message = f"Linked user {linked.account.user_id} to customer {customer_id} (was {was})."
    if linked.waiting:
        message += f" Replayed its waiting events: {_tally(replay_all(state, linked.waiting))}."
    flash(message, "message")
    return redirect(url_for(".account_page", user_id=linked.account.user_id), 303)


def sync_account(user_id: str) -> Response:
    """Apply the account's subscriptions (and entitlements) as Stripe's API has them now."""
    ensure_own_site()
    state = get_state()
    page = url_for(".account_page", user_id=user_id)
    with state.event_log.transaction():
        account = state.user_store.get(user_id)
    if account is None:
        raise NotFoundError(f"No user {user_id}", {"user_id": user_id})
    customer_id = account.stripe_customer_id
    if not customer_id:
        flash(f"User {user_id} has no Stripe customer yet; nothing to sync.", "error")
        return redirect(page, 303)
    try:
        outcomes = sync_customer(state, app_object(), customer_id)
        features = sync_features(state, app_object(), customer_id)
    except BillingError as error:
        flash(f"Sync failed: {mask(error.message)}", "error")
        return redirect(page, 303)
    counts = Counter(outcome.status for outcome in outcomes)
    subscriptions = _tally(counts, "subscription") if outcomes else "no subscriptions at Stripe"
    after = outcomes[-1].after if outcomes and outcomes[-1].after else None
    plan = f"; plan now {after.plan}" if after is not None else ""
    read = "; entitlements read" if features is not None else ""
    flash(f"Synced customer {customer_id}: {subscriptions}{plan}{read}.", "message")
    return redirect(page, 303)


def _flash_outcome(event_id: str, outcome: Outcome) -> None:
    """Say what a replay did: the status, and why it stayed unmatched or failed."""
    why = outcome.reason or (mask(str(outcome.error)) if outcome.error else None)
    category = "error" if outcome.status == EventStatus.FAILED else "message"
    flash(f"Replayed {event_id}: {outcome.status}" + (f" ({why})" if why else "") + ".", category)


def _tally(counts: Counter[str], noun: str = "event") -> str:
    """``"3 events: 2 processed, 1 unmatched"``."""
    total = counts.total()
    parts = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    return f"{total} {noun}{'' if total == 1 else 's'}: {parts}"


def _back(default: str) -> Response:
    """303 to the form's ``next`` (a path of this site only), else to ``default``."""
    target = request.form.get("next", "")
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.netloc or parts.scheme:
        target = default
    return redirect(target, 303)
