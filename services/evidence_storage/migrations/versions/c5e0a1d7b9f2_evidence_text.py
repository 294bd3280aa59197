"""The text read from photos and video posters (OCR) with its finding, and each campaign's keyword rules.

Photos and videos stored before this revision are queued for reading too.

Revision ID: c5e0a1d7b9f2
Revises: 6a622506c382
Create Date: 2026-12-02 13:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c5e0a1d7b9f2"
down_revision = "6a622506c382"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_text",
        sa.Column("evidence_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("finding", sa.String(length=20), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claim", sa.String(length=36), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["evidence_id"], ["evidence.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("evidence_id"),
    )
    with op.batch_alter_table("evidence_text", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evidence_text_state"), ["state"], unique=False)
    with op.batch_alter_table("known_campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_rules", sa.JSON(), nullable=True))
    op.execute(
        "INSERT INTO evidence_text (evidence_id, state, matches, attempts, queued_at) "
        "SELECT id, 'pending', '[]', 0, created_at FROM evidence WHERE category IN ('photo', 'video')"
    )


def downgrade() -> None:
    with op.batch_alter_table("known_campaigns", schema=None) as batch_op:
        batch_op.drop_column("text_rules")
    with op.batch_alter_table("evidence_text", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evidence_text_state"))
    op.drop_table("evidence_text")
