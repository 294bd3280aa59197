"""deliveries: a lease (owner, expiry) on claimed rows, a resend count and a fixed Message-ID (issue 12).

Existing rows get resends 0 and no Message-ID (the delivery loop derives the same one from the id); rows left
`sending` have no lease expiry and are taken back at the first claim.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:50:41.058891
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("resends", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_deliveries_lease_expires_at"), ["lease_expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_lease_expires_at"))
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_owner")
        batch_op.drop_column("resends")
        batch_op.drop_column("message_id")
