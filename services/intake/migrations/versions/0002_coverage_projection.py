"""The coverage projection: per-cell and per-topic counters, filled from the submissions already there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The same as services/intake/projection.py rebuild(), frozen here as it was when the tables came.
FILL_CELLS = """
INSERT INTO coverage_cells (campaign_id, unit_id, kind, measure_code, approved, pending, returned)
SELECT campaign_id, unit_id, kind, measure_code,
       SUM(CASE WHEN state = 'approved' THEN 1 ELSE 0 END),
       SUM(CASE WHEN state IN ('submitted', 'under_review') THEN 1 ELSE 0 END),
       SUM(CASE WHEN state = 'returned' THEN 1 ELSE 0 END)
FROM submissions
WHERE campaign_id IS NOT NULL AND state IN ('approved', 'submitted', 'under_review', 'returned')
GROUP BY campaign_id, unit_id, kind, measure_code
"""
FILL_TOPICS = """
INSERT INTO coverage_topics (campaign_id, unit_id, topic_code, handed_in)
SELECT campaign_id, unit_id, topic_code, COUNT(*)
FROM submission_topics
WHERE campaign_id IS NOT NULL AND handed_in = :yes
GROUP BY campaign_id, unit_id, topic_code
"""


def upgrade() -> None:
    op.create_table(
        "coverage_cells",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("measure_code", sa.String(length=64), nullable=False),
        sa.Column("approved", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("returned", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "unit_id", "kind", "measure_code"),
    )
    op.create_table(
        "coverage_topics",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("topic_code", sa.String(length=64), nullable=False),
        sa.Column("handed_in", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "unit_id", "topic_code"),
    )
    op.execute(FILL_CELLS)
    op.get_bind().execute(sa.text(FILL_TOPICS), {"yes": True})


def downgrade() -> None:
    op.drop_table("coverage_topics")
    op.drop_table("coverage_cells")
