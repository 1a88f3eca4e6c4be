"""The store contract kit, used as a host uses it: public imports only, its own subclass."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flask_stripe_billing import BillingAccount, InMemoryUserStore
from flask_stripe_billing.testing import StoreContract

pytest_plugins = ["pytester"]


def two_users() -> InMemoryUserStore:
    """User 1 linked to customer ``cus_test``, user 2 without a customer: what the kit asks."""
    return InMemoryUserStore(
        [BillingAccount(user_id="1", stripe_customer_id="cus_test"), BillingAccount(user_id="2")]
    )


class TestInMemoryStore(StoreContract):
    """A host's test module: the kit against InMemoryUserStore, on the wall clock."""

    @pytest.fixture
    def make_store(self) -> Iterator[InMemoryUserStore]:
        yield two_users()


class NoEntitlements:
    """A host's store keeping the required parts only (no EntitlementLog, no listing)."""

    def __init__(self) -> None:
        self._inner = two_users()

    def __getattr__(self, name: str) -> Any:
        if name in {"lock_entitlements", "save_entitlements", "entitlements_of"}:
            raise AttributeError(name)
        if name == "accounts_with_customer":
            raise AttributeError(name)
        return getattr(self._inner, name)


class TestStoreWithoutOptionalParts(StoreContract):
    """The optional parts' tests are skipped, the rest pass."""

    @pytest.fixture
    def make_store(self) -> Iterator[NoEntitlements]:
        yield NoEntitlements()


#: A host's test module whose store has a bug: ``count_events`` ignores the statuses.
BROKEN_HOST_TESTS = """
import pytest

from flask_stripe_billing import BillingAccount, InMemoryUserStore
from flask_stripe_billing.testing import StoreContract


class CountsEveryStatus(InMemoryUserStore):
    def count_events(self, *, before, statuses):
        return sum(1 for event in self.events if event.received_at < before)


class TestBrokenStore(StoreContract):
    @pytest.fixture
    def make_store(self):
        linked = BillingAccount(user_id="1", stripe_customer_id="cus_test")
        yield CountsEveryStatus([linked, BillingAccount(user_id="2")])
"""


#: A host's test module whose store keeps accounts only.
INCOMPLETE_HOST_TESTS = """
import pytest

from flask_stripe_billing.testing import StoreContract


class AccountsOnly:
    def get(self, user_id, *, lock=False): ...
    def get_by_customer_id(self, customer_id, *, lock=False): ...
    def set_customer_id(self, user_id, customer_id): ...
    def apply(self, user_id, changes): ...


class TestAccountsOnly(StoreContract):
    @pytest.fixture
    def make_store(self):
        yield AccountsOnly()

    def test_nothing_but_the_check(self, store):
        pass
"""


def test_the_kit_fails_exactly_the_broken_method(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_host_store=BROKEN_HOST_TESTS)

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")

    result.assert_outcomes(passed=33, failed=1)  # paging, usage and purchases run too
    result.stdout.fnmatch_lines(
        [
            "*assert 2 == 1*",  # pytest shows the values: the kit's asserts are rewritten
            "*FAILED*test_count_events_counts_older_events*",
        ]
    )


def test_the_kit_names_what_an_incomplete_store_lacks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_host_store=INCOMPLETE_HOST_TESTS)

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", "-k", "nothing")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*StoreContractError*", "*AccountsOnly keeps no event log; pass event_log=...*"]
    )
