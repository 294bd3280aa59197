"""Claims and releases in the order review made them: when the newest one intake applied was made.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 17:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both databases (SQLite has had DROP COLUMN since 3.35): a batch operation would copy the
# submissions table, which other tables' foreign keys refer to.
def upgrade() -> None:
    op.add_column("submissions", sa.Column("claim_changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("submissions", "claim_changed_at")
