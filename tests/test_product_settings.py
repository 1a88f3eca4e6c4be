"""STRIPE_BILLING_PRODUCTS and STRIPE_BILLING_PRODUCT_FEATURES: parsed like the plans,
with lookup keys resolved the same way."""

from __future__ import annotations

import pytest

from flask_stripe_billing.config import Settings


def test_products_accept_a_mapping_json_or_pairs() -> None:
    as_dict = Settings.from_config({"STRIPE_BILLING_PRODUCTS": {"price_c100": "credits_100"}}, {})
    as_json = Settings.from_config({"STRIPE_BILLING_PRODUCTS": '{"price_c100": "credits_100"}'}, {})
    as_text = Settings.from_config(
        {"STRIPE_BILLING_PRODUCTS": "price_c100=credits_100,price_life=lifetime"}, {}
    )
    assert as_dict.products == as_json.products == {"price_c100": "credits_100"}
    assert as_text.price_for_product("lifetime") == "price_life"
    assert as_text.product_for_prices(("price_x", "price_c100")) == "credits_100"
    assert as_text.price_for_product("nothing") is None


def test_a_malformed_products_setting_is_named() -> None:
    with pytest.raises(ValueError, match="STRIPE_BILLING_PRODUCTS must look like"):
        Settings.from_config({"STRIPE_BILLING_PRODUCTS": "price_only"}, {})


def test_a_product_sold_by_two_prices_is_refused() -> None:
    with pytest.raises(ValueError, match="credits_100 has more than one price"):
        Settings.from_config(
            {"STRIPE_BILLING_PRODUCTS": "price_a=credits_100,price_b=credits_100"}, {}
        )


def test_product_features_are_lists_per_product() -> None:
    settings = Settings.from_config(
        {"STRIPE_BILLING_PRODUCT_FEATURES": {"lifetime": ["export", "api"]}}, {}
    )
    assert settings.product_features == {"lifetime": ("export", "api")}
    with pytest.raises(ValueError, match=r"STRIPE_BILLING_PRODUCT_FEATURES\['lifetime'\]"):
        Settings.from_config({"STRIPE_BILLING_PRODUCT_FEATURES": {"lifetime": "export"}}, {})


def test_a_product_lookup_key_resolves_to_its_price_id() -> None:
    settings = Settings.from_config(
        {"STRIPE_BILLING_PRODUCTS": {"lookup_key:c100": "credits_100"}}, {}
    )
    assert settings.lookup_keys == frozenset({"c100"})
    resolved = settings.with_prices({"c100": "price_123"})
    assert resolved.products == {"price_123": "credits_100"}
    assert resolved.price_lookup_keys == {"price_123": "c100"}
