"""The integrity check: re-hash stored objects (a random sample or all) against their recorded size and
SHA-256 and report what differs; a full run also lists objects no evidence row refers to. A request queues a
check; the evidence worker runs it and saves its progress, so GET shows done/total and the findings so far."""

from __future__ import annotations

import hashlib
import logging
import random
from datetime import timedelta

from sqlalchemy import and_, or_, select

from services.evidence_storage.models import Evidence, IntegrityCheck
from services.evidence_storage.sweeper import orphan_keys
from shared.blobs.port import BlobNotFound, BlobStoreUnavailable
from shared.events import new_id
from shared.runtime import ServiceContext

log = logging.getLogger(__name__)


PROGRESS_EVERY = 25  # objects between two progress saves
STALE_AFTER = timedelta(
    minutes=10
)  # a running check without a heartbeat this long was cut off (crash): resumed


def request_check(*, sample: int | None, ctx: ServiceContext, state: str = "queued") -> IntegrityCheck:
    """Queue a check of all stored evidence (sample None) or of a random sample; the evidence worker runs it."""
    now = ctx.clock.now()
    check = IntegrityCheck(
        id=new_id(),
        started_at=now,
        finished_at=None,
        requested="all" if sample is None else str(sample),
        checked=0,
        ok=0,
        total=0,
        problems=[],
        state=state,
        error=None,
        heartbeat_at=now,
    )
    with ctx.db.transaction() as uow:
        uow.add(check)
    log.info("integrity check %s %s (%s)", check.id, state, check.requested)
    return check


def run_queued(ctx: ServiceContext) -> bool:
    """The worker's job: run the oldest queued check (or one cut off by a crash); True if it ran one."""
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        check = uow.scalars(
            select(IntegrityCheck)
            .where(
                or_(
                    IntegrityCheck.state == "queued",
                    and_(IntegrityCheck.state == "running", IntegrityCheck.heartbeat_at < now - STALE_AFTER),
                )
            )
            .order_by(IntegrityCheck.started_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if check is None:
            return False
        check.state, check.heartbeat_at, check.checked, check.ok, check.problems = "running", now, 0, 0, []
        check_id, requested = check.id, check.requested
    _run(ctx, check_id, sample=None if requested == "all" else int(requested))
    return True


def run_check(*, sample: int | None, ctx: ServiceContext) -> IntegrityCheck:
    """Queue a check and run it here and now (the operator's CLI, tests); returns the finished run."""
    check = request_check(sample=sample, ctx=ctx, state="running")  # never queued: no worker takes it
    _run(ctx, check.id, sample=sample)
    with ctx.db.session() as uow:
        return uow.get_one(IntegrityCheck, check.id)


def _run(ctx: ServiceContext, check_id: str, *, sample: int | None) -> None:
    """Re-hash the objects, saving progress (checked of total, findings so far) every PROGRESS_EVERY objects."""
    with ctx.db.session() as uow:
        rows = list(
            uow.execute(
                select(Evidence.id, Evidence.object_key, Evidence.size, Evidence.sha256).order_by(Evidence.id)
            )
        )
    if sample is not None:
        rows = random.sample(rows, min(sample, len(rows)))
    problems: list[dict] = []
    _save(ctx, check_id, total=len(rows), checked=0, problems=problems)
    try:
        for done, (evidence_id, key, size, sha256) in enumerate(rows, start=1):
            problem = _verify(ctx, key, size, sha256)
            if problem:
                problems.append({"evidence_id": evidence_id, "object_key": key, **problem})
            if done % PROGRESS_EVERY == 0:
                _save(ctx, check_id, total=len(rows), checked=done, problems=problems)
        if sample is None:
            problems.extend(_orphans(ctx))
    except BlobStoreUnavailable as exc:
        _save(
            ctx,
            check_id,
            total=len(rows),
            checked=0,
            problems=problems,
            state="failed",
            error=f"存储服务暂时不可用，完整性检查未完成，请稍后重试 / evidence store unavailable: {exc}"[
                :1000
            ],
        )
        log.warning("integrity check %s failed: the store is unavailable", check_id)
        return
    _save(ctx, check_id, total=len(rows), checked=len(rows), problems=problems, state="done")
    log.info(
        "integrity check %s done: %d objects, %d problem(s)",
        check_id,
        len(rows),
        len(problems),
        extra={"problems": len(problems)},
    )


def _save(
    ctx: ServiceContext,
    check_id: str,
    *,
    total: int,
    checked: int,
    problems: list[dict],
    state: str | None = None,
    error: str | None = None,
) -> None:
    mismatched = {problem["evidence_id"] for problem in problems if problem.get("evidence_id")}
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        check = uow.get_one(IntegrityCheck, check_id)
        check.total, check.checked, check.ok, check.problems, check.heartbeat_at = (
            total,
            checked,
            max(0, checked - len(mismatched)),
            list(problems),
            now,
        )
        if state is not None:
            check.state, check.error, check.finished_at = state, error, now


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
