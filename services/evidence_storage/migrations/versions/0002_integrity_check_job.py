"""Integrity checks run as a worker job with progress: state, total, error and a heartbeat.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:49:11.187944
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integrity_checks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state", sa.String(length=16), server_default="done", nullable=False))
        batch_op.add_column(sa.Column("total", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_integrity_checks_state"), ["state"], unique=False)
    op.execute("UPDATE integrity_checks SET total = checked")  # runs from before were done in one request


def downgrade() -> None:
    with op.batch_alter_table("integrity_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_integrity_checks_state"))
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("error")
        batch_op.drop_column("total")
        batch_op.drop_column("state")
