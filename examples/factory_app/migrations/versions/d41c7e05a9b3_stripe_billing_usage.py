"""stripe_billing_usage: usage reported for Stripe's meters, one row per meter event

Revision ID: d41c7e05a9b3
Revises: 5e0c7d2a9f41
Create Date: 2026-12-07 16:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "d41c7e05a9b3"
down_revision = "5e0c7d2a9f41"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "stripe_billing_usage",
        sa.Column("identifier", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=True),
        sa.Column("event_name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("identifier", name=op.f("pk_stripe_billing_usage")),
    )
    op.create_index(
        "ix_stripe_billing_usage_account",
        "stripe_billing_usage",
        ["user_id", "event_name", "timestamp"],
        unique=False,
    )
    op.create_index(
        "ix_stripe_billing_usage_due",
        "stripe_billing_usage",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_index(
        "ix_stripe_billing_usage_reported",
        "stripe_billing_usage",
        ["user_id", "reported_at"],
        unique=False,
    )


def downgrade():
    op.drop_index("ix_stripe_billing_usage_reported", table_name="stripe_billing_usage")
    op.drop_index("ix_stripe_billing_usage_due", table_name="stripe_billing_usage")
    op.drop_index("ix_stripe_billing_usage_account", table_name="stripe_billing_usage")
    op.drop_table("stripe_billing_usage")
