"""The store contract's tests, for a host to run against its own store in its own pytest.

Subclass :class:`StoreContract` in a test module (name the subclass ``Test...``)
and override its ``make_store`` fixture::

    from flask_stripe_billing.testing import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def make_store(self):
            store = MyStore(...)   # holding user "1" (customer "cus_test") and user "2"
            yield store

The shipped stores (``InMemoryUserStore``, ``SQLAlchemyUserStore``,
``DBAPIUserStore``) pass these same tests. The optional parts (entitlements,
listing accounts) are skipped for a store that does not keep them. Needs pytest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ..core.account import BillingAccount, SubscriptionRecord
from ..core.entitlements import EntitlementRecord
from ..core.events import StripeEvent, parse_event
from ..core.purchases import PurchaseRecord, RefundPart
from ..core.templates import DEFAULT_CUSTOMER, build_event
from ..core.usage import UsageRecord, UsageStatus
from ..stores.base import (
    ENTITLEMENT_LOG,
    PURCHASE_LOG,
    USAGE_LOG,
    AccountListing,
    EntitlementLog,
    EventCursor,
    EventLog,
    EventPaging,
    PurchaseLog,
    SubscriptionLog,
    UsageLog,
    UserStore,
    check_store,
)

__all__ = ["StoreContract"]


#: A period end with seconds, as the round-trip tests store it.
PERIOD_END = datetime(2031, 5, 17, 8, 30, 15, tzinfo=UTC)


#: Two hours east of UTC: a datetime given in it must come back as the same instant in UTC.
PLUS_TWO = timezone(timedelta(hours=2))


#: When the test events were created at Stripe: a fixed second in the past (Nov 2023).
CREATED = 1_700_000_000


def stripe_event(event_id: str = "evt_store", **facts: Any) -> tuple[StripeEvent, str]:
    """A parsed subscription event and its raw payload, as the webhook hands them to the log."""
    payload = build_event(
        facts.pop("event_type", "customer.subscription.updated"),
        event_id=event_id,
        created=facts.pop("created", CREATED - 60),
        **facts,
    )
    return parse_event(payload), json.dumps(payload)


def subscription_record(
    subscription_id: str, user_id: str = "1", **facts: Any
) -> SubscriptionRecord:
    """A subscription record with every field set, aware-UTC datetimes included."""
    values: dict[str, Any] = {
        "id": subscription_id,
        "user_id": user_id,
        "customer_id": DEFAULT_CUSTOMER,
        "status": "trialing",
        "price_ids": ("price_monthly", "price_seats"),
        "plan": "pro",
        "quantity": 3,
        "trial_end": datetime(2031, 5, 1, 0, 0, 1, tzinfo=UTC),
        "current_period_end": PERIOD_END,
        "cancel_at_period_end": True,
        "cancel_at": datetime(2031, 6, 1, 12, 0, tzinfo=UTC),
        "ended_at": None,
        "created": datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        "last_event_at": datetime(2030, 1, 2, 3, 4, 6, tzinfo=UTC),
    }
    values.update(facts)
    return SubscriptionRecord(**values)


def assert_utc(value: datetime | None) -> None:
    """The datetime is aware and in UTC."""
    assert value is not None
    assert value.utcoffset() == timedelta(0)


def ids(records: list[Any]) -> list[str]:
    """The ids of event records, in their order."""
    return [r.id for r in records]


class StoreContract:
    """The contract tests of a store keeping ``UserStore``, ``EventLog`` and
    ``SubscriptionLog`` (and, when it keeps them, ``EntitlementLog`` and
    ``AccountListing``).

    Override :meth:`make_store`; set :attr:`linked_account` when your store's
    ``get`` fills more (an e-mail, say); override :meth:`tick` when your store's
    clock is coarser than 10 ms or you set it yourself.
    """

    #: User 1 as the store's ``get`` returns it before any test changes it.
    linked_account = BillingAccount(user_id="1", stripe_customer_id=DEFAULT_CUSTOMER)

    @pytest.fixture
    def make_store(self) -> Iterator[Any]:
        """The store under test, holding user ``"1"`` linked to customer ``"cus_test"`` and
        user ``"2"`` with no customer, and nothing in its logs. Override it."""
        pytest.fail("override make_store in your StoreContract subclass")
        yield None  # pragma: no cover

    @pytest.fixture
    def tick(self) -> Callable[[], None]:
        """Called between two events the listing tests record, so that the second is
        received later: wait 10 ms (override it to move your store's clock instead)."""
        return lambda: time.sleep(0.01)

    @pytest.fixture
    def store(self, make_store: Any) -> Any:
        """The store under test, checked as ``init_app`` checks it (``StoreContractError``
        names what it lacks)."""
        check_store(make_store)
        return make_store

    # The three protocols together

    def test_stores_keep_every_method_of_the_three_protocols(self, store: Any) -> None:
        """Each protocol method, called through the protocol's type, does what it promises."""
        users: UserStore = store
        log: EventLog = store
        subscriptions: SubscriptionLog = store
        event, payload = stripe_event("evt_contract")
        record = subscription_record("sub_contract")

        with log.transaction():
            assert users.get("1", lock=True) == users.get_by_customer_id("cus_test", lock=True)
            linked = users.set_customer_id("2", "cus_two")
            applied = users.apply("2", {"plan": "pro", "subscription_status": "active"})
            recorded = log.record_event(event, payload)
            log.finish_event("evt_contract", "processed", user_id="2")
            subscriptions.save_subscription(record)

        assert linked.stripe_customer_id == "cus_two"
        assert (applied.user_id, applied.plan, applied.subscription_status) == (
            "2",
            "pro",
            "active",
        )
        assert users.get("2") == applied
        assert users.get_by_customer_id("cus_two") == applied
        assert (recorded.id, recorded.status, recorded.attempts) == ("evt_contract", "received", 1)
        finished = log.get_event("evt_contract")
        assert finished is not None
        assert (finished.status, finished.user_id) == ("processed", "2")
        assert log.list_events(statuses={"processed"}) == [finished]
        assert log.list_events(statuses={"failed"}) == []
        assert subscriptions.subscriptions_of("1") == [record]
        assert subscriptions.subscriptions_of("2") == []
        with log.transaction():
            assert log.delete_events(before=finished.received_at, statuses={"processed"}) == 0
            later = finished.received_at + timedelta(seconds=1)
            assert log.delete_events(before=later, statuses={"processed"}) == 1
        assert log.get_event("evt_contract") is None

    # SubscriptionLog

    def test_subscription_records_round_trip_with_aware_utc_datetimes(self, store: Any) -> None:
        first = subscription_record("sub_first")
        second = subscription_record(
            "sub_second",
            status="canceled",
            price_ids=("price_yearly",),
            quantity=None,
            trial_end=None,
            cancel_at_period_end=False,
            cancel_at=None,
            ended_at=datetime(2030, 2, 3, 4, 5, 6, tzinfo=UTC),
            last_event_at=None,
        )
        elsewhere = subscription_record("sub_elsewhere", user_id="2", customer_id="cus_two")
        with store.transaction():
            for record in (first, second, elsewhere):
                store.save_subscription(record)

        stored = {record.id: record for record in store.subscriptions_of("1")}
        assert stored == {"sub_first": first, "sub_second": second}
        assert store.subscriptions_of("2") == [elsewhere]
        assert store.subscriptions_of("3") == []
        for record in stored.values():
            for name in ("trial_end", "current_period_end", "cancel_at", "ended_at", "created"):
                value = getattr(record, name)
                if value is not None:
                    assert_utc(value)
        assert_utc(stored["sub_first"].last_event_at)
        assert isinstance(stored["sub_first"].price_ids, tuple)

        # Saving a record with the same id replaces it.
        ended = replace(first, status="canceled", last_event_at=datetime(2030, 3, 1, tzinfo=UTC))
        with store.transaction():
            store.save_subscription(ended)
        assert {r.id: r for r in store.subscriptions_of("1")} == {
            "sub_first": ended,
            "sub_second": second,
        }

        # A rolled-back save leaves the records as they were.
        with pytest.raises(RuntimeError, match="boom"), store.transaction():
            store.save_subscription(replace(ended, status="active"))
            store.save_subscription(subscription_record("sub_rolled_back"))
            raise RuntimeError("boom")
        assert {r.id: r for r in store.subscriptions_of("1")} == {
            "sub_first": ended,
            "sub_second": second,
        }

    def test_subscription_record_keeps_the_instant_of_a_non_utc_datetime(self, store: Any) -> None:
        local = datetime(2031, 5, 17, 10, 30, 15, tzinfo=PLUS_TWO)
        with store.transaction():
            store.save_subscription(
                subscription_record("sub_local", current_period_end=local, last_event_at=local)
            )

        (stored,) = store.subscriptions_of("1")
        assert stored.current_period_end == PERIOD_END
        assert stored.last_event_at == PERIOD_END
        assert_utc(stored.current_period_end)

    # UserStore

    @pytest.mark.parametrize("lock", [False, True])
    def test_get_returns_the_account(self, store: Any, lock: bool) -> None:
        with store.transaction():
            account = store.get("1", lock=lock)

        assert account == self.linked_account
        assert account.plan == "free"

    @pytest.mark.parametrize("user_id", ["999", "abc", "", "99999999999", str(2**64), " 1; --"])
    def test_get_of_unknown_or_malformed_user_id_is_none(self, store: Any, user_id: str) -> None:
        assert store.get(user_id) is None
        assert store.get(user_id, lock=True) is None

    def test_get_by_customer_id(self, store: Any) -> None:
        account = store.get_by_customer_id("cus_test")
        assert account == self.linked_account
        assert store.get_by_customer_id("cus_unknown") is None

    def test_set_customer_id_links_the_user(self, store: Any) -> None:
        account = store.set_customer_id("2", "cus_two")

        assert (account.user_id, account.stripe_customer_id) == ("2", "cus_two")
        assert store.get("2").stripe_customer_id == "cus_two"
        assert store.get_by_customer_id("cus_two").user_id == "2"
        assert store.get_by_customer_id("cus_test").user_id == "1"

    def test_apply_round_trip_returns_aware_utc_datetimes(self, store: Any) -> None:
        updated_at = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        trial_end = datetime(2030, 1, 16, 3, 4, 0, tzinfo=UTC)
        with store.transaction():
            applied = store.apply(
                "1",
                {
                    "plan": "pro",
                    "subscription_status": "active",
                    "stripe_subscription_id": "sub_1",
                    "current_period_end": PERIOD_END,
                    "cancel_at_period_end": True,
                    "updated_at": updated_at,
                    "trial_end": trial_end,
                    "subscription_quantity": 5,
                },
            )

        expected = replace(
            self.linked_account,
            stripe_subscription_id="sub_1",
            plan="pro",
            subscription_status="active",
            current_period_end=PERIOD_END,
            cancel_at_period_end=True,
            updated_at=updated_at,
            trial_end=trial_end,
            subscription_quantity=5,
        )
        assert applied == expected
        stored = store.get("1")
        assert stored == expected
        for account in (applied, stored):
            assert_utc(account.current_period_end)
            assert_utc(account.updated_at)
            assert_utc(account.trial_end)
        assert store.get("2").plan == "free"

    def test_apply_keeps_the_instant_of_a_non_utc_datetime(self, store: Any) -> None:
        period_end = datetime(2031, 5, 17, 10, 30, 15, tzinfo=PLUS_TWO)
        with store.transaction():
            applied = store.apply("1", {"current_period_end": period_end})

        stored = store.get("1")
        for account in (applied, stored):
            assert account.current_period_end == PERIOD_END  # the same instant
            assert_utc(account.current_period_end)

    def test_apply_changes_only_the_given_fields(self, store: Any) -> None:
        with store.transaction():
            store.apply("1", {"plan": "pro", "subscription_status": "active"})
        with store.transaction():
            account = store.apply("1", {"subscription_status": "past_due"})

        assert (account.plan, account.subscription_status) == ("pro", "past_due")
        assert account.stripe_customer_id == "cus_test"
        assert store.get("1") == account

    # EventLog

    def test_rollback_leaves_accounts_and_events_untouched(self, store: Any) -> None:
        event, payload = stripe_event("evt_kept")
        other, other_payload = stripe_event("evt_rolled_back")
        with store.transaction():
            store.record_event(event, payload)
        before = store.get("1")

        with pytest.raises(RuntimeError, match="boom"), store.transaction():
            store.record_event(event, payload)
            store.finish_event("evt_kept", "processed", user_id="1")
            store.record_event(other, other_payload)
            store.apply("1", {"plan": "pro", "subscription_status": "active"})
            raise RuntimeError("boom")

        assert store.get("1") == before
        assert store.get_by_customer_id("cus_test") == before
        kept = store.get_event("evt_kept")
        assert (kept.status, kept.attempts, kept.user_id, kept.processed_at) == (
            "received",
            1,
            None,
            None,
        )
        assert store.get_event("evt_rolled_back") is None

    def test_record_event_twice_returns_the_same_row_with_two_attempts(self, store: Any) -> None:
        event, payload = stripe_event("evt_twice")
        with store.transaction():
            first = store.record_event(event, payload)
        with store.transaction():
            second = store.record_event(event, payload)

        assert (first.id, first.type, first.customer_id) == (
            "evt_twice",
            "customer.subscription.updated",
            "cus_test",
        )
        assert (first.status, first.user_id, first.error, first.processed_at) == (
            "received",
            None,
            None,
            None,
        )
        assert first.payload == payload
        assert first.created == event.created
        assert_utc(first.created)
        assert_utc(first.received_at)
        assert first.attempts == 1
        assert second.attempts == 2
        assert (second.id, second.status, second.payload) == (first.id, first.status, payload)
        assert second.received_at == first.received_at
        assert store.get_event("evt_twice") == second

    def test_record_event_again_takes_the_customer_a_row_lacks_and_keeps_one_it_has(
        self, store: Any
    ) -> None:
        """A thin notification is stored before its customer is known (its fetch failed);
        recording it again once fetched fills the customer in, never replaces one."""
        event, payload = stripe_event("evt_customer_later")
        with store.transaction():
            first = store.record_event(replace(event, customer_id=None), payload)
        with store.transaction():
            second = store.record_event(event, payload)
        with store.transaction():
            third = store.record_event(replace(event, customer_id="cus_other"), payload)

        assert (first.customer_id, second.customer_id, third.customer_id) == (
            None,
            "cus_test",
            "cus_test",
        )
        assert third.attempts == 3
        with store.transaction():
            listed = store.list_events(customer_id="cus_test")
        assert [record.id for record in listed] == ["evt_customer_later"]

    def test_finish_event_sets_status_user_error_and_processed_at(self, store: Any) -> None:
        event, payload = stripe_event("evt_finish")
        with store.transaction():
            recorded = store.record_event(event, payload)
            store.finish_event("evt_finish", "failed", user_id="1", error="RuntimeError: bug")

        failed = store.get_event("evt_finish")
        assert (failed.status, failed.user_id, failed.error) == (
            "failed",
            "1",
            "RuntimeError: bug",
        )
        assert_utc(failed.processed_at)
        assert failed.processed_at >= recorded.received_at
        assert (failed.attempts, failed.payload) == (1, payload)

        with store.transaction():
            store.record_event(event, payload)
            store.finish_event("evt_finish", "processed", user_id="1")

        processed = store.get_event("evt_finish")
        assert (processed.status, processed.user_id, processed.error) == ("processed", "1", None)
        assert processed.processed_at >= failed.processed_at
        assert processed.attempts == 2

    def test_get_event_of_unknown_id_is_none(self, store: Any) -> None:
        assert store.get_event("evt_unknown") is None

    # Listing and pruning the log (the CLI's needs)

    @pytest.fixture
    def logged(self, store: Any, tick: Callable[[], None]) -> Any:
        """Three events, received in the order a, b, c (``tick`` between); created in order
        a, c, b."""
        self._record(store, "evt_a", "processed", CREATED - 300)
        tick()
        self._record(store, "evt_b", "unmatched", CREATED - 100, customer="cus_other")
        tick()
        self._record(
            store, "evt_c", "failed", CREATED - 200, event_type="customer.subscription.created"
        )
        return store

    @staticmethod
    def _record(store: Any, event_id: str, status: str, created: int, **facts: Any) -> None:
        """Store one event as received and finished with ``status``."""
        event, payload = stripe_event(event_id, created=created, **facts)
        with store.transaction():
            store.record_event(event, payload)
            store.finish_event(event_id, status)

    def test_list_events_is_newest_received_first(self, logged: Any) -> None:
        events = logged.list_events()

        assert ids(events) == ["evt_c", "evt_b", "evt_a"]
        assert events[0] == logged.get_event("evt_c")
        assert_utc(events[0].received_at)
        assert ids(logged.list_events(limit=2)) == ["evt_c", "evt_b"]

    def test_list_events_oldest_first_is_by_stripes_creation_time(self, logged: Any) -> None:
        assert ids(logged.list_events(oldest_first=True)) == ["evt_a", "evt_c", "evt_b"]

    def test_list_events_filters_by_status_type_and_customer(self, logged: Any) -> None:
        assert ids(logged.list_events(statuses={"failed", "unmatched"})) == ["evt_c", "evt_b"]
        assert ids(logged.list_events(statuses=[])) == []
        assert ids(logged.list_events(event_type="customer.subscription.created")) == ["evt_c"]
        assert ids(logged.list_events(customer_id="cus_test")) == ["evt_c", "evt_a"]
        assert ids(logged.list_events(customer_id="cus_test", statuses=["processed"])) == ["evt_a"]

    def test_delete_events_deletes_older_events_with_the_given_statuses(self, logged: Any) -> None:
        before_c = logged.get_event("evt_c").received_at  # evt_a and evt_b came before
        with logged.transaction():
            deleted = logged.delete_events(before=before_c, statuses={"processed", "failed"})

        assert deleted == 1
        assert ids(logged.list_events()) == ["evt_c", "evt_b"]
        with logged.transaction():
            assert logged.delete_events(before=before_c, statuses={"processed"}) == 0

    def test_count_events_counts_older_events_with_the_given_statuses(self, logged: Any) -> None:
        # evt_a (processed) and evt_b (unmatched) were received before evt_c
        before_c = logged.get_event("evt_c").received_at

        assert logged.count_events(before=before_c, statuses={"processed", "failed"}) == 1
        assert logged.count_events(before=before_c, statuses={"processed", "unmatched"}) == 2
        later = before_c + timedelta(seconds=1)
        statuses = {"processed", "failed", "unmatched"}
        assert logged.count_events(before=later, statuses=statuses) == 3
        assert logged.count_events(before=later, statuses=set()) == 0
        assert len(logged.list_events()) == 3  # counting deletes nothing

    # Optional parts

    def test_accounts_with_customer_lists_linked_accounts_by_user_id(self, store: Any) -> None:
        listing = store if isinstance(store, AccountListing) else None
        if listing is None:
            pytest.skip("the store lists no accounts (optional: AccountListing)")
        assert [a.user_id for a in listing.accounts_with_customer()] == ["1"]

        store.set_customer_id("2", "cus_two")

        accounts = listing.accounts_with_customer()
        assert [(a.user_id, a.stripe_customer_id) for a in accounts] == [
            ("1", "cus_test"),
            ("2", "cus_two"),
        ]
        assert accounts[0] == store.get("1")

    def test_page_events_pages_by_keyset_newest_received_first(self, logged: Any) -> None:
        """EventPaging: each page starts after the last event of the one before."""
        paging = logged if isinstance(logged, EventPaging) else None
        if paging is None:
            pytest.skip("the store pages no events (optional: EventPaging)")
        first = paging.page_events(limit=2)
        assert ids(first) == ["evt_c", "evt_b"]
        assert first[0] == logged.get_event("evt_c")
        cursor = EventCursor(first[-1].received_at, first[-1].id)
        assert ids(paging.page_events(after=cursor, limit=2)) == ["evt_a"]
        last = logged.get_event("evt_a")
        assert paging.page_events(after=EventCursor(last.received_at, last.id), limit=2) == []

    def test_page_events_filters_by_status_type_customer_and_time(self, logged: Any) -> None:
        paging = logged if isinstance(logged, EventPaging) else None
        if paging is None:
            pytest.skip("the store pages no events (optional: EventPaging)")
        b = logged.get_event("evt_b").received_at
        assert ids(paging.page_events(statuses={"failed", "processed"}, limit=5)) == [
            "evt_c",
            "evt_a",
        ]
        assert paging.page_events(statuses=[], limit=5) == []
        page = paging.page_events(event_type="customer.subscription.created", limit=5)
        assert ids(page) == ["evt_c"]
        assert ids(paging.page_events(customer_id="cus_other", limit=5)) == ["evt_b"]
        assert ids(paging.page_events(received_since=b, limit=5)) == ["evt_c", "evt_b"]
        assert ids(paging.page_events(received_before=b, limit=5)) == ["evt_a"]
        since_b = paging.page_events(received_since=b, received_before=b, limit=5)
        assert since_b == []

    def test_page_events_pages_cover_the_log_once_even_with_equal_receipt_times(
        self, store: Any
    ) -> None:
        """Events received in the same instant are ordered by id: no page repeats or skips one."""
        paging = store if isinstance(store, EventPaging) else None
        if paging is None:
            pytest.skip("the store pages no events (optional: EventPaging)")
        for number in range(7):
            self._record(store, f"evt_same_{number}", "processed", CREATED)
        seen: list[str] = []
        cursor = None
        while True:
            page = paging.page_events(after=cursor, limit=3)
            if not page:
                break
            seen += ids(page)
            cursor = EventCursor(page[-1].received_at, page[-1].id)
        assert seen == ids(store.list_events())
        assert sorted(seen) == [f"evt_same_{number}" for number in range(7)]

    def test_stores_keep_entitlements_per_customer(self, store: Any) -> None:
        """EntitlementLog: a blank record is created and locked, saved over, read back in UTC."""
        if ENTITLEMENT_LOG.lacking(store) == ENTITLEMENT_LOG.methods:
            pytest.skip("the store keeps no entitlements (optional: EntitlementLog)")
        log: EventLog = store
        entitlements: EntitlementLog = store
        assert isinstance(store, EntitlementLog)
        assert entitlements.entitlements_of("cus_new") is None

        with log.transaction():
            blank = entitlements.lock_entitlements("cus_new")
            assert (blank.customer_id, blank.features, blank.last_event_at) == (
                "cus_new",
                frozenset(),
                None,
            )
            entitlements.save_entitlements(
                EntitlementRecord(
                    customer_id="cus_new",
                    features=frozenset({"export", "api access", "ünïcode"}),
                    last_event_at=datetime(2031, 5, 17, 10, 30, 15, tzinfo=PLUS_TWO),
                    last_event_id="evt_summary",
                    updated_at=PERIOD_END,
                )
            )

        stored = entitlements.entitlements_of("cus_new")
        assert stored is not None
        assert stored.features == {"export", "api access", "ünïcode"}
        assert stored.last_event_at == datetime(2031, 5, 17, 8, 30, 15, tzinfo=UTC)
        assert_utc(stored.last_event_at)
        assert_utc(stored.updated_at)
        assert stored.last_event_id == "evt_summary"
        with log.transaction():
            assert entitlements.lock_entitlements("cus_new") == stored  # existing: kept as it is

        with pytest.raises(RuntimeError), log.transaction():
            entitlements.save_entitlements(EntitlementRecord("cus_new", frozenset(), None))
            raise RuntimeError("rolled back")
        assert entitlements.entitlements_of("cus_new") == stored

    def test_stores_keep_usage_rows_claimed_once_and_summed(self, store: Any) -> None:
        """UsageLog: a repeated identifier writes nothing, a rolled-back report leaves no
        row, due rows are claimed oldest first, progress is saved, totals leave out failed
        rows and rows before ``since``."""
        if USAGE_LOG.lacking(store) == USAGE_LOG.methods:
            pytest.skip("the store keeps no usage (optional: UsageLog)")
        log: EventLog = store
        usage: UsageLog = store
        assert isinstance(store, UsageLog)

        def row(key: str, minute: int, **fields: Any) -> UsageRecord:
            at = datetime(2031, 5, 17, 10, minute, tzinfo=PLUS_TWO)
            values: dict[str, Any] = {
                "identifier": key,
                "user_id": "1",
                "customer_id": "cus_test",
                "event_name": "api_calls",
                "value": 2,
                "timestamp": at,
                "next_attempt_at": at,
                "reported_at": at,
            }
            return UsageRecord(**(values | fields))

        with log.transaction():
            assert usage.add_usage(row("u_b", 2)) is True
            assert usage.add_usage(row("u_a", 1)) is True
            assert usage.add_usage(row("u_a", 1, value=99)) is False  # a repeat: no-op
            assert usage.add_usage(row("u_late", 3, next_attempt_at=PERIOD_END)) is True
        with pytest.raises(RuntimeError), log.transaction():
            usage.add_usage(row("u_rolled_back", 1))
            raise RuntimeError("the host's work failed")

        now = datetime(2031, 5, 17, 8, 5, tzinfo=UTC)
        with log.transaction():
            claimed = usage.claim_usage(limit=10, now=now)
            assert [r.identifier for r in claimed] == ["u_a", "u_b"]  # u_late not due yet
            assert claimed[0] == row("u_a", 1).in_utc()
            assert_utc(claimed[0].timestamp)
            assert usage.claim_usage(limit=1, now=now)[0].identifier == "u_a"
            sent_at = datetime(2031, 5, 17, 10, 6, tzinfo=PLUS_TWO)
            usage.save_usage(
                [
                    replace(
                        claimed[0],
                        status=UsageStatus.SENT,
                        attempts=1,
                        sent_at=sent_at,
                        first_attempt_at=sent_at,
                        next_attempt_at=None,
                    ),
                    replace(
                        claimed[1],
                        status=UsageStatus.FAILED,
                        attempts=1,
                        error="HTTP 400: No such meter",
                        next_attempt_at=None,
                    ),
                ]
            )

        with log.transaction():
            assert usage.claim_usage(limit=10, now=now) == []
        listed = {r.identifier: r for r in usage.list_usage()}
        assert set(listed) == {"u_a", "u_b", "u_late"}
        assert [r.identifier for r in usage.list_usage()] == ["u_late", "u_b", "u_a"]
        assert listed["u_a"].sent_at == datetime(2031, 5, 17, 8, 6, tzinfo=UTC)
        assert listed["u_b"].error == "HTTP 400: No such meter"
        failed = usage.list_usage(statuses=[UsageStatus.FAILED])
        assert [r.identifier for r in failed] == ["u_b"]
        assert usage.list_usage(limit=1)[0].identifier == "u_late"
        assert usage.count_usage() == {"sent": 1, "failed": 1, "pending": 1}
        since = datetime(2031, 5, 17, 8, 1, tzinfo=UTC)
        assert usage.usage_total("1", "api_calls", since=since) == 4  # u_a + u_late
        later = datetime(2031, 5, 17, 8, 2, tzinfo=UTC)
        assert usage.usage_total("1", "api_calls", since=later) == 2  # u_late only
        assert usage.usage_total("2", "api_calls", since=since) == 0
        assert usage.usage_total("1", "other", since=since) == 0

    def test_stores_list_an_accounts_usage_newest_first_and_bounded(self, store: Any) -> None:
        """UsageLog.list_usage(user_id=..., limit=...): only that account's rows, newest
        reported first, at most ``limit``, with ``statuses`` too (the operations page)."""
        if USAGE_LOG.lacking(store) == USAGE_LOG.methods:
            pytest.skip("the store keeps no usage (optional: UsageLog)")
        log: EventLog = store
        usage: UsageLog = store

        def row(key: str, user_id: str, minute: int, **fields: Any) -> UsageRecord:
            at = datetime(2031, 5, 17, 10, minute, tzinfo=PLUS_TWO)
            values: dict[str, Any] = {
                "identifier": key,
                "user_id": user_id,
                "customer_id": None,
                "event_name": "api_calls",
                "value": minute,
                "timestamp": at,
                "next_attempt_at": at,
                "reported_at": at,
            }
            return UsageRecord(**(values | fields))

        with log.transaction():
            usage.add_usage(row("one_a", "1", 1))
            usage.add_usage(row("two_a", "2", 2))
            usage.add_usage(row("one_b", "1", 3, status=UsageStatus.FAILED, error="No meter"))
            usage.add_usage(row("one_c", "1", 4))
            usage.add_usage(row("two_b", "2", 5))

        mine = usage.list_usage(user_id="1")
        assert [r.identifier for r in mine] == ["one_c", "one_b", "one_a"]
        assert mine[1] == row("one_b", "1", 3, status=UsageStatus.FAILED, error="No meter").in_utc()
        assert_utc(mine[0].reported_at)
        assert [r.identifier for r in usage.list_usage(user_id="1", limit=2)] == ["one_c", "one_b"]
        failed = usage.list_usage(user_id="1", statuses=[UsageStatus.FAILED])
        assert [r.identifier for r in failed] == ["one_b"]
        assert usage.list_usage(user_id="2", statuses=[UsageStatus.FAILED]) == []
        assert [r.identifier for r in usage.list_usage(user_id="2")] == ["two_b", "two_a"]
        assert usage.list_usage(user_id="3") == []

    def test_stores_keep_purchases_locked_saved_and_listed(self, store: Any) -> None:
        """PurchaseLog: a blank record is created and locked (and kept as it is when it
        exists), saved over and read back in UTC with its refunds, listed per account newest
        first (blank ones, with no account, not listed), and a rolled-back save leaves the
        record as it was."""
        if PURCHASE_LOG.lacking(store) == PURCHASE_LOG.methods:
            pytest.skip("the store keeps no purchases (optional: PurchaseLog)")
        log: EventLog = store
        purchases: PurchaseLog = store
        assert isinstance(store, PurchaseLog)
        assert purchases.get_purchase("pi_new") is None

        at = datetime(2031, 5, 17, 10, 30, 15, tzinfo=PLUS_TWO)
        with log.transaction():
            blank = purchases.lock_purchase("pi_new")
            assert blank == PurchaseRecord("pi_new")
            purchases.save_purchase(
                PurchaseRecord(
                    id="pi_new",
                    user_id="1",
                    customer_id="cus_test",
                    product="credits_100",
                    quantity=2,
                    amount=3000,
                    currency="eur",
                    payment_intent_id="pi_new",
                    checkout_session_id="cs_new",
                    charge_id="ch_new",
                    status="partially_refunded",
                    payment_status="paid",
                    amount_refunded=1000,
                    refunds=(RefundPart("re_1", 1000, "succeeded", at, at),),
                    charge_amount_refunded=1000,
                    charge_event_at=at,
                    dispute_id="dp_1",
                    dispute_status="needs_response",
                    dispute_event_at=at,
                    created=at - timedelta(hours=1),
                    last_event_at=at,
                )
            )
            older = purchases.lock_purchase("pi_old")
            purchases.save_purchase(
                replace(older, user_id="1", status="paid", created=at - timedelta(days=1))
            )
            purchases.lock_purchase("pi_blank")  # a refund before its session: no account

        stored = purchases.get_purchase("pi_new")
        assert stored is not None
        utc = datetime(2031, 5, 17, 8, 30, 15, tzinfo=UTC)
        assert (stored.product, stored.quantity, stored.amount, stored.currency) == (
            "credits_100",
            2,
            3000,
            "eur",
        )
        assert (stored.status, stored.amount_refunded, stored.dispute_status) == (
            "partially_refunded",
            1000,
            "needs_response",
        )
        assert stored.refunds == (RefundPart("re_1", 1000, "succeeded", utc, utc),)
        assert (stored.charge_event_at, stored.dispute_event_at, stored.last_event_at) == (
            utc,
            utc,
            utc,
        )
        assert_utc(stored.created)
        assert [p.id for p in purchases.purchases_of("1")] == ["pi_new", "pi_old"]
        assert purchases.purchases_of("2") == []
        with log.transaction():
            assert purchases.lock_purchase("pi_new") == stored  # existing: kept as it is

        with pytest.raises(RuntimeError), log.transaction():
            purchases.save_purchase(replace(stored, status="refunded"))
            raise RuntimeError("rolled back")
        assert purchases.get_purchase("pi_new") == stored
