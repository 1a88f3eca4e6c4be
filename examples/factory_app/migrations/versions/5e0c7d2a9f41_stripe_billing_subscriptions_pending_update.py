"""stripe_billing_subscriptions.pending_update: a change held until its payment (3-D Secure)

Revision ID: 5e0c7d2a9f41
Revises: 8c3f1a9e2b74
Create Date: 2026-12-07 16:40:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "5e0c7d2a9f41"
down_revision = "8c3f1a9e2b74"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("stripe_billing_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_update", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("stripe_billing_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("pending_update")
