"""The evidence_storage schema as it was when migrations were introduced, with the append-only guards.

Revision ID: 0001
Revises:
Create Date: 2026-12-02 06:06:39.521417
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
        "inbox",
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "integrity_checks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested", sa.String(length=16), nullable=False),
        sa.Column("checked", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Integer(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "known_campaigns",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("publicity_start", sa.Date(), nullable=False),
        sa.Column("publicity_end", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "known_submissions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("unit_path", sa.String(length=1000), nullable=False),
        sa.Column("measure_code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_known_submissions_campaign_id"), "known_submissions", ["campaign_id"], unique=False
    )
    op.create_index(op.f("ix_known_submissions_unit_id"), "known_submissions", ["unit_id"], unique=False)
    op.create_index(op.f("ix_known_submissions_unit_path"), "known_submissions", ["unit_path"], unique=False)
    op.create_table(
        "known_units",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unit_path", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
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
        "upload_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("media_type", sa.String(length=100), nullable=True),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("object_key", sa.String(length=512), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("evidence_id", sa.String(length=36), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_upload_sessions_expires_at"), "upload_sessions", ["expires_at"], unique=False)
    op.create_index(op.f("ix_upload_sessions_state"), "upload_sessions", ["state"], unique=False)
    op.create_index(
        op.f("ix_upload_sessions_submission_id"), "upload_sessions", ["submission_id"], unique=False
    )
    op.create_table(
        "evidence",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("unit_path", sa.String(length=1000), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.Column("measure_code", sa.String(length=64), nullable=True),
        sa.Column("object_key", sa.String(length=512), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("captured_at", sa.String(length=40), nullable=True),
        sa.Column("captured_on", sa.Date(), nullable=True),
        sa.Column("gps_lat", sa.Float(), nullable=True),
        sa.Column("gps_lon", sa.Float(), nullable=True),
        sa.Column("outside_window", sa.Boolean(), nullable=True),
        sa.Column("phash", sa.String(length=16), nullable=True),
        sa.Column("thumbnail_key", sa.String(length=512), nullable=True),
        sa.Column("preview_note", sa.String(length=300), nullable=True),
        sa.Column("upload_path", sa.String(length=16), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=True),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retention", sa.String(length=16), nullable=False),
        sa.Column("retained_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["known_submissions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("object_key"),
    )
    op.create_index(op.f("ix_evidence_campaign_id"), "evidence", ["campaign_id"], unique=False)
    op.create_index(op.f("ix_evidence_phash"), "evidence", ["phash"], unique=False)
    op.create_index(op.f("ix_evidence_sha256"), "evidence", ["sha256"], unique=False)
    op.create_index(op.f("ix_evidence_submission_id"), "evidence", ["submission_id"], unique=False)
    op.create_index(op.f("ix_evidence_unit_id"), "evidence", ["unit_id"], unique=False)
    op.create_index(op.f("ix_evidence_unit_path"), "evidence", ["unit_path"], unique=False)
    op.create_table(
        "upload_chunks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("object_key", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["upload_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "offset"),
    )
    op.create_index(op.f("ix_upload_chunks_session_id"), "upload_chunks", ["session_id"], unique=False)
    op.create_table(
        "evidence_duplicates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("evidence_id", sa.String(length=36), nullable=False),
        sa.Column("other_id", sa.String(length=36), nullable=False),
        sa.Column("match", sa.String(length=8), nullable=False),
        sa.Column("distance", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["evidence_id"], ["evidence.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["other_id"], ["evidence.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("evidence_id", "other_id"),
    )
    op.create_index(
        op.f("ix_evidence_duplicates_evidence_id"), "evidence_duplicates", ["evidence_id"], unique=False
    )
    op.create_index(
        op.f("ix_evidence_duplicates_other_id"), "evidence_duplicates", ["other_id"], unique=False
    )
    # Append-only tables refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) in the database itself.
    for statement in guard_statements(op.get_bind().dialect.name, "audit_log"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(op.f("ix_evidence_duplicates_other_id"), table_name="evidence_duplicates")
    op.drop_index(op.f("ix_evidence_duplicates_evidence_id"), table_name="evidence_duplicates")
    op.drop_table("evidence_duplicates")
    op.drop_index(op.f("ix_upload_chunks_session_id"), table_name="upload_chunks")
    op.drop_table("upload_chunks")
    op.drop_index(op.f("ix_evidence_unit_path"), table_name="evidence")
    op.drop_index(op.f("ix_evidence_unit_id"), table_name="evidence")
    op.drop_index(op.f("ix_evidence_submission_id"), table_name="evidence")
    op.drop_index(op.f("ix_evidence_sha256"), table_name="evidence")
    op.drop_index(op.f("ix_evidence_phash"), table_name="evidence")
    op.drop_index(op.f("ix_evidence_campaign_id"), table_name="evidence")
    op.drop_table("evidence")
    op.drop_index(op.f("ix_upload_sessions_submission_id"), table_name="upload_sessions")
    op.drop_index(op.f("ix_upload_sessions_state"), table_name="upload_sessions")
    op.drop_index(op.f("ix_upload_sessions_expires_at"), table_name="upload_sessions")
    op.drop_table("upload_sessions")
    op.drop_index(op.f("ix_outbox_published_at"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("known_units")
    op.drop_index(op.f("ix_known_submissions_unit_path"), table_name="known_submissions")
    op.drop_index(op.f("ix_known_submissions_unit_id"), table_name="known_submissions")
    op.drop_index(op.f("ix_known_submissions_campaign_id"), table_name="known_submissions")
    op.drop_table("known_submissions")
    op.drop_table("known_campaigns")
    op.drop_table("integrity_checks")
    op.drop_table("inbox")
    op.drop_index("ix_audit_log_resource", table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_actor_id"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_action"), table_name="audit_log")
    op.drop_table("audit_log")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only() CASCADE")
