"""Signed references: with ``STRIPE_SIGNED_REFERENCES`` on, a Payment Link or pricing
table's ``client_reference_id`` links a customer only when the app signed it
(``billing.payment_link_url`` / ``billing.client_reference``); a payer who writes a
user id there links no one. The library's own Checkout links through its customer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import Host
from support import checkout_event, post_event

from flask_stripe_billing.config import Settings
from flask_stripe_billing.core.events import parse_event
from flask_stripe_billing.core.rules import named_user_id
from flask_stripe_billing.errors import NotConfiguredError

SIGNED = {"SECRET_KEY": "app-secret-key", "STRIPE_SIGNED_REFERENCES": True}
LINK = "https://buy.stripe.com/test_7sI3e0aBc"


def paid_by_stranger(reference: str, **kwargs: Any) -> dict[str, Any]:
    """A Payment-Link Checkout paid by someone whose new customer no account has."""
    kwargs.setdefault("event_id", "evt_payment_link")
    return checkout_event(
        customer="cus_payer", subscription="sub_payer", client_reference_id=reference, **kwargs
    )


def reference_for(host: Host, user_id: str | int) -> str:
    with host.app.app_context():
        return host.billing.client_reference(user_id)


def rows(host: Host) -> list[tuple[str, str | None]]:
    return [(r["status"], r["error"]) for r in host.events()]


def test_a_stranger_naming_an_unsubscribed_user_links_no_one_when_references_are_signed(
    make_host: Callable[..., Host], received: dict[str, list[dict[str, Any]]]
) -> None:
    host = make_host(SIGNED)
    host.add_user(8)

    response = post_event(host.client, paid_by_stranger("8"))

    assert response.status_code == 200
    user = host.user(8)
    assert (user.stripe_customer_id, user.plan, user.stripe_subscription_id) == (None, "free", None)
    [(status, reason)] = rows(host)
    assert status == "unmatched"
    assert reason is not None
    assert "client_reference_id '8' is not a reference this app signed" in reason
    assert "cus_payer" in reason
    [missing] = received["customer_not_found"]
    assert missing["customer_id"] == "cus_payer"


def test_a_signed_reference_links_the_user_it_was_made_for(
    make_host: Callable[..., Host],
) -> None:
    host = make_host(SIGNED)
    host.add_user(8)

    post_event(host.client, paid_by_stranger(reference_for(host, 8)))

    user = host.user(8)
    assert (user.stripe_customer_id, user.plan, user.stripe_subscription_id) == (
        "cus_payer",
        "pro",
        "sub_payer",
    )
    assert rows(host) == [("processed", None)]


def test_a_reference_signed_for_another_user_or_with_another_key_links_no_one(
    make_host: Callable[..., Host],
) -> None:
    other = make_host({**SIGNED, "SECRET_KEY": "another-app"})
    host = make_host(SIGNED)
    host.add_user(8)
    signature = reference_for(host, 9).removeprefix("9-")

    post_event(host.client, paid_by_stranger(f"8-{signature}"))
    post_event(host.client, paid_by_stranger(reference_for(other, 8), event_id="evt_2"))

    assert host.user(8).stripe_customer_id is None
    assert [status for status, _ in rows(host)] == ["unmatched", "unmatched"]


def test_the_payment_link_url_carries_a_signed_reference_that_links_its_user(
    make_host: Callable[..., Host],
) -> None:
    host = make_host(SIGNED)
    host.add_user(8)
    with host.app.app_context():
        url = host.billing.payment_link_url(f"{LINK}?prefilled_email=a%40b.c", 8)

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == LINK
    assert query["prefilled_email"] == ["a@b.c"]
    [reference] = query["client_reference_id"]
    assert reference.startswith("8-") and reference != "8-"
    assert len(reference) <= 200
    assert set(reference) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
    post_event(host.client, paid_by_stranger(reference))
    assert host.user(8).stripe_customer_id == "cus_payer"


def test_the_payment_link_url_replaces_a_reference_already_in_it(
    make_host: Callable[..., Host],
) -> None:
    host = make_host(SIGNED)
    with host.app.app_context():
        url = host.billing.payment_link_url(f"{LINK}?client_reference_id=1", 2)

    [reference] = parse_qs(urlsplit(url).query)["client_reference_id"]
    assert reference == reference_for(host, 2)


def test_the_librarys_own_checkout_still_links_through_its_customer_and_metadata(
    make_host: Callable[..., Host],
) -> None:
    host = make_host(SIGNED)
    host.add_user(1, stripe_customer_id="cus_own")  # stored by Checkout before the session
    host.add_user(2)
    own = checkout_event(
        customer="cus_own", subscription="sub_own", client_reference_id="1", event_id="evt_1"
    )
    # An app's own API-made session for a new customer names the user in metadata too.
    api_made = checkout_event(
        customer="cus_two",
        subscription="sub_two",
        client_reference_id="2",
        metadata={"user_id": "2"},
        event_id="evt_2",
    )

    post_event(host.client, own)
    post_event(host.client, api_made)

    assert host.user(1).plan == "pro"
    assert (host.user(2).stripe_customer_id, host.user(2).plan) == ("cus_two", "pro")
    assert [status for status, _ in rows(host)] == ["processed", "processed"]


def test_without_signing_an_unsigned_reference_links_as_before_and_a_signed_one_too(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"SECRET_KEY": "app-secret-key"})
    host.add_user(8)
    host.add_user(9)

    post_event(host.client, paid_by_stranger("8"))
    signed = checkout_event(
        customer="cus_nine", client_reference_id=reference_for(host, 9), event_id="evt_9"
    )
    post_event(host.client, signed)

    assert host.user(8).stripe_customer_id == "cus_payer"
    assert host.user(9).stripe_customer_id == "cus_nine"


def test_signing_on_without_any_key_links_no_unsigned_reference_and_builds_no_link(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"STRIPE_SIGNED_REFERENCES": True})
    host.add_user(8)

    post_event(host.client, paid_by_stranger("8"))

    assert host.user(8).stripe_customer_id is None
    assert [status for status, _ in rows(host)] == ["unmatched"]
    with host.app.app_context(), pytest.raises(NotConfiguredError) as raised:
        host.billing.payment_link_url(LINK, 8)
    assert raised.value.details["missing"] == ["SECRET_KEY or STRIPE_REFERENCE_SECRET"]


@pytest.mark.parametrize("user_id", ["a/b", "8 9", "", "x" * 160])
def test_a_user_id_stripe_would_not_keep_in_a_reference_is_refused(
    make_host: Callable[..., Host], user_id: str
) -> None:
    host = make_host(SIGNED)
    with host.app.app_context(), pytest.raises(ValueError, match="client_reference_id"):
        host.billing.client_reference(user_id)


def test_the_reference_secret_setting_wins_over_the_apps_secret_key(
    make_host: Callable[..., Host],
) -> None:
    own_key = make_host({**SIGNED, "STRIPE_REFERENCE_SECRET": "references-only"})
    same_key = make_host({"SECRET_KEY": "references-only"})

    assert reference_for(own_key, 8) == reference_for(same_key, 8)
    assert reference_for(own_key, 8) != reference_for(make_host(SIGNED), 8)


def test_the_reference_secret_is_never_in_the_settings_repr() -> None:
    settings = Settings.from_config({"STRIPE_REFERENCE_SECRET": "do-not-show"}, environ={})

    assert settings.reference_secret == "do-not-show"
    assert "do-not-show" not in repr(settings)


def signed_only_for_7(reference: str) -> str | None:
    """A stand-in reader: only ``7-ok`` is a reference the app signed (for user 7)."""
    return "7" if reference == "7-ok" else None


@pytest.mark.parametrize(
    ("reference", "metadata", "signed_only", "named", "refused"),
    [
        ("7-ok", None, True, "7", False),  # signed: names its user
        ("8", None, True, None, True),  # unsigned, signing on: names no one, says why
        ("8", {"user_id": "8"}, True, "8", False),  # metadata only an API call can set
        ("8", None, False, "8", False),  # signing off: as before
        ("7-ok", None, False, "7", False),  # signed, signing off: still its user
        (None, {"user_id": "3"}, True, "3", False),  # no reference: metadata
    ],
)
def test_the_account_a_checkout_names_by_its_reference(
    reference: str | None,
    metadata: dict[str, str] | None,
    signed_only: bool,
    named: str | None,
    refused: bool,
) -> None:
    event = parse_event(checkout_event(client_reference_id=reference, metadata=metadata))

    user_id, reason = named_user_id(event, signed_only_for_7, signed_only=signed_only)

    assert user_id == named
    assert (reason is not None) == refused
    if refused:
        assert reason is not None and f"client_reference_id {reference!r}" in reason
