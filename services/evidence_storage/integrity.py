"""The integrity check: re-hash stored objects (a random sample or all) against their recorded size and
SHA-256 and report what differs; a full run also lists objects no evidence row refers to."""
from __future__ import annotations

import hashlib
import random

from sqlalchemy import select

from services.evidence_storage.models import Evidence, IntegrityCheck
from services.evidence_storage.sweeper import orphan_keys
from shared.blobs.port import BlobNotFound, BlobStoreUnavailable
from shared.events import new_id
from shared.http import ApiError
from shared.runtime import ServiceContext


def run_check(*, sample: int | None, ctx: ServiceContext) -> IntegrityCheck:
    """Re-hash all stored evidence, or a random sample of it; the run and its findings are kept."""
    started = ctx.clock.now()
    with ctx.db.session() as uow:
        rows = list(uow.execute(select(Evidence.id, Evidence.object_key, Evidence.size, Evidence.sha256)))
    if sample is not None:
        rows = random.sample(rows, min(sample, len(rows)))
    problems: list[dict] = []
    try:
        for evidence_id, key, size, sha256 in rows:
            problem = _verify(ctx, key, size, sha256)
            if problem:
                problems.append({"evidence_id": evidence_id, "object_key": key, **problem})
        if sample is None:
            problems.extend(_orphans(ctx))
    except BlobStoreUnavailable as exc:
        raise ApiError(503, "store_unavailable", "存储服务暂时不可用，完整性检查未完成，请稍后重试",
                       "evidence store unavailable; the integrity check did not finish, retry later") from exc
    mismatched = {problem["evidence_id"] for problem in problems if problem.get("evidence_id")}
    check = IntegrityCheck(
        id=new_id(), started_at=started, finished_at=ctx.clock.now(), requested="all" if sample is None else str(sample),
        checked=len(rows), ok=len(rows) - len(mismatched), problems=problems,
    )
    with ctx.db.transaction() as uow:
        uow.add(check)
    return check


def _verify(ctx: ServiceContext, key: str, size: int, sha256: str) -> dict | None:
    """What is wrong with one stored object, if anything (streamed: memory stays flat)."""
    digest, actual = hashlib.sha256(), 0
    try:
        for chunk in ctx.blob_store.read(key):
            digest.update(chunk)
            actual += len(chunk)
    except BlobNotFound:
        return {"problem": "missing"}
    if actual != size:
        return {"problem": "size", "expected": str(size), "actual": str(actual)}
    if digest.hexdigest() != sha256:
        return {"problem": "sha256", "expected": sha256, "actual": digest.hexdigest()}
    return None


def _orphans(ctx: ServiceContext) -> list[dict]:
    """Objects under the service's prefixes that no evidence or live upload session refers to, whatever their age."""
    return [{"evidence_id": None, "object_key": key, "problem": "orphan"} for key in orphan_keys(ctx)]
