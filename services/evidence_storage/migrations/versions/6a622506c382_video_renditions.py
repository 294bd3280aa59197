"""Video codecs on evidence (from the ffmpeg probe) and web-playable renditions made by the evidence worker.

Revision ID: 6a622506c382
Revises: 0002
Create Date: 2026-12-02 06:46:32.077424
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "6a622506c382"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_renditions",
        sa.Column("evidence_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("object_key", sa.String(length=512), nullable=True),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["evidence_id"], ["evidence.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("evidence_id"),
    )
    with op.batch_alter_table("evidence_renditions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evidence_renditions_state"), ["state"], unique=False)
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("video_codec", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("audio_codec", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_column("audio_codec")
        batch_op.drop_column("video_codec")
    with op.batch_alter_table("evidence_renditions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evidence_renditions_state"))
    op.drop_table("evidence_renditions")
