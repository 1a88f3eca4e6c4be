"""``flask billing`` arguments are checked by the webhook's rules: a bad id, time, path or
table name is a usage error (exit code 2, one ``Error:`` line), never a traceback, and
nothing is changed or sent to Stripe."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import responses
from conftest import Host

API_KEY = "sk_test_51CliInputKey0000000000000"
LONG_ID = "cus_" + "x" * 296  # 300 characters: the webhook refuses ids over 255
BAD_IDS = {"empty": "", "blank": "  ", "nul": "cus_\x00x", "long": LONG_ID, "surrogate": "\ud800"}


def billing(host: Host, *args: str) -> Any:
    """Run ``flask billing ARGS`` against the host app, as an operator would."""
    return host.app.test_cli_runner().invoke(args=["billing", *args])


def assert_usage_error(result: Any, says: str) -> None:
    """Click's usage error: exit code 2, an ``Error:`` line naming what is wrong, no
    traceback (the runner keeps no exception but Click's own exit)."""
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception), result.exception
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert says in error
    assert "Traceback" not in result.output


@pytest.fixture
def paying(make_host: Callable[..., Host]) -> Host:
    """A host with an API key; user 2 pays, as customer ``cus_paying``."""
    made = make_host({"STRIPE_API_KEY": API_KEY})
    made.add_user(2, stripe_customer_id="cus_paying", plan="pro")
    return made


# ids


@pytest.mark.parametrize("customer", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_link_refuses_a_customer_id_the_webhook_refuses_and_keeps_the_customer(
    paying: Host, customer: str
) -> None:
    result = billing(paying, "link", "2", customer)

    assert_usage_error(result, "Invalid value for 'CUSTOMER'")
    assert paying.user(2).stripe_customer_id == "cus_paying"
    assert paying.user(2).plan == "pro"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "customer is blank"),
        ("cus_\x00x", "customer holds a NUL character"),
        (LONG_ID, "customer is longer than 255 characters"),
        ("\ud800", "customer holds a lone surrogate"),
    ],
    ids=["empty", "nul", "long", "surrogate"],
)
def test_the_error_says_which_rule_the_id_breaks(paying: Host, value: str, says: str) -> None:
    assert_usage_error(billing(paying, "link", "2", value), says)


@pytest.mark.parametrize("user_id", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_link_refuses_a_bad_user_id(paying: Host, user_id: str) -> None:
    result = billing(paying, "link", user_id, "cus_new")

    assert_usage_error(result, "Invalid value for 'USER_ID'")
    assert paying.user(2).stripe_customer_id == "cus_paying"


def test_link_takes_a_good_id_as_before(paying: Host) -> None:
    paying.add_user(3)

    result = billing(paying, "link", "3", "cus_new")

    assert result.exit_code == 0, result.output
    assert paying.user(3).stripe_customer_id == "cus_new"


#: Every command's id arguments, each given a NUL id; stripe_api (no answers) shows
#: that nothing reaches Stripe.
ID_ARGUMENTS = {
    "events --customer": ["events", "--customer", "{bad}"],
    "events --type": ["events", "--type", "{bad}"],
    "replay": ["replay", "{bad}"],
    "sync USER_ID": ["sync", "{bad}"],
    "sync --starting-after": ["sync", "--all", "--starting-after", "{bad}"],
    "cancel": ["cancel", "{bad}"],
    "resume": ["resume", "{bad}"],
    "change-plan USER_ID": ["change-plan", "{bad}", "price_pro"],
    "change-plan PRICE_ID": ["change-plan", "2", "{bad}"],
    "trigger --customer": ["trigger", "invoice.paid", "--customer", "{bad}"],
    "trigger --subscription": ["trigger", "invoice.paid", "--subscription", "{bad}"],
    "trigger --user": ["trigger", "invoice.paid", "--user", "{bad}"],
    "trigger --price": ["trigger", "invoice.paid", "--price", "{bad}"],
    "trigger --thin --object": [
        "trigger",
        "--thin",
        "customer.subscription.updated",
        "--object",
        "{bad}",
    ],
}


@pytest.mark.parametrize("bad", ["x\x00y", LONG_ID, ""], ids=["nul", "long", "empty"])
@pytest.mark.parametrize("args", ID_ARGUMENTS.values(), ids=ID_ARGUMENTS.keys())
def test_every_command_refuses_a_bad_id(
    paying: Host, stripe_api: responses.RequestsMock, args: list[str], bad: str
) -> None:
    before = paying.events()

    result = billing(paying, *(bad if arg == "{bad}" else arg for arg in args))

    assert_usage_error(result, "Invalid value for")
    assert len(stripe_api.calls) == 0
    assert paying.events() == before
    assert paying.user(2).stripe_customer_id == "cus_paying"


def test_an_event_type_over_100_characters_is_refused(paying: Host) -> None:
    result = billing(paying, "events", "--type", "customer." + "x" * 100)

    assert_usage_error(result, "type is longer than 100 characters")


def test_events_refuses_a_limit_no_database_can_take(paying: Host) -> None:
    result = billing(paying, "events", "--limit", str(2**63))

    assert_usage_error(result, "Invalid value for '--limit'")


# times


@pytest.mark.parametrize(
    "args",
    [
        ["--older-than", "99999999999"],
        ["--older-than", "30000"],  # 82 years: before 1970
        ["--older-than", "30", "--keep", "failed=99999999999"],
    ],
    ids=["overflow", "before-1970", "keep"],
)
def test_prune_refuses_days_reaching_back_before_1970(paying: Host, args: list[str]) -> None:
    result = billing(paying, "prune", *args, "--yes")

    assert_usage_error(result, "days ago is before 1970")


def test_prune_takes_decades_of_days(paying: Host) -> None:
    result = billing(paying, "prune", "--older-than", "10000", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "(10000 days)" in result.output


# paths


def test_sync_refuses_a_checkpoint_in_a_missing_folder_before_asking_stripe(
    paying: Host, stripe_api: responses.RequestsMock
) -> None:
    result = billing(paying, "sync", "--all", "--checkpoint", "/missing/dir/file")

    assert_usage_error(result, "folder '/missing/dir' does not exist")
    assert len(stripe_api.calls) == 0


def test_sync_refuses_a_checkpoint_that_is_a_folder_or_holds_a_nul(
    paying: Host, stripe_api: responses.RequestsMock, tmp_path: Path
) -> None:
    folder = billing(paying, "sync", "--all", "--checkpoint", str(tmp_path))
    nul = billing(paying, "sync", "--all", "--checkpoint", f"{tmp_path}/a\x00b")

    assert_usage_error(folder, "is a directory")
    assert_usage_error(nul, "the path holds a NUL character")
    assert len(stripe_api.calls) == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_sync_refuses_a_checkpoint_in_a_folder_it_cannot_write(
    paying: Host, stripe_api: responses.RequestsMock, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)

    result = billing(paying, "sync", "--all", "--checkpoint", str(locked / "cursor"))

    assert_usage_error(result, "is not writable")
    assert len(stripe_api.calls) == 0


# the schema's table name


@pytest.mark.parametrize(
    "name",
    ["users\nDROP TABLE stripe_billing_events; --", "users; DROP TABLE x", "", "1users", "a\x00"],
    ids=["newline", "semicolon", "empty", "digit", "nul"],
)
def test_schema_refuses_a_users_table_name_the_store_refuses(paying: Host, name: str) -> None:
    result = billing(paying, "schema", "--users-table", name)

    assert_usage_error(result, "not a plain SQL identifier")
    assert "DROP" not in result.output.split("Error:")[0]


@pytest.mark.parametrize("name", ["app_users", "billing.app_users"])
def test_schema_takes_a_plain_or_schema_qualified_name(paying: Host, name: str) -> None:
    result = billing(paying, "schema", "--users-table", name)

    assert result.exit_code == 0, result.output
    assert f"-- columns of the {name} table" in result.output
    assert "ADD COLUMN" in result.output
