"""A completing upload session holds a lease (completing_until): once it ends, the completing process is taken
to have stopped, and the next complete() takes the completion over instead of answering session_busy forever.

Sessions left completing by an earlier release keep no lease (NULL): they expire as before.

Revision ID: e8f1a3c5b7d9
Revises: d4b7e2a9c1f3
Create Date: 2026-12-04 00:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e8f1a3c5b7d9"
down_revision = "d4b7e2a9c1f3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("completing_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.drop_column("completing_until")
