"""Usage-based billing: reporting usage in the host's transaction, and the one sender that
delivers pending rows to Stripe as meter events (at least once; Stripe applies each
``identifier`` once)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .._util import utcnow
from ..core.account import BillingAccount
from ..core.usage import (
    UsageRecord,
    UsageStatus,
    is_permanent_refusal,
    meter_event_params,
    new_usage,
    period_start,
    quota_of,
    refused,
    remaining,
    sent,
    to_retry,
    waiting_for_customer,
)
from ..errors import UsageNotKeptError
from ..signals import send_safely, usage_rejected
from ..state import BillingState
from ..stores.base import UsageLog
from ..stripe_api import MeterEventAnswer, StripeGateway


def usage_log_of(state: BillingState) -> UsageLog:
    """The store's usage table, or :class:`UsageNotKeptError`."""
    if state.usage_log is None:
        raise UsageNotKeptError(state.user_store)
    return state.usage_log


def report_usage(
    state: BillingState,
    who: BillingAccount | str | int,
    event_name: str,
    value: int,
    *,
    identifier: str | None = None,
    timestamp: datetime | None = None,
) -> tuple[UsageRecord, bool]:
    """Write one usage row in the transaction in progress (no commit: the host's own);
    the row, and False when its identifier was reported before (nothing written)."""
    log = usage_log_of(state)
    # No read of the account on the host's request path: the sender finds the customer.
    user_id, customer_id = (
        (who.user_id, who.stripe_customer_id) if isinstance(who, BillingAccount) else (who, None)
    )
    record = new_usage(
        user_id=str(user_id),
        customer_id=customer_id,
        event_name=event_name,
        value=value,
        identifier=identifier,
        timestamp=timestamp,
        now=utcnow(),
    )
    return record, log.add_usage(record)


def _account(state: BillingState, who: BillingAccount | str | int) -> BillingAccount:
    """The account itself, or the user's: one read (no features: usage needs none)."""
    if isinstance(who, BillingAccount):
        return who
    account = state.user_store.get(str(who))
    if account is None:
        raise LookupError(f"no user {who!r}")
    return account


def usage_remaining(
    state: BillingState, who: BillingAccount | str | int, event_name: str
) -> int | None:
    """What is left of the account's plan quota of ``event_name`` this period (None: the
    plan has no quota of it), from the local rows."""
    account = _account(state, who)
    quota = quota_of(state.settings.usage_quotas, account.plan, event_name)
    if quota is None:
        return None
    since = period_start(account.current_period_end, utcnow())
    used = usage_log_of(state).usage_total(account.user_id, event_name, since=since)
    return remaining(quota, [used])


@dataclass(frozen=True)
class UsageSendReport:
    """What one pass of the sender did, row by row."""

    sent: int = 0
    failed: int = 0
    #: Rows that met a transient failure (timeout, 429, 5xx) and wait for their back-off.
    retrying: int = 0
    #: Rows of accounts with no Stripe customer yet: kept pending.
    waiting: int = 0

    def __add__(self, other: UsageSendReport) -> UsageSendReport:
        return UsageSendReport(
            self.sent + other.sent,
            self.failed + other.failed,
            self.retrying + other.retrying,
            self.waiting + other.waiting,
        )


def send_usage(
    state: BillingState,
    app: Any,
    *,
    limit: int | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> UsageSendReport:
    """Send pending rows that are due, a batch per transaction, until none is left (or
    ``limit`` rows were claimed); each batch is claimed row-locked, posted, marked, and
    committed, then ``usage_rejected`` is sent for the rows Stripe refused.

    A crash after Stripe's answer and before the commit leaves the rows pending: the next
    pass sends them again with the same identifiers, which Stripe drops.
    """
    log = usage_log_of(state)
    state.require_stripe()  # a 503 naming the key when there is none
    gateway = state.usage_stripe or state.require_stripe()
    settings = state.settings
    total = UsageSendReport()
    claimed = 0
    while limit is None or claimed < limit:
        size = settings.usage_batch_size
        if limit is not None:
            size = min(size, limit - claimed)
        with state.event_log.transaction():
            rows = log.claim_usage(limit=size, now=clock())
            if not rows:
                break
            done = _send_batch(state, gateway, rows, clock)
            log.save_usage(done)
        claimed += len(rows)
        report = _counted(rows, done)
        total += report
        for record in done:
            if record.status == UsageStatus.FAILED:
                send_safely(
                    usage_rejected,
                    app,
                    user_id=record.user_id,
                    event_name=record.event_name,
                    value=record.value,
                    identifier=record.identifier,
                    reason=record.error,
                    usage=record,
                )
        if report.retrying:
            break  # Stripe is slow or limiting us: the rest waits for the next pass
    return total


#: What the sender notes for a row whose user the store does not know.
NO_SUCH_USER = "\0no such user"


def _send_batch(
    state: BillingState,
    gateway: StripeGateway,
    rows: Sequence[UsageRecord],
    clock: Callable[[], datetime],
) -> list[UsageRecord]:
    """Each claimed row as it ends this pass: sent, failed, to retry, or waiting."""
    settings = state.settings
    customers: dict[str, str | None] = {}
    ready: list[UsageRecord] = []
    done: list[UsageRecord] = []
    for row in rows:
        if row.customer_id is None:
            if row.user_id not in customers:
                account = state.user_store.get(row.user_id)
                customers[row.user_id] = (
                    NO_SUCH_USER if account is None else account.stripe_customer_id
                )
            customer = customers[row.user_id]
            if customer is NO_SUCH_USER:
                done.append(refused(row, clock(), f"no user {row.user_id!r} in the store"))
                continue
            if customer is None:
                done.append(waiting_for_customer(row, clock()))
                continue
            row = replace(row, customer_id=customer)
        ready.append(row)
    answers = _post_all(gateway, ready, settings.usage_customer_key, settings.usage_concurrency)
    now = clock()
    for row, answer in zip(ready, answers, strict=True):
        if answer.event is not None:
            done.append(sent(row, now))
        elif is_permanent_refusal(answer.status):
            done.append(refused(row, now, _reason(answer)))
        else:
            done.append(to_retry(row, now, _reason(answer)))
    return done


def _post_all(
    gateway: StripeGateway, rows: Sequence[UsageRecord], customer_key: str, concurrency: int
) -> list[MeterEventAnswer]:
    """Each row's answer, in order: ``concurrency`` lanes at once, each lane holding every
    row of its customers and meters, posted one after another (Stripe takes one call at a
    time per customer and meter)."""
    lanes: list[list[int]] = [[] for _ in range(max(min(concurrency, len(rows)), 1))]
    lane_of: dict[tuple[str | None, str], int] = {}
    for index, row in enumerate(rows):
        key = (row.customer_id, row.event_name)
        lane = lane_of.setdefault(key, len(lane_of) % len(lanes))
        lanes[lane].append(index)
    answers: dict[int, MeterEventAnswer] = {}

    def post_lane(indexes: list[int]) -> None:
        for index in indexes:
            answers[index] = gateway.create_meter_event(
                meter_event_params(rows[index], customer_key)
            )

    busy = [lane for lane in lanes if lane]
    if len(busy) > 1:
        with ThreadPoolExecutor(max_workers=len(busy)) as pool:
            list(pool.map(post_lane, busy))
    elif busy:
        post_lane(busy[0])
    return [answers[index] for index in range(len(rows))]


def _reason(answer: MeterEventAnswer) -> str:
    """Stripe's reason with its HTTP status (or that there was no answer)."""
    status = "no answer" if answer.status is None else f"HTTP {answer.status}"
    return f"{status}: {answer.reason or 'no reason given'}"


def _counted(claimed: Sequence[UsageRecord], done: Sequence[UsageRecord]) -> UsageSendReport:
    """The pass's counts, from each row as it ends."""
    report = UsageSendReport()
    for record in done:
        if record.status == UsageStatus.SENT:
            report += UsageSendReport(sent=1)
        elif record.status == UsageStatus.FAILED:
            report += UsageSendReport(failed=1)
        elif record.customer_id is None:
            report += UsageSendReport(waiting=1)
        else:
            report += UsageSendReport(retrying=1)
    assert len(done) == len(claimed)
    return report
