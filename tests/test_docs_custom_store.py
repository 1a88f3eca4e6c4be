"""The store that docs/custom-store.md builds keeps the contract: the page's module, run
through the public contract kit exactly as the page tells a host to."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa

from flask_stripe_billing import BillingAccount
from flask_stripe_billing.stores.tables import entitlement_table, event_table, subscription_table
from flask_stripe_billing.testing import StoreContract

PAGE = Path(__file__).resolve().parent.parent / "docs" / "custom-store.md"


def page_module(tmp_path: Path) -> ModuleType:
    """``billing_store.py``: the first Python block under the page's "The store" heading."""
    text = PAGE.read_text()
    section = text[text.index("### The store\n") :]
    block = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None
    path = tmp_path / "billing_store.py"
    path.write_text(block.group(1))
    spec = importlib.util.spec_from_file_location("billing_store", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["billing_store"] = module
    spec.loader.exec_module(module)
    return module


class TestTheDocumentedStore(StoreContract):
    linked_account = BillingAccount(
        user_id="1", email="one@example.com", stripe_customer_id="cus_test"
    )

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Iterator[Any]:
        module = page_module(tmp_path)
        engine = sa.create_engine(f"sqlite:///{tmp_path}/billing.db")
        module.metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(
                module.users.insert(),
                [
                    {"id": 1, "email": "one@example.com", "stripe_customer_id": "cus_test"},
                    {"id": 2, "email": "two@example.com", "stripe_customer_id": None},
                ],
            )
        yield module.SQLBillingStore(engine)
        engine.dispose()
        sys.modules.pop("billing_store", None)


def test_the_documented_tables_have_the_library_tables_columns(tmp_path: Path) -> None:
    """The page's subscription and event tables are the library's own (``updated_at`` too), so
    a store written from it can share tables with the shipped stores and their migrations."""
    module = page_module(tmp_path)
    sys.modules.pop("billing_store", None)
    library = sa.MetaData()

    for documented, real in (
        (module.subscriptions, subscription_table(library)),
        (module.events, event_table(library)),
    ):
        assert documented.name == real.name
        columns = {(column.name, column.nullable) for column in documented.c}
        assert columns == {(column.name, column.nullable) for column in real.c}


def test_the_documented_entitlement_table_is_the_library_table() -> None:
    """The page's entitlement table too: every column, ``updated_at NOT NULL`` as printed."""
    text = PAGE.read_text()
    block = re.search(r"\nentitlements = sa\.Table\(\n.*?\n\)\n", text, flags=re.DOTALL)
    assert block is not None
    scope: dict[str, Any] = {"sa": sa, "metadata": sa.MetaData()}
    exec(block.group(0), scope)
    documented = scope["entitlements"]
    real = entitlement_table(sa.MetaData())

    assert documented.name == real.name
    columns = {(column.name, column.nullable) for column in documented.c}
    assert columns == {(column.name, column.nullable) for column in real.c}
    assert ("updated_at", False) in columns
