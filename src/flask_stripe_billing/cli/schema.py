"""``flask billing schema``: the SQL that creates what the library needs, per dialect."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..redact import describe_error
from ..state import get_state
from ..stores.base import SchemaInspection
from ..stores.dbapi import DEFAULT_USERS_TABLE, DBAPIUserStore
from ..stores.schema import DIALECTS, schema_script, upgrade_script
from ..stores.sqlalchemy import SQLAlchemyUserStore
from .common import SQLName, reported_errors


@click.command("schema")
@click.option(
    "--dialect",
    type=click.Choice(sorted(DIALECTS)),
    help="The database to write for (default: the app's store's, else sqlite).",
)
@click.option(
    "--users-table",
    type=SQLName(),
    metavar="NAME",
    help=f"The host's users table (default: the DB-API store's, else {DEFAULT_USERS_TABLE}).",
)
@click.option(
    "--upgrade",
    is_flag=True,
    help="Print only what the app's database lacks (it is asked), to bring it to this release.",
)
@with_appcontext
def schema_command(dialect: str | None, users_table: str | None, upgrade: bool) -> None:
    """Print the CREATE TABLE statements of the library's tables, and the ALTER TABLE
    statements adding the billing columns to your users table.

    Run them once (sqlite3 app.db < schema.sql, psql -f schema.sql), or put them
    in your migrations. Stores with SQLAlchemy models get the same tables from
    db.create_all() or Alembic instead. After upgrading the package, --upgrade prints
    only the statements your existing database lacks.
    """
    store = get_state().user_store
    if upgrade:
        click.echo(_upgrade(store, dialect), nl=False)
        return
    options: dict[str, object] = {}
    if isinstance(store, DBAPIUserStore):
        users_table = users_table or store.users_table
        options["columns"] = {
            field: name
            for field, name in store.column_overrides.items()
            if name is not None and field != "user_id"
        }
        options["event_table_name"] = store.event_table_name
        options["subscription_table_name"] = store.subscription_table_name
        options["entitlement_table_name"] = store.entitlement_table_name
        options["usage_table_name"] = store.usage_table_name
        options["purchase_table_name"] = store.purchase_table_name
        if dialect is None:
            with reported_errors():  # as given, else asks the driver of a connection
                dialect = store.session.dialect.name
    elif isinstance(store, SQLAlchemyUserStore):
        name = store.db.engine.dialect.name
        dialect = dialect or (name if name in DIALECTS else None)
    click.echo(
        schema_script(
            dialect or "sqlite", users_table=users_table or DEFAULT_USERS_TABLE, **options
        ),
        nl=False,
    )


def _upgrade(store: object, dialect: str | None) -> str:
    """The statements the store's database lacks, in its own dialect (or ``dialect``)."""
    if not isinstance(store, SchemaInspection):
        raise click.ClickException(
            f"{type(store).__name__} cannot tell what its database lacks; "
            "compare flask billing schema with your tables"
        )
    try:
        gaps = store.schema_gaps()
        if dialect is None and isinstance(store, DBAPIUserStore):
            dialect = store.session.dialect.name
        elif dialect is None and isinstance(store, SQLAlchemyUserStore):
            dialect = store.db.engine.dialect.name
    except Exception as error:
        text = describe_error(error)
        raise click.ClickException(f"The database could not be inspected: {text}") from None
    if dialect not in DIALECTS:
        raise click.ClickException(f"no upgrade SQL for {dialect}; pass --dialect")
    return upgrade_script(dialect, gaps)
