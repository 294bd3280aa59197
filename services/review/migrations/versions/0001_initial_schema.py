"""The review schema as it was when migrations were introduced, with the append-only guards.

Revision ID: 0001
Revises:
Create Date: 2026-12-02 06:06:44.120016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.audit import guard_statements

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(length=100), nullable=True),
        sa.Column("actor_name", sa.String(length=200), nullable=True),
        sa.Column("actor_role", sa.String(length=32), nullable=True),
        sa.Column("actor_unit_id", sa.String(length=36), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=100), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
    op.create_index(op.f("ix_audit_log_actor_id"), "audit_log", ["actor_id"], unique=False)
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_index("ix_audit_log_resource", "audit_log", ["resource_type", "resource_id"], unique=False)
    op.create_table(
        "circulars",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("snapshot_sha256", sa.String(length=64), nullable=False),
        sa.Column("snapshot_key", sa.String(length=500), nullable=False),
        sa.Column("docx_key", sa.String(length=500), nullable=False),
        sa.Column("xlsx_key", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=100), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "period", "revision", name="uq_circulars_period_revision"),
    )
    op.create_index(op.f("ix_circulars_campaign_id"), "circulars", ["campaign_id"], unique=False)
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "inspections",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("unit_path", sa.String(length=1000), nullable=False),
        sa.Column("sampling_id", sa.String(length=36), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("inspected_on", sa.Date(), nullable=False),
        sa.Column("inspector", sa.String(length=100), nullable=False),
        sa.Column("measures_verified", sa.JSON(), nullable=False),
        sa.Column("residents_asked", sa.Integer(), nullable=False),
        sa.Column("residents_aware", sa.Integer(), nullable=False),
        sa.Column("residents_able", sa.Integer(), nullable=False),
        sa.Column("staff_tested", sa.Integer(), nullable=False),
        sa.Column("staff_proficient", sa.Integer(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_inspections_campaign_id"), "inspections", ["campaign_id"], unique=False)
    op.create_index(op.f("ix_inspections_recorded_at"), "inspections", ["recorded_at"], unique=False)
    op.create_index(op.f("ix_inspections_unit_id"), "inspections", ["unit_id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index(op.f("ix_outbox_published_at"), "outbox", ["published_at"], unique=False)
    op.create_table(
        "review_campaigns",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("organiser", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("publicity_start", sa.Date(), nullable=False),
        sa.Column("publicity_end", sa.Date(), nullable=False),
        sa.Column("inspection_start", sa.Date(), nullable=True),
        sa.Column("inspection_end", sa.Date(), nullable=True),
        sa.Column("measures", sa.JSON(), nullable=False),
        sa.Column("deadlines", sa.JSON(), nullable=False),
        sa.Column("rubric", sa.JSON(), nullable=True),
        sa.Column("supervision_rules", sa.JSON(), nullable=False),
        sa.Column("circular_rules", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id"),
    )
    op.create_table(
        "review_comments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("author_role", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_review_comments_at"), "review_comments", ["at"], unique=False)
    op.create_index(
        op.f("ix_review_comments_submission_id"), "review_comments", ["submission_id"], unique=False
    )
    op.create_index(op.f("ix_review_comments_unit_id"), "review_comments", ["unit_id"], unique=False)
    op.create_table(
        "review_decisions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.Column("measure_code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("reviewer", sa.String(length=100), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_review_decisions_campaign_id"), "review_decisions", ["campaign_id"], unique=False
    )
    op.create_index(op.f("ix_review_decisions_decided_at"), "review_decisions", ["decided_at"], unique=False)
    op.create_index(
        op.f("ix_review_decisions_submission_id"), "review_decisions", ["submission_id"], unique=False
    )
    op.create_index(op.f("ix_review_decisions_unit_id"), "review_decisions", ["unit_id"], unique=False)
    op.create_table(
        "review_evidence",
        sa.Column("evidence_id", sa.String(length=36), nullable=False),
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("captured_at", sa.String(length=64), nullable=True),
        sa.Column("outside_window", sa.Boolean(), nullable=True),
        sa.Column("duplicate_of", sa.JSON(), nullable=False),
        sa.Column("near_duplicate_of", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("evidence_id"),
    )
    op.create_index(
        op.f("ix_review_evidence_submission_id"), "review_evidence", ["submission_id"], unique=False
    )
    op.create_index(op.f("ix_review_evidence_unit_id"), "review_evidence", ["unit_id"], unique=False)
    op.create_table(
        "review_items",
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("unit_path", sa.String(length=1000), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.Column("measure_code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outside_window", sa.Boolean(), nullable=False),
        sa.Column("assigned_to", sa.String(length=100), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("submission_id"),
    )
    op.create_index(op.f("ix_review_items_assigned_to"), "review_items", ["assigned_to"], unique=False)
    op.create_index(op.f("ix_review_items_campaign_id"), "review_items", ["campaign_id"], unique=False)
    op.create_index(op.f("ix_review_items_claimed_by"), "review_items", ["claimed_by"], unique=False)
    op.create_index(op.f("ix_review_items_measure_code"), "review_items", ["measure_code"], unique=False)
    op.create_index(op.f("ix_review_items_state"), "review_items", ["state"], unique=False)
    op.create_index(op.f("ix_review_items_unit_id"), "review_items", ["unit_id"], unique=False)
    op.create_index(op.f("ix_review_items_unit_path"), "review_items", ["unit_path"], unique=False)
    op.create_table(
        "review_units",
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("unit_path", sa.String(length=1000), nullable=False),
        sa.Column("participates", sa.Boolean(), nullable=False),
        sa.Column("liaison_designated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("unit_id"),
    )
    op.create_index(op.f("ix_review_units_campaign_id"), "review_units", ["campaign_id"], unique=False)
    op.create_index(op.f("ix_review_units_unit_path"), "review_units", ["unit_path"], unique=False)
    op.create_table(
        "review_versions",
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.Column("measure_code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("submission_id", "version"),
    )
    op.create_index(op.f("ix_review_versions_campaign_id"), "review_versions", ["campaign_id"], unique=False)
    op.create_index(op.f("ix_review_versions_unit_id"), "review_versions", ["unit_id"], unique=False)
    op.create_table(
        "sampling_draws",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=True),
        sa.Column("population", sa.JSON(), nullable=False),
        sa.Column("selected", sa.JSON(), nullable=False),
        sa.Column("drawn_by", sa.String(length=100), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_sampling_draws_campaign_id"), "sampling_draws", ["campaign_id"], unique=False)
    op.create_table(
        "supervision_changes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("supervision_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_supervision_changes_at"), "supervision_changes", ["at"], unique=False)
    op.create_index(
        op.f("ix_supervision_changes_supervision_id"), "supervision_changes", ["supervision_id"], unique=False
    )
    op.create_index(op.f("ix_supervision_changes_unit_id"), "supervision_changes", ["unit_id"], unique=False)
    op.create_table(
        "supervisions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("unit_path", sa.String(length=1000), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("rule_key", sa.String(length=200), nullable=True),
        sa.Column("subject_id", sa.String(length=100), nullable=True),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("opened_by", sa.String(length=100), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rectify_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("responded_by", sa.String(length=100), nullable=True),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("closed_by", sa.String(length=100), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule_key", name="uq_supervisions_rule_key"),
    )
    op.create_index(op.f("ix_supervisions_campaign_id"), "supervisions", ["campaign_id"], unique=False)
    op.create_index(op.f("ix_supervisions_opened_at"), "supervisions", ["opened_at"], unique=False)
    op.create_index(op.f("ix_supervisions_state"), "supervisions", ["state"], unique=False)
    op.create_index(op.f("ix_supervisions_unit_id"), "supervisions", ["unit_id"], unique=False)
    op.create_table(
        "timeline_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "timeline_records",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("actor_role", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=True),
        sa.Column("submission_id", sa.String(length=36), nullable=True),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=100), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index(op.f("ix_timeline_records_at"), "timeline_records", ["at"], unique=False)
    op.create_index(op.f("ix_timeline_records_kind"), "timeline_records", ["kind"], unique=False)
    op.create_index(
        op.f("ix_timeline_records_submission_id"), "timeline_records", ["submission_id"], unique=False
    )
    op.create_index(op.f("ix_timeline_records_unit_id"), "timeline_records", ["unit_id"], unique=False)
    # Append-only tables refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) in the database itself.
    for statement in guard_statements(op.get_bind().dialect.name, "audit_log"):
        op.execute(statement)
    for statement in guard_statements(op.get_bind().dialect.name, "timeline_records"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(op.f("ix_timeline_records_unit_id"), table_name="timeline_records")
    op.drop_index(op.f("ix_timeline_records_submission_id"), table_name="timeline_records")
    op.drop_index(op.f("ix_timeline_records_kind"), table_name="timeline_records")
    op.drop_index(op.f("ix_timeline_records_at"), table_name="timeline_records")
    op.drop_table("timeline_records")
    op.drop_table("timeline_head")
    op.drop_index(op.f("ix_supervisions_unit_id"), table_name="supervisions")
    op.drop_index(op.f("ix_supervisions_state"), table_name="supervisions")
    op.drop_index(op.f("ix_supervisions_opened_at"), table_name="supervisions")
    op.drop_index(op.f("ix_supervisions_campaign_id"), table_name="supervisions")
    op.drop_table("supervisions")
    op.drop_index(op.f("ix_supervision_changes_unit_id"), table_name="supervision_changes")
    op.drop_index(op.f("ix_supervision_changes_supervision_id"), table_name="supervision_changes")
    op.drop_index(op.f("ix_supervision_changes_at"), table_name="supervision_changes")
    op.drop_table("supervision_changes")
    op.drop_index(op.f("ix_sampling_draws_campaign_id"), table_name="sampling_draws")
    op.drop_table("sampling_draws")
    op.drop_index(op.f("ix_review_versions_unit_id"), table_name="review_versions")
    op.drop_index(op.f("ix_review_versions_campaign_id"), table_name="review_versions")
    op.drop_table("review_versions")
    op.drop_index(op.f("ix_review_units_unit_path"), table_name="review_units")
    op.drop_index(op.f("ix_review_units_campaign_id"), table_name="review_units")
    op.drop_table("review_units")
    op.drop_index(op.f("ix_review_items_unit_path"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_unit_id"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_state"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_measure_code"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_claimed_by"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_campaign_id"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_assigned_to"), table_name="review_items")
    op.drop_table("review_items")
    op.drop_index(op.f("ix_review_evidence_unit_id"), table_name="review_evidence")
    op.drop_index(op.f("ix_review_evidence_submission_id"), table_name="review_evidence")
    op.drop_table("review_evidence")
    op.drop_index(op.f("ix_review_decisions_unit_id"), table_name="review_decisions")
    op.drop_index(op.f("ix_review_decisions_submission_id"), table_name="review_decisions")
    op.drop_index(op.f("ix_review_decisions_decided_at"), table_name="review_decisions")
    op.drop_index(op.f("ix_review_decisions_campaign_id"), table_name="review_decisions")
    op.drop_table("review_decisions")
    op.drop_index(op.f("ix_review_comments_unit_id"), table_name="review_comments")
    op.drop_index(op.f("ix_review_comments_submission_id"), table_name="review_comments")
    op.drop_index(op.f("ix_review_comments_at"), table_name="review_comments")
    op.drop_table("review_comments")
    op.drop_table("review_campaigns")
    op.drop_index(op.f("ix_outbox_published_at"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_inspections_unit_id"), table_name="inspections")
    op.drop_index(op.f("ix_inspections_recorded_at"), table_name="inspections")
    op.drop_index(op.f("ix_inspections_campaign_id"), table_name="inspections")
    op.drop_table("inspections")
    op.drop_table("inbox")
    op.drop_index(op.f("ix_circulars_campaign_id"), table_name="circulars")
    op.drop_table("circulars")
    op.drop_index("ix_audit_log_resource", table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_actor_id"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_action"), table_name="audit_log")
    op.drop_table("audit_log")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only() CASCADE")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS timeline_records_append_only() CASCADE")
