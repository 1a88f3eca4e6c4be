"""The doc fixes of issue 22, each held to the behaviour it describes: quickstart's route
table names routes the app registers; operations.md's ``flask billing trigger`` accepts
every event type it lists, the entitlement summary among them; ``make test`` says how
long it runs before it runs. (Anonymous Checkout with CSRFProtect being Flask-WTF's 400,
as docs/checkout.md says: tests/test_buttons.py.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import Host
from test_cli_dev import billing

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_quickstarts_route_table_names_routes_the_app_registers(host: Host) -> None:
    text = (DOCS / "quickstart.md").read_text()
    table = text.split("the ones a first integration uses:", 1)[1].split("\n\n", 2)[1]
    listed = re.findall(r"^\| `(GET|POST) (/[^`]*)` \|", table, re.M)
    rules = {
        (method, rule.rule)
        for rule in host.app.url_map.iter_rules()
        for method in rule.methods or ()
    }

    assert len(listed) == 4, table  # webhook, checkout, portal, success
    for method, path in listed:
        assert (method, path) in rules, (method, path)
    assert "three routes" not in text


def listed_trigger_types() -> list[str]:
    """The event types operations.md says ``trigger`` takes (``.updated`` after
    ``customer.subscription.created`` is ``customer.subscription.updated``)."""
    text = " ".join((DOCS / "operations.md").read_text().split())
    paragraph = text.split("`EVENT_TYPE` is one of the handled types:", 1)[1]
    paragraph = paragraph.split("(another is refused", 1)[0]
    types: list[str] = []
    for name in re.findall(r"`([a-z_.]+)`", paragraph):
        if name.startswith("."):
            name = types[-1].rsplit(".", 1)[0] + name
        types.append(name)
    return types


def test_trigger_accepts_every_event_type_operations_md_lists(host: Host) -> None:
    types = listed_trigger_types()

    assert "entitlements.active_entitlement_summary.updated" in types
    assert "customer.subscription.trial_will_end" in types
    for event_type in types:
        result = billing(host, "trigger", event_type, "--user", "1")
        assert result.exit_code == 0, (event_type, result.output)
        assert "HTTP 200" in result.output, (event_type, result.output)


def test_make_test_says_how_long_the_suite_runs_before_running_it() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "pytest"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    hint = next(line for line in dry_run.splitlines() if "Running the whole suite" in line)

    assert "a few minutes" in hint
    assert dry_run.index(hint) < dry_run.index("pytest\n")  # printed first


def test_the_tables_the_docs_say_the_store_adds_are_the_stores_tables(host: Host) -> None:
    """README and integrating.md name every table SQLAlchemyUserStore adds to db.metadata
    (they named three after usage and purchases made five)."""
    tables = {name for name in host.db.metadata.tables if name.startswith("stripe_billing_")}
    for page in (ROOT / "README.md", DOCS / "integrating.md", DOCS / "stores.md"):
        text = page.read_text()
        assert "three tables" not in text, page
        for name in tables:
            assert f"`{name}`" in text, (page, name)


def test_the_endpoint_event_lists_name_every_handled_type() -> None:
    """README's "On the Stripe endpoint, enable ..." and operations.md's checklist name each
    type in HANDLED_EVENT_TYPES (the purchases' and README's invoice types were missing)."""
    from flask_stripe_billing import HANDLED_EVENT_TYPES

    readme = " ".join((ROOT / "README.md").read_text().split())
    readme = readme.split("On the Stripe endpoint, enable", 1)[1].split("other types", 1)[0]
    checklist = " ".join((DOCS / "operations.md").read_text().split())
    checklist = checklist.split("**Endpoint events.**", 1)[1].split("Other types", 1)[0]
    for text in (readme, checklist):
        types: list[str] = []
        for name in re.findall(r"`([a-z_.]+)`", text):
            if name.startswith("."):
                name = types[-1].rsplit(".", 1)[0] + name
            types.append(name)
        assert not set(HANDLED_EVENT_TYPES) - set(types), set(HANDLED_EVENT_TYPES) - set(types)
