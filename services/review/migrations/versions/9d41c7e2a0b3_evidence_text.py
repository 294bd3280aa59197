"""The text read in photos and video posters (evidence.text_read), with its finding, for reviewers.

Revision ID: 9d41c7e2a0b3
Revises: f83f4281eb6c
Create Date: 2026-12-02 13:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "9d41c7e2a0b3"
down_revision = "f83f4281eb6c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_evidence_text",
        sa.Column("evidence_id", sa.String(length=36), nullable=False),
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("finding", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("evidence_id"),
    )
    with op.batch_alter_table("review_evidence_text", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_evidence_text_finding"), ["finding"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_review_evidence_text_submission_id"), ["submission_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("review_evidence_text", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_evidence_text_submission_id"))
        batch_op.drop_index(batch_op.f("ix_review_evidence_text_finding"))
    op.drop_table("review_evidence_text")
