"""deliveries: the channel of a delivery (email, dingtalk, wecom) for group-robot posts (issue 18).

Existing rows are e-mails.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(length=16), nullable=False, server_default="email")
        )
        batch_op.create_index(batch_op.f("ix_deliveries_channel"), ["channel"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_channel"))
        batch_op.drop_column("channel")
