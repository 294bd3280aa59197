"""Evidence use cases: streamed uploads (raw body or multipart form), deletion, and the event handlers that
keep this service's view of submissions, campaigns and units, and lock approved proof."""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from sqlalchemy import Insert, Select, Table, Update, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.evidence_storage import audit, ingest, ocr, refusals
from services.evidence_storage.access import INSPECTION, Caller, check_access
from services.evidence_storage.formdata import MultipartFiles, bad_form
from services.evidence_storage.models import (
    Evidence,
    EvidenceRendition,
    KnownCampaign,
    KnownSubmission,
    KnownUnit,
)
from services.evidence_storage.refusals import Refusal
from services.evidence_storage.retention import APPLY_RETENTION
from shared.blobs.port import BlobStoreUnavailable, Readable
from shared.contracts import make_event, read_payload
from shared.contracts.evidence import EvidenceLocked, EvidenceRejected
from shared.contracts.intake import (
    CampaignPublished,
    LiaisonDesignated,
    SubmissionSubmitted,
    SubmissionWithdrawn,
    UnitRegistered,
)
from shared.contracts.review import DECISIONS, InspectionRecorded
from shared.db import insert_values, rows_affected
from shared.grants import GrantError, GrantVerifier, UploadGrant
from shared.http import ApiError, not_found
from shared.runtime import ServiceContext

SERVICE = ingest.SERVICE
UPLOADABLE_STATES = ingest.UPLOADABLE_STATES
MAX_FILENAME = 200
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_DRIVE = re.compile(r"^[A-Za-z]:")
log = logging.getLogger(__name__)


def store_evidence(
    submission_id: str,
    filename: str | None,
    stream: Readable,
    *,
    ctx: ServiceContext,
    actor: str | None = None,
) -> Evidence:
    """One file streamed as the raw request body: receive, inspect, accept; publishes evidence.stored or .rejected."""
    submission = open_submission(ctx, submission_id)
    with refusing(ctx, submission, filename):
        display = clean_filename(filename)
        received = ingest.receive(ctx, submission, stream, display, upload_path="stream")
        findings = ingest.inspect(ctx, received)
        return ingest.accept(ctx, submission.id, [(received, findings)], actor=actor)[0]


def store_form(
    submission_id: str, form: MultipartFiles, *, ctx: ServiceContext, actor: str | None = None
) -> list[Evidence]:
    """Every file of a multipart form, streamed one after another; all become evidence or none does."""
    submission = open_submission(ctx, submission_id)
    batch: list[tuple[ingest.Received, ingest.Findings]] = []
    current: str | None = None
    try:
        with refusing(ctx, submission, lambda: current):
            while (part := form.next_file()) is not None:
                current = part.filename
                display = clean_filename(part.filename)
                received = ingest.receive(ctx, submission, part, display, upload_path="multipart")
                batch.append((received, ingest.inspect(ctx, received)))
            if not batch:
                raise bad_form("没有文件", "no file parts in the form")
            return ingest.accept(ctx, submission.id, batch, actor=actor)
    except BaseException:
        ingest.discard(ctx, [received.key for received, _ in batch])
        raise


def admit_granted(
    ctx: ServiceContext, submission_id: str, token: str, verifier: GrantVerifier
) -> KnownSubmission | None:
    """Learn a submission from intake's upload grant before its event arrives; None (so a 404) for a bad grant."""
    try:
        grant = verifier.verify(token, submission_id)
    except GrantError as exc:
        log.info("upload grant for %s refused: %s", submission_id, exc)
        return None
    try:
        with ctx.db.transaction() as uow:
            if uow.get(KnownSubmission, submission_id) is None:
                uow.add(KnownSubmission(**_first_version(grant)))
                log.info("submission %s admitted on intake's upload grant, ahead of its event", submission_id)
    except IntegrityError:  # the event was consumed meanwhile
        pass
    with ctx.db.session() as uow:
        return uow.get(KnownSubmission, submission_id)


def open_submission(ctx: ServiceContext, submission_id: str) -> KnownSubmission:
    """The submission, if this service knows it and it still takes uploads (404 / 409 otherwise)."""
    with ctx.db.session() as uow:
        submission = uow.get(KnownSubmission, submission_id)
    if submission is None:
        raise not_found("报送材料", "submission", submission_id)
    if submission.state not in UPLOADABLE_STATES:
        raise refusals.submission_closed().as_api_error()
    return submission


@contextmanager
def refusing(ctx: ServiceContext, submission: KnownSubmission, filename) -> Iterator[None]:
    """Turn refusals into bilingual 4xx errors (publishing evidence.rejected) and store outages into 503."""
    try:
        yield
    except Refusal as refusal:
        name = filename() if callable(filename) else filename
        raise rejected(ctx, submission, name, refusal) from None
    except BlobStoreUnavailable as exc:
        log.warning("blob store unavailable during upload: %s", exc)
        raise refusals.store_unavailable() from exc


def rejected(
    ctx: ServiceContext, submission: KnownSubmission, filename: str | None, refusal: Refusal
) -> ApiError:
    """Publish evidence.rejected for a refused upload and return its HTTP error."""
    shown = _display_only(filename)
    with ctx.db.transaction() as uow:
        ctx.outbox.add(
            uow,
            make_event(
                EvidenceRejected(
                    submission_id=submission.id,
                    unit_id=submission.unit_id,
                    filename=shown,
                    reason_code=refusal.code,
                    reason=refusal.message,
                ),
                producer=SERVICE,
            ),
        )
    return refusal.as_api_error()


def clean_filename(filename: str | None) -> str:
    """The display-only name of an upload: refused if it is a path or hides characters, else tidied and capped."""
    name = unicodedata.normalize("NFC", filename or "")
    if "/" in name or "\\" in name or _DRIVE.match(name) or name.strip() in (".", ".."):
        raise refusals.invalid_filename(
            "不能包含路径（如 / \\ ..）", "it must not contain a path (/, \\, ..)"
        )
    if any(unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS for ch in name):
        raise refusals.invalid_filename(
            "不能包含控制字符或方向控制符", "it must not contain control or bidi characters"
        )
    return _display_only(name)


def _display_only(filename: str | None) -> str:
    """Tidy any name for display: no path, no invisible characters, length-capped keeping the extension."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r"\s+", " ", name).strip().lstrip(".").strip()
    if not name:
        return "unnamed"
    if len(name) <= MAX_FILENAME:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and 0 < len(extension) <= 16:
        return stem[: MAX_FILENAME - len(extension) - 1] + "." + extension
    return name[:MAX_FILENAME]


def delete_evidence(evidence_id: str, *, ctx: ServiceContext, caller: Caller) -> None:
    """Remove evidence that is not locked; locked assessment proof is refused, whatever the store allows."""
    with ctx.db.transaction() as uow:
        evidence = uow.get(Evidence, evidence_id, with_for_update=True)
        if evidence is None:
            raise not_found("佐证资料", "evidence", evidence_id)
        check_access(
            caller,
            not_found("佐证资料", "evidence", evidence_id),
            unit_path=evidence.unit_path,
            unit_id=evidence.unit_id,
        )
        if evidence.locked:
            raise ApiError(
                409,
                "evidence_locked",
                "该佐证资料已作为考核凭证锁定，不能删除或覆盖",
                "evidence is locked as assessment proof; it cannot be deleted or overwritten",
            )
        keys = [evidence.object_key, *([evidence.thumbnail_key] if evidence.thumbnail_key else [])]
        rendition = uow.get(EvidenceRendition, evidence_id)
        if rendition is not None:
            keys += [rendition.object_key] if rendition.object_key else []
            uow.delete(rendition)
            uow.flush()  # before the evidence row, whose deletion cascades to it
        audit.record(uow, ctx, caller, "delete", evidence=evidence, detail=evidence.filename)
        uow.delete(evidence)
    ingest.discard(ctx, keys)


# --- event handlers ---------------------------------------------------------------------------------------


@functools.cache
def _submission_statements() -> tuple[Select, Insert]:
    table = cast(Table, KnownSubmission.__table__)
    return select(table.c.version).where(table.c.id == bindparam("sid")), insert(table)


@functools.cache
def _state_mirrored() -> Update:
    # A decision's or a withdrawal's new state, on the version it was about. Built once, and one statement: loading
    # the row and the ORM's flush of its new state were half of track_decision in bench.pipeline (py-spy).
    table = cast(Table, KnownSubmission.__table__)
    return (
        update(table)
        .where(table.c.id == bindparam("sid"), table.c.version == bindparam("expected"))
        .values(state=bindparam("to_state"))
    )


@functools.cache
def _unlocked_evidence() -> Select[tuple[Evidence]]:
    # Built once: every approval asks it, and building it per call was most of its cost (py-spy, bench.pipeline).
    return select(Evidence).where(Evidence.submission_id == bindparam("sid"), Evidence.locked.is_(False))


def _first_version(facts: SubmissionSubmitted | UploadGrant) -> dict[str, object]:
    # The row of a submission learned for the first time, from its event or from intake's upload grant.
    return insert_values(
        id=facts.submission_id,
        unit_id=facts.unit_id,
        unit_path=facts.unit_path,
        measure_code=facts.measure_code,
        version=facts.version,
        state="submitted",
        campaign_id=facts.campaign_id,
    )


def track_submission(event, *, uow: Session, ctx: ServiceContext) -> None:
    """Learn of a (re)submitted submission so units can upload evidence to it."""
    data = read_payload(SubmissionSubmitted, event)
    lookup, add = _submission_statements()
    known_version = uow.execute(lookup, {"sid": data.submission_id}).scalar()
    if (
        known_version is None
    ):  # most events: a first version, inserted without the ORM's read and unit of work
        uow.execute(add, _first_version(data))
    elif data.version >= known_version:
        known = uow.get(KnownSubmission, data.submission_id)
        assert known is not None  # just found under this transaction
        known.version, known.state = data.version, "submitted"
        known.measure_code = data.measure_code
        known.campaign_id = data.campaign_id or known.campaign_id
        known.unit_path = data.unit_path or known.unit_path


def track_inspection(event, *, uow: Session, ctx: ServiceContext) -> None:
    """An inspection takes photos like a submission: its id becomes an upload target of kind inspection."""
    data = read_payload(InspectionRecorded, event)
    if uow.get(KnownSubmission, data.inspection_id) is None:
        unit = uow.get(KnownUnit, data.unit_id)
        uow.add(
            KnownSubmission(
                id=data.inspection_id,
                unit_id=data.unit_id,
                unit_path=unit.unit_path if unit else "",
                measure_code=INSPECTION,
                version=1,
                state=INSPECTION,
                campaign_id=data.campaign_id,
            )
        )


def track_withdrawal(event, *, uow: Session, ctx: ServiceContext) -> None:
    """A withdrawn submission takes no more uploads."""
    data = read_payload(SubmissionWithdrawn, event)
    uow.execute(
        _state_mirrored(), {"sid": data.submission_id, "expected": data.version, "to_state": "withdrawn"}
    )


def track_decision(event, *, uow: Session, ctx: ServiceContext) -> None:
    """Follow review decisions; approval locks the submission's evidence and queues store-level retention."""
    decision = read_payload(DECISIONS[event.type], event)
    mirrored = uow.execute(
        _state_mirrored(),
        {
            "sid": decision.submission_id,
            "expected": decision.version,
            "to_state": event.type.split(".", 1)[1],
        },
    )
    if rows_affected(mirrored) != 1 or event.type != "submission.approved":
        return  # unknown here, or a decision on a version this service has moved past
    now = ctx.clock.now()
    for evidence in uow.scalars(_unlocked_evidence(), {"sid": decision.submission_id}):
        evidence.locked, evidence.locked_at, evidence.retention = True, now, "pending"
        ctx.wake_job_after_commit(uow, APPLY_RETENTION)
        ctx.outbox.add(
            uow,
            make_event(
                EvidenceLocked(
                    evidence_id=evidence.id,
                    submission_id=decision.submission_id,
                    object_key=evidence.object_key,
                ),
                producer=SERVICE,
                cause=event,
            ),
        )


def track_campaign(event, *, uow: Session, ctx: ServiceContext) -> None:
    """Keep each campaign's publicity window and text rules; changed ones re-judge its evidence's capture dates and
    the text already read in its photos."""
    data = read_payload(CampaignPublished, event)
    known = uow.get(KnownCampaign, data.campaign_id)
    if known is not None and data.version < known.version:
        return
    if known is None:
        known = KnownCampaign(id=data.campaign_id)
        uow.add(known)
    known.code, known.name, known.version = data.code, data.name, data.version
    known.publicity_start, known.publicity_end = data.publicity_start, data.publicity_end
    rules = {
        m.code: {"keywords": list(m.text_keywords), "expected": m.expects_text}
        for m in data.measures
        if m.text_keywords
    }
    rules_changed = (known.text_rules or {}) != rules
    known.text_rules = rules
    uow.flush()
    if rules_changed:
        ocr.rejudge(ctx, uow, known.id, cause=event)
    for evidence in uow.scalars(
        select(Evidence).where(Evidence.campaign_id == known.id, Evidence.captured_on.is_not(None))
    ):
        evidence.outside_window = ingest.outside_window(evidence.captured_on, known)


def track_unit(event, *, uow: Session, ctx: ServiceContext) -> None:
    """Keep a unit's code, name (for export folder names) and path, which its submissions and evidence follow."""
    if event.type == UnitRegistered.EVENT_TYPE:
        unit = read_payload(UnitRegistered, event)
        unit_id, code, name, path = unit.unit_id, unit.code, unit.name, unit.unit_path
    else:
        liaison = read_payload(LiaisonDesignated, event)
        unit_id, code, name, path = liaison.unit_id, liaison.unit_code, liaison.unit_name, liaison.unit_path
    known = uow.get(KnownUnit, unit_id)
    if known is None:
        uow.add(KnownUnit(id=unit_id, code=code, name=name, unit_path=path))
    else:
        known.code, known.name = code, name
        known.unit_path = path or known.unit_path
    if path:  # a unit moved in the tree: its rows follow, so the subtree rule sees them where it is now
        for model in (KnownSubmission, Evidence):
            uow.execute(
                update(model).where(model.unit_id == unit_id, model.unit_path != path).values(unit_path=path)
            )
