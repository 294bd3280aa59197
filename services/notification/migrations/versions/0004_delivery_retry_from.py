"""deliveries: when the retry window of a requeued delivery began (an operator's requeue starts a new one).

Existing rows keep none: their window starts at created_at, as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 23:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_from", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("retry_from")
