"""The orphan sweeper: objects no committed evidence row or live upload session refers to, and multipart uploads
never finished that no live upload session is writing into, are removed once older than EVIDENCE_ORPHAN_GRACE_S.

Bytes reach the store before their rows commit (a 2 GB video is written once, under the key its row will
carry), so a process killed in between leaves an object without a row. The grace period keeps the sweeper away
from uploads still on their way to a commit; after it, nothing refers to the object and nothing ever will.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import select

from services.evidence_storage.models import Evidence, EvidenceRendition, UploadChunk, UploadSession
from shared.blobs.port import BlobLocked, BlobStoreUnavailable
from shared.metrics import ORPHANS_SWEPT
from shared.runtime import ServiceContext

PREFIXES = ("evidence/", "previews/", "staging/", "incoming/", "renditions/")
LIVE_SESSION_STATES = ("open", "completing")
log = logging.getLogger(__name__)


def orphan_keys(ctx: ServiceContext, *, older_than_s: float | None = None) -> Iterator[str]:
    """Keys under the service's prefixes that no evidence row or live upload session refers to."""
    with ctx.db.session() as uow:
        known = set(uow.scalars(select(Evidence.object_key)))
        known |= {key for key in uow.scalars(select(Evidence.thumbnail_key)) if key}
        known |= {
            key for key in uow.scalars(select(EvidenceRendition.object_key)) if key
        }  # web-playable copies
        live = select(UploadSession.id).where(UploadSession.state.in_(LIVE_SESSION_STATES))
        known |= {
            key
            for key in uow.scalars(select(UploadChunk.object_key).where(UploadChunk.session_id.in_(live)))
            if key
        }
        # a chunked session's upload, once joined, lies under its final key until the evidence row commits
        known |= {
            key
            for key in uow.scalars(
                select(UploadSession.object_key).where(UploadSession.state.in_(LIVE_SESSION_STATES))
            )
            if key
        }
        live_ids = set(uow.scalars(live))
    before = ctx.clock.now() - timedelta(seconds=older_than_s) if older_than_s is not None else None
    for prefix in PREFIXES:
        for key in ctx.blob_store.list_keys(prefix, modified_before=before):
            if key not in known and _session_of(key) not in live_ids:
                yield key


def _session_of(key: str) -> str | None:
    """The upload session a staging or presigned key belongs to, if any."""
    parts = key.split("/")
    if key.startswith("staging/sessions/") and len(parts) > 2:
        return parts[2]
    if key.startswith("incoming/") and len(parts) > 1:
        return parts[1]
    return None


def live_upload_ids(ctx: ServiceContext) -> set[str]:
    """The multipart uploads live upload sessions are still writing into."""
    with ctx.db.session() as uow:
        return set(
            uow.scalars(
                select(UploadSession.upload_id).where(
                    UploadSession.state.in_(LIVE_SESSION_STATES), UploadSession.upload_id.is_not(None)
                )
            )
        )


def sweep(ctx: ServiceContext) -> dict[str, int]:
    """Remove orphan objects and abort unfinished multipart uploads older than the grace period, except the
    uploads of live sessions."""
    grace_s = ctx.settings.evidence_orphan_grace_s
    removed = aborted = 0
    try:
        for key in list(orphan_keys(ctx, older_than_s=grace_s)):
            try:
                ctx.blob_store.delete(key)
            except BlobLocked:
                log.error("orphan object %s is under store retention; it stays until the retention ends", key)
                continue
            removed += 1
            log.warning("removed orphan object %s (no evidence row or live upload refers to it)", key)
        # A live session's upload is kept by its id, not by a grace period longer than a session lives: each chunk
        # moves the session's expiry on by EVIDENCE_SESSION_TTL_S, so no fixed period outlasts a slow upload. The
        # grace period still covers an upload begun whose id is not committed yet (its first chunk is on its way).
        # The ids are read before the listing, so a session that ends meanwhile keeps its upload one more round.
        live = live_upload_ids(ctx)
        aborted = ctx.blob_store.abort_unfinished_uploads(
            started_before=ctx.clock.now() - timedelta(seconds=grace_s), keep=live
        )
    except BlobStoreUnavailable as exc:
        log.warning("orphan sweep postponed, store unavailable: %s", exc)
    ORPHANS_SWEPT.labels("object").inc(removed)
    ORPHANS_SWEPT.labels("multipart_upload").inc(aborted)
    if aborted:
        log.warning("aborted %d unfinished multipart upload(s) older than %.0fs", aborted, grace_s)
    return {"removed": removed, "aborted_uploads": aborted}
