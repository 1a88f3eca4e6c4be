"""stripe_billing_entitlements: each customer's active Stripe Entitlements (0.2)

Revision ID: 8c3f1a9e2b74
Revises: 42d1ee6138a5
Create Date: 2026-12-01 11:05:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "8c3f1a9e2b74"
down_revision = "42d1ee6138a5"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "stripe_billing_entitlements",
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_id", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_stripe_billing_entitlements")),
    )


def downgrade():
    op.drop_table("stripe_billing_entitlements")
