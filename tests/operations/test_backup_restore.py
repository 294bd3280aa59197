"""Backup and restore (deploy/backup.py, docs/operations.md): a campaign's platform on PostgreSQL and S3 is
dumped (pg_dump per service schema, the bucket mirrored), restored into a fresh database and a fresh bucket,
and there the integrity check passes, the timeline chain verifies and every row is back."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from deploy import backup
from deploy.embedded import build_platform
from services.evidence_storage import integrity
from services.evidence_storage.bootstrap import bootstrap as evidence_bootstrap
from services.review.bootstrap import bootstrap as review_bootstrap
from services.review.timeline import chain
from shared.settings import Settings
from tests.flows.steps import admin_token, create_unit, submit, upload, wait_evidence_ready, wait_review_item
from tests.helpers import JPEG_BYTES, PDF_BYTES, PNG_BYTES, wait_until
from tests.operations.campaign_rows import dump_rows
from tests.services import fresh_postgres_database, need


def s3_settings(tmp_path, url: str, s3) -> Settings:
    """The platform on this database and this bucket of the moto server."""
    return Settings(
        data_dir=tmp_path,
        database_url=url,
        blob_backend="s3",
        s3_endpoint=s3.endpoint,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        s3_bucket=s3.bucket,
        bus_retry_delays_ms=(50, 100),
        outbox_poll_s=0.1,
    )


def test_a_backup_restored_into_a_fresh_database_and_bucket_passes_the_integrity_check(
    postgres_url, moto_s3, tmp_path
):
    need("pg_dump and psql (PostgreSQL client)", bool(shutil.which("pg_dump") and shutil.which("psql")))
    source_bucket, fresh_bucket = moto_s3.fresh(), moto_s3.fresh()
    settings = s3_settings(tmp_path / "live", postgres_url, source_bucket)
    platform = build_platform(settings)
    try:
        with TestClient(platform.app) as client:
            client.headers["Authorization"] = f"Bearer {admin_token(platform.contexts['intake'])}"
            unit = create_unit(client)
            submission = submit(client, unit["id"])
            wait_evidence_ready(client, submission["id"])
            for data, name in ((JPEG_BYTES, "会议.jpg"), (PNG_BYTES, "横幅.png"), (PDF_BYTES, "方案.pdf")):
                assert upload(client, submission["id"], data, name).status_code == 201
            wait_review_item(client, submission["id"], evidence=3)
            decided = client.post(
                f"/review/submissions/{submission['id']}/approve",
                json={"reviewer": "王芳", "score": 90, "version": 1},
            )
            assert decided.status_code == 200, decided.text
            wait_until(
                lambda: client.get(f"/intake/submissions/{submission['id']}").json()["state"] == "approved",
                what="the approval to reach intake",
            )
            # The lock's retention is applied by the evidence worker's job after the approval: let it settle, or
            # the rows compared below change between this snapshot and the dump.
            wait_until(
                lambda: not retention_pending(platform.contexts["evidence_storage"]),
                what="the approved evidence's retention to be applied",
            )
            # So is the OCR job (its finding and its evidence.text_read event, published by the relay).
            wait_until(
                lambda: not evidence_work_pending(platform.contexts["evidence_storage"]),
                timeout=60,
                what="the evidence worker's text reading and its events to be done",
            )
            before = {name: dump_rows(ctx.db) for name, ctx in platform.contexts.items()}
            written = backup.dump(settings, tmp_path / "backup", minio=source_bucket.client())
    finally:
        platform.stop()
    assert written["blobs"] >= 3 and set(written["databases"]) == set(backup.SERVICES)

    with fresh_postgres_database() as fresh_url:
        restored_settings = s3_settings(tmp_path / "restored", fresh_url, fresh_bucket)
        try:
            restored = backup.restore(restored_settings, tmp_path / "backup", minio=fresh_bucket.client())
            assert restored["blobs"] == written["blobs"]
            evidence = evidence_bootstrap(restored_settings.model_copy(update={"migrate_on_start": False}))
            review = review_bootstrap(restored_settings.model_copy(update={"migrate_on_start": False}))
            try:
                report = integrity.run_check(sample=None, ctx=evidence)
                assert (report.state, report.checked, report.ok, report.problems) == ("done", 3, 3, [])
                with review.db.session() as uow:
                    assert chain.verify(uow).ok
                after, kept = dump_rows(evidence.db), dict(before["evidence_storage"])
                assert [row["id"] for row in after.pop("integrity_checks")] == [
                    report.id
                ]  # the check just run
                assert kept.pop("integrity_checks") == [] and after == kept
                assert dump_rows(review.db) == before["review"]
            finally:
                evidence.db.dispose()
                review.db.dispose()
        finally:
            fresh_bucket.remove_bucket()
            source_bucket.remove_bucket()


@pytest.mark.parametrize("blob_backend", ["folder"])
def test_embedded_sqlite_backup_restores_into_a_fresh_folder(tmp_path, blob_backend):
    settings = Settings(data_dir=tmp_path / "live", bus_retry_delays_ms=(50, 100), outbox_poll_s=0.1)
    platform = build_platform(settings)
    with TestClient(platform.app) as client:
        client.headers["Authorization"] = f"Bearer {admin_token(platform.contexts['intake'])}"
        submission = submit(client, create_unit(client)["id"])
        wait_evidence_ready(client, submission["id"])
        assert upload(client, submission["id"], JPEG_BYTES, "会议.jpg").status_code == 201
        backup.dump(settings, tmp_path / "backup")  # while the platform runs: SQLite's online backup
    restored_settings = Settings(data_dir=tmp_path / "restored", migrate_on_start=False)
    backup.restore(restored_settings, tmp_path / "backup")
    evidence = evidence_bootstrap(restored_settings)
    try:
        report = integrity.run_check(sample=None, ctx=evidence)
        assert (report.state, report.checked, report.problems) == ("done", 1, [])
    finally:
        evidence.db.dispose()


def evidence_work_pending(ctx) -> int:
    """Photos whose text the worker has not read yet, plus evidence_storage events not yet published."""
    from sqlalchemy import func, select

    from services.evidence_storage.models import EvidenceText

    outbox = ctx.messaging.outbox
    with ctx.db.session() as uow:
        unread = uow.scalar(
            select(func.count())
            .select_from(EvidenceText)
            .where(EvidenceText.state.in_(("pending", "reading")))
        )
        unpublished = uow.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
        return (unread or 0) + (unpublished or 0)


def retention_pending(ctx) -> int:
    """Locked evidence whose retention the worker has not applied yet."""
    from sqlalchemy import func, select

    from services.evidence_storage.models import Evidence

    with ctx.db.session() as uow:
        return (
            uow.scalar(select(func.count()).select_from(Evidence).where(Evidence.retention == "pending")) or 0
        )
