"""Duplicate links as rows, so the earlier file is flagged too; filled from the later files' JSON lists.

Revision ID: f83f4281eb6c
Revises: 0001
Create Date: 2026-12-02 06:49:04.195124
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "f83f4281eb6c"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    links = op.create_table(
        "review_duplicates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("evidence_id", sa.String(length=36), nullable=False),
        sa.Column("other_id", sa.String(length=36), nullable=False),
        sa.Column("match", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("evidence_id", "other_id"),
    )
    with op.batch_alter_table("review_duplicates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_duplicates_evidence_id"), ["evidence_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_duplicates_other_id"), ["other_id"], unique=False)
    rows = op.get_bind().execute(
        sa.text("SELECT evidence_id, duplicate_of, near_duplicate_of FROM review_evidence")
    )
    made = []
    for evidence_id, exact, near in rows:
        seen: set[str] = set()
        for match, others in (("exact", exact), ("near", near)):
            for other in json.loads(others) if isinstance(others, str) else (others or []):
                if other not in seen:
                    seen.add(other)
                    made.append({"evidence_id": evidence_id, "other_id": other, "match": match})
    if made:
        op.bulk_insert(links, made)


def downgrade() -> None:
    with op.batch_alter_table("review_duplicates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_duplicates_other_id"))
        batch_op.drop_index(batch_op.f("ix_review_duplicates_evidence_id"))
    op.drop_table("review_duplicates")
