"""Resumable sessions write their chunks as the parts of one multipart upload: the session keeps the upload's id
and target key, each received part its number and ETag; a chunk row no longer needs an object of its own.

Revision ID: d4b7e2a9c1f3
Revises: c5e0a1d7b9f2
Create Date: 2026-12-03 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "d4b7e2a9c1f3"
down_revision = "c5e0a1d7b9f2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upload_id", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("upload_key", sa.String(length=512), nullable=True))
    with op.batch_alter_table("upload_chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("part_number", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("etag", sa.String(length=200), nullable=True))
        batch_op.alter_column("object_key", existing_type=sa.String(length=512), nullable=True)


def downgrade() -> None:
    # rows of multipart sessions have no object; they cannot be kept under the old schema
    op.execute("DELETE FROM upload_chunks WHERE object_key IS NULL")
    with op.batch_alter_table("upload_chunks", schema=None) as batch_op:
        batch_op.alter_column("object_key", existing_type=sa.String(length=512), nullable=False)
        batch_op.drop_column("etag")
        batch_op.drop_column("part_number")
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.drop_column("upload_key")
        batch_op.drop_column("upload_id")
