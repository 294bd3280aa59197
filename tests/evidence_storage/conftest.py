"""The evidence_storage service alone, for real: its own SQLite file, a folder or S3 (moto) store, its worker
on an in-process bus; other services' events are published onto that bus as they would be."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.evidence_storage.api import create_app
from services.evidence_storage.bootstrap import bootstrap
from services.evidence_storage.jobs import jobs
from services.evidence_storage.models import Evidence, KnownCampaign, KnownSubmission, KnownUnit
from services.evidence_storage.subscriptions import SUBSCRIPTIONS
from shared.auth import ADMIN, UNIT, issuer_from_settings
from shared.blobs.folder import FolderBlobStore
from shared.blobs.s3 import S3BlobStore
from shared.bus.memory import InMemoryBus
from shared.contracts import make_event
from shared.contracts.intake import CampaignPublished, SubmissionSubmitted, UnitRegistered
from shared.contracts.review import SubmissionApproved
from shared.runtime import ServiceContext, ServiceWorker
from shared.settings import Settings
from tests.helpers import wait_until

MIB = 1024 * 1024


@dataclass
class World:
    """One running evidence service and the means to feed it events and look into it."""

    ctx: ServiceContext
    client: TestClient
    bus: InMemoryBus
    worker: ServiceWorker
    s3: object | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def token(
        self, name: str = "王芳", *, role: str = ADMIN, unit_id: str | None = None, subject: str | None = None
    ) -> dict:
        """Authorization headers for a caller minted with this service's own key (a unit: its path is /<id>/)."""
        issuer = issuer_from_settings(self.ctx.settings)
        token = issuer.issue(
            subject=subject or f"{role}-{name}",
            name=name,
            role=role,
            ttl_s=600,
            unit_id=unit_id,
            unit_path=f"/{unit_id}/" if unit_id else None,
        )
        return {"Authorization": f"Bearer {token}"}

    def drive_job(self, name: str) -> None:
        """Stop the worker's periodic job of that name (waiting for a step under way), so the test alone runs it."""
        [loop] = [loop for job, loop in self.worker._jobs if job.name == name]
        loop.stop()

    def unit_token(self, unit_id: str, name: str = "李明") -> dict:
        """Authorization headers for a unit's liaison."""
        return self.token(name, role=UNIT, unit_id=unit_id)

    def publish(self, payload) -> None:
        """Publish an event as another service would."""
        self.bus.publish(make_event(payload, producer="test"))

    def _known(self, model, ident) -> bool:
        with self.ctx.db.session() as uow:
            return uow.get(model, ident) is not None

    def campaign(self, start: date, end: date, *, code: str = "WSXF-2020") -> str:
        """Publish a campaign with its publicity window; returns its id once the service knows it."""
        campaign_id = str(uuid.uuid4())
        self.publish(
            CampaignPublished(
                campaign_id=campaign_id,
                code=code,
                name="网上信访宣传月",
                version=1,
                publicity_start=start,
                publicity_end=end,
            )
        )
        wait_until(lambda: self._known(KnownCampaign, campaign_id), what="the campaign to be known")
        return campaign_id

    def unit(self, code: str = "XS", name: str = "相山区信访局") -> str:
        """Register a unit; returns its id once known."""
        unit_id = str(uuid.uuid4())
        self.publish(
            UnitRegistered(unit_id=unit_id, code=code, name=name, level="county", unit_path=f"/{unit_id}/")
        )
        wait_until(lambda: self._known(KnownUnit, unit_id), what="the unit to be known")
        return unit_id

    def submission(
        self, *, unit_id: str | None = None, campaign_id: str | None = None, measure: str = "M1"
    ) -> dict:
        """Publish submission.submitted; returns {id, unit_id} once the service takes uploads for it."""
        submission_id, unit_id = str(uuid.uuid4()), unit_id or str(uuid.uuid4())
        self.publish(
            SubmissionSubmitted(
                submission_id=submission_id,
                unit_id=unit_id,
                measure_code=measure,
                title="召开专题会议传达部署",
                version=1,
                campaign_id=campaign_id,
                unit_path=f"/{unit_id}/",
            )
        )
        wait_until(lambda: self._known(KnownSubmission, submission_id), what="the submission to be known")
        return {"id": submission_id, "unit_id": unit_id, "measure": measure}

    def approve(self, submission: dict) -> None:
        """Publish the approval and wait until the submission's evidence is locked."""
        self.publish(
            SubmissionApproved(
                submission_id=submission["id"],
                unit_id=submission["unit_id"],
                measure_code=submission["measure"],
                title="t",
                version=1,
                reviewer="王芳",
                score=95,
            )
        )

        def locked() -> bool:
            with self.ctx.db.session() as uow:
                return uow.get(KnownSubmission, submission["id"]).state == "approved"

        wait_until(locked, what="the approval to be consumed")

    def upload(
        self,
        submission_id: str,
        data,
        filename: str | None = "photo.jpg",
        *,
        content_type: str = "application/octet-stream",
        actor: str | None = None,
    ):
        """POST a raw body."""
        headers = {"Content-Type": content_type, **(self.token(actor) if actor else {})}
        params = {"filename": filename} if filename is not None else {}
        return self.client.post(
            f"/submissions/{submission_id}/evidence", params=params, content=data, headers=headers
        )

    def evidence_count(self) -> int:
        """Evidence rows in the database."""
        with self.ctx.db.session() as uow:
            return uow.scalar(select(func.count()).select_from(Evidence))

    def stored_keys(self, extra: tuple[str, ...] = ()) -> list[str]:
        """Every object in the store (under extra prefixes too)."""
        prefixes = ("evidence/", "previews/", "staging/", "incoming/", *extra)
        return sorted(key for prefix in prefixes for key in self.ctx.blobs.list_keys(prefix))

    def pending_uploads(self) -> list[str]:
        """Target keys of the multipart uploads begun in the store and neither completed nor aborted."""
        if self.s3 is not None:
            return sorted(self.s3.pending_uploads())
        assert isinstance(self.ctx.blobs, FolderBlobStore)
        return self.ctx.blobs.unfinished_uploads()

    def events(self, event_type: str) -> list[dict]:
        """Payloads of the events of a type this service wrote to its outbox."""
        table = self.ctx.messaging.outbox
        with self.ctx.db.session() as uow:
            bodies = uow.scalars(select(table.c.body).where(table.c.type == event_type).order_by(table.c.id))
            return [json.loads(body)["payload"] for body in bodies]


@pytest.fixture
def make_world(tmp_path, request):
    """Build a World: store 'folder', 's3' or 's3-locked' (bucket with Object Lock), settings overrides, clock."""
    worlds: list[World] = []

    def build(store: str = "folder", *, clock=None, s3_endpoint: str | None = None, **overrides) -> World:
        # OCR (seconds per photo) only where a test asks for it (tests/evidence_storage/test_ocr.py)
        overrides.setdefault("ocr_enabled", False)
        settings = Settings(
            data_dir=tmp_path / f"w{len(worlds)}",
            bus_retry_delays_ms=(50, 100),
            outbox_poll_s=0.1,
            **{"evidence_integrity_poll_s": 0.2, **overrides},
        )
        target = None
        if store == "folder":
            blobs = FolderBlobStore(settings.blob_folder)
        else:
            target = request.getfixturevalue("moto_s3").fresh()
            blobs = S3BlobStore(
                endpoint=s3_endpoint or target.endpoint,
                access_key=target.access_key,
                secret_key=target.secret_key,
                bucket=target.bucket,
                region=target.region,
                part_size=5 * MIB,
                object_lock=store == "s3-locked",
                connect_timeout_s=settings.s3_connect_timeout_s,
                read_timeout_s=settings.s3_read_timeout_s,
                retries=settings.s3_retries,
            )
        ctx = bootstrap(settings, clock=clock, blobs=blobs)
        bus = InMemoryBus(retry_delays_ms=(50, 100))
        worker = ServiceWorker(ctx, bus, SUBSCRIPTIONS, jobs(ctx))
        worker.start()
        bus.start()
        world = World(ctx=ctx, client=TestClient(create_app(ctx)), bus=bus, worker=worker, s3=target)
        world.client.headers.update(
            world.token("测试管理员", subject="test-admin")
        )  # an admin unless a test says otherwise
        if target is not None:
            world.cleanups.append(
                target.remove_bucket if store == "s3" else lambda: _remove_locked_bucket(target)
            )
        worlds.append(world)
        return world

    yield build
    for world in worlds:
        world.bus.stop()
        world.worker.stop()
        world.client.close()
        world.ctx.db.dispose()
        for cleanup in world.cleanups:
            cleanup()


def _remove_locked_bucket(target) -> None:
    """Empty an Object Lock bucket by bypassing GOVERNANCE retention (what an administrator may do), then drop it."""
    client = target.client()
    if not client.bucket_exists(bucket_name=target.bucket):
        return
    for item in client.list_objects(bucket_name=target.bucket, recursive=True, include_version=True):
        # minio has no public call that sends the bypass header; the private one is held steady by the
        # minio pin (<8, !=7.2.19)
        client._execute(
            "DELETE",
            target.bucket,
            item.object_name,
            headers={"x-amz-bypass-governance-retention": "true"},
            query_params={"versionId": item.version_id},
        )
    client.remove_bucket(bucket_name=target.bucket)


@pytest.fixture
def world(make_world) -> World:
    """The service on a folder store."""
    return make_world()
