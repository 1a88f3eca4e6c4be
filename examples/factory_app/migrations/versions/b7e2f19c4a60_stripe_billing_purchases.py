"""stripe_billing_purchases: one-time purchases, one row per payment, with refunds and disputes

Revision ID: b7e2f19c4a60
Revises: d41c7e05a9b3
Create Date: 2026-12-08 10:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b7e2f19c4a60"
down_revision = "d41c7e05a9b3"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "stripe_billing_purchases",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("customer_id", sa.String(length=255), nullable=True),
        sa.Column("product", sa.String(length=100), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=10), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("charge_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("payment_status", sa.String(length=20), nullable=True),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("refunds", sa.Text(), nullable=False),
        sa.Column("charge_amount_refunded", sa.BigInteger(), nullable=True),
        sa.Column("charge_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispute_id", sa.String(length=255), nullable=True),
        sa.Column("dispute_status", sa.String(length=30), nullable=True),
        sa.Column("dispute_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_billing_purchases")),
    )
    op.create_index(
        "ix_stripe_billing_purchases_account",
        "stripe_billing_purchases",
        ["user_id", "created"],
        unique=False,
    )


def downgrade():
    op.drop_index("ix_stripe_billing_purchases_account", table_name="stripe_billing_purchases")
    op.drop_table("stripe_billing_purchases")
