"""What the operations page and the stored error texts mask: keys, signing secrets, client
secrets and card numbers, and nothing else."""

from __future__ import annotations

import pytest

from flask_stripe_billing.redact import describe_error, mask, redact_json


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("key sk_live_51AbcDef and whsec_abc", "key [redacted] and [redacted]"),
        ("pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH", "[redacted]"),
        ("seti_1Q2w3e_secret_Zz9", "[redacted]"),
        ("card 4242424242424242.", "card [redacted]."),
        ("card 4000-0566-5566-5556 ok", "card [redacted] ok"),
        ("amex 3782 822463 10005", "amex [redacted]"),
    ],
)
def test_secrets_and_card_numbers_are_masked(text: str, masked: str) -> None:
    assert mask(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "created 1700000000",  # a timestamp
        "4242424242424241",  # 16 digits that fail the Luhn check
        "cus_4242424242424242",  # inside an id
        "in_1Abc amount 4200 currency usd",
        "client_secret",  # the key's own name
    ],
)
def test_other_text_is_kept(text: str) -> None:
    assert mask(text) == text


def test_a_payload_is_masked_by_key_and_by_value() -> None:
    payload = {
        "id": "pi_1",
        "client_secret": "anything at all",
        "card": {"cvc": "123", "last4": "4242", "number": 4242424242424242},
        "metadata": {"note": "card 4242 4242 4242 4242", "invoice": "INV-0042"},
        "amounts": [4200, True, None],
    }

    assert redact_json(payload) == {
        "id": "pi_1",
        "client_secret": "[redacted]",
        "card": {"cvc": "[redacted]", "last4": "4242", "number": "[redacted]"},
        "metadata": {"note": "card [redacted]", "invoice": "INV-0042"},
        "amounts": [4200, True, None],
    }


def test_a_stored_error_masks_a_card_number() -> None:
    error = ValueError("declined card 4242424242424242")

    assert describe_error(error) == "ValueError: declined card [redacted]"
