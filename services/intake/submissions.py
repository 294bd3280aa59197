"""Submission use cases: drafts, handing in, withdrawing, resubmitting after return, and review outcomes.

States: draft → submitted → (under_review) → approved | returned | rejected; submitted → withdrawn
while no reviewer has decided; returned → submitted again as version N+1 (every version is kept in
submission_versions). A reviewer's claim (submission.claimed) shows the version as under_review, a
release (submission.released) shows it as submitted again; decisions are mirrored from either state.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, Update, bindparam, delete, select, update
from sqlalchemy.orm import Session

from services.intake import auditing, projection, queries, schemas
from services.intake.auditing import Actor
from services.intake.definition import CampaignDefinition
from services.intake.models import Submission, SubmissionEvidence, SubmissionTopic, SubmissionVersion
from services.intake.projection import HANDED_IN  # what counts as done for coverage and deadlines
from shared.clock import as_utc
from shared.contracts import make_event, read_payload
from shared.contracts.evidence import EvidenceStored
from shared.contracts.intake import SubmissionSubmitted, SubmissionWithdrawn
from shared.contracts.review import DECISIONS, SubmissionClaimed, SubmissionReleased
from shared.db import by_key
from shared.events import Envelope, new_id
from shared.http import ApiError, not_found
from shared.runtime import ServiceContext

SERVICE = "intake"
KIND_NAMES = {"measure": "宣传措施材料", "summary_report": "活动总结", "good_practice": "经验做法"}


def create_submission(
    command: schemas.SubmissionCreate,
    *,
    ctx: ServiceContext,
    scope: str | None = None,
    actor: Actor | None = None,
) -> tuple[Submission, CampaignDefinition | None]:
    """Create a submission; unless `submit` is false it is handed in at once (publishes submission.submitted).
    Returns it with the campaign definition it was checked against (what `shown` needs to present it)."""
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        unit = queries.get_unit(uow, command.unit_id, scope=scope)
        if unit is None:
            raise not_found("单位", "unit", command.unit_id)
        if not unit.active:
            raise ApiError(409, "unit_inactive", "该单位已停用，不能报送", "the unit is no longer active")
        if command.campaign_id and unit.campaign_id and command.campaign_id != unit.campaign_id:
            raise ApiError(
                422, "campaign_mismatch", "该单位不属于此活动", "the unit does not take part in this campaign"
            )
        campaign_id = command.campaign_id or unit.campaign_id
        definition = queries.current_definition(uow, campaign_id)
        if campaign_id and definition is None:
            raise not_found("活动", "campaign", campaign_id)
        measure_code = _check_kind(command.kind, command.measure_code, definition)
        submission = Submission(
            id=new_id(),
            campaign_id=campaign_id,
            unit_id=unit.id,
            unit_path=unit.unit_path,
            kind=command.kind,
            measure_code=measure_code,
            title=command.title,
            description=command.description,
            held_on=command.held_on,
            place=command.place,
            participants=command.participants,
            topics=_check_topics(command.topics, definition),
            outside_window=_outside_window(definition, command.held_on),
            late=False,
            state="draft",
            version=1,
            created_at=now,
            updated_at=now,
        )
        uow.add(submission)
        uow.flush()
        _write_topics(uow, submission, new=True)
        if command.submit:
            _hand_in(uow, submission, definition, ctx=ctx)
        auditing.record(
            actor,
            uow,
            "submission.created",
            ("submission", submission.id),
            {
                "unit_id": unit.id,
                "kind": submission.kind,
                "measure_code": measure_code,
                "state": submission.state,
            },
        )
    return submission, definition


def edit_draft(
    submission_id: str,
    fields: schemas.SubmissionFields,
    *,
    ctx: ServiceContext,
    scope: str | None = None,
    actor: Actor | None = None,
) -> Submission:
    """Change a draft's fields."""
    with ctx.db.transaction() as uow:
        submission, definition = _load(uow, submission_id, scope)
        _expect(
            submission,
            ("draft",),
            "只有草稿可以修改；退回的材料请重新报送",
            "only drafts can be edited; resubmit a returned one",
        )
        _apply(uow, submission, fields, definition, ctx=ctx)
        auditing.record(
            actor,
            uow,
            "submission.edited",
            ("submission", submission.id),
            fields.model_dump(mode="json", exclude_unset=True),
        )
    return submission


def submit_draft(
    submission_id: str, *, ctx: ServiceContext, scope: str | None = None, actor: Actor | None = None
) -> Submission:
    """Hand in a draft (publishes submission.submitted)."""
    with ctx.db.transaction() as uow:
        submission, definition = _load(uow, submission_id, scope)
        _expect(submission, ("draft",), "只有草稿可以提交", "only a draft can be submitted")
        _hand_in(uow, submission, definition, ctx=ctx)
        auditing.record(
            actor, uow, "submission.submitted", ("submission", submission.id), {"version": submission.version}
        )
    return submission


def withdraw(
    submission_id: str, *, ctx: ServiceContext, scope: str | None = None, actor: Actor | None = None
) -> Submission:
    """Take back a submission no reviewer has decided yet (publishes submission.withdrawn)."""
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        submission, _ = _load(uow, submission_id, scope)
        _expect(
            submission,
            ("submitted",),
            "只有尚未审核的材料可以撤回",
            "only a submission not yet reviewed can be withdrawn",
        )
        _set_state(uow, submission, "withdrawn", now)
        _close_version(uow, submission, "withdrawn", None, now)
        ctx.outbox.add(
            uow,
            make_event(
                SubmissionWithdrawn(
                    submission_id=submission.id, unit_id=submission.unit_id, version=submission.version
                ),
                producer=SERVICE,
            ),
        )
        auditing.record(
            actor, uow, "submission.withdrawn", ("submission", submission.id), {"version": submission.version}
        )
    return submission


def resubmit(
    submission_id: str,
    fields: schemas.SubmissionFields,
    *,
    ctx: ServiceContext,
    scope: str | None = None,
    actor: Actor | None = None,
) -> Submission:
    """Hand in a returned submission again, with changes, as a new version (publishes submission.submitted)."""
    with ctx.db.transaction() as uow:
        submission, definition = _load(uow, submission_id, scope)
        _expect(
            submission,
            ("returned",),
            "只有被退回的材料可以重新报送",
            "only a returned submission can be resubmitted",
        )
        _apply(uow, submission, fields, definition, ctx=ctx)
        submission.version += 1
        submission.review_comment = None
        _hand_in(uow, submission, definition, ctx=ctx)
        auditing.record(
            actor,
            uow,
            "submission.resubmitted",
            ("submission", submission.id),
            {"version": submission.version},
        )
    return submission


def record_decision(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Mirror a reviewer's decision onto the submission (a stale version is ignored).

    A decision for a version the unit withdrew meanwhile wins: the reviewer decided before the
    withdrawal reached review, and review and evidence_storage keep that decision too.
    """
    decision = read_payload(DECISIONS[event.type], event)
    submission = by_key(uow, Submission, decision.submission_id)
    if submission is None or submission.version != decision.version or submission.state == "draft":
        return
    now = ctx.clock.now()
    outcome = event.type.split(".", 1)[1]
    submission.review_comment = decision.comment
    _set_state(uow, submission, outcome, now)
    _close_version(uow, submission, outcome, decision.comment, now)


def record_claim(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Show a claimed version as under review and a released one as submitted again (other versions and states are left alone).

    A claim or release older than the newest one applied is ignored: a redelivered claim arriving after its
    release would otherwise leave the submission under review until the next claim or decision."""
    claimed = event.type == SubmissionClaimed.EVENT_TYPE
    data = read_payload(SubmissionClaimed, event) if claimed else read_payload(SubmissionReleased, event)
    before, after = ("submitted", "under_review") if claimed else ("under_review", "submitted")
    submission = by_key(uow, Submission, data.submission_id)
    if submission is None or submission.version != data.version:
        return
    made_at, newest = as_utc(event.occurred_at), submission.claim_changed_at
    if newest is not None and made_at <= as_utc(newest):
        return
    submission.claim_changed_at = made_at
    if submission.state == before:
        _set_state(uow, submission, after, ctx.clock.now())


def record_evidence(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Remember evidence stored for one of our submissions (kind, size, checksum)."""
    data = read_payload(EvidenceStored, event)
    if (
        uow.get(Submission, data.submission_id) is None
        or uow.get(SubmissionEvidence, data.evidence_id) is not None
    ):
        return
    uow.add(
        SubmissionEvidence(
            evidence_id=data.evidence_id,
            submission_id=data.submission_id,
            kind=evidence_kind(data.media_type),
            media_type=data.media_type,
            filename=data.filename,
            size=data.size,
            sha256=data.sha256,
            stored_at=event.occurred_at,
        )
    )


def evidence_kind(media_type: str) -> str:
    """photo, video or document, from a sniffed media type."""
    top = media_type.split("/", 1)[0]
    return {"image": "photo", "video": "video"}.get(top, "document")


def present(uow: Session, submissions: list[Submission]) -> list[schemas.SubmissionRead]:
    """Submissions as the API shows them, with their evidence and whether it meets the measure's rule."""
    evidence = queries.submission_evidence(uow, [s.id for s in submissions])
    definitions: dict[str | None, CampaignDefinition | None] = {}
    out = []
    for submission in submissions:
        if submission.campaign_id not in definitions:
            definitions[submission.campaign_id] = queries.current_definition(uow, submission.campaign_id)
        out.append(shown(submission, evidence.get(submission.id, []), definitions[submission.campaign_id]))
    return out


def shown(
    submission: Submission, files: list[SubmissionEvidence], definition: CampaignDefinition | None
) -> schemas.SubmissionRead:
    """One submission as the API shows it, given its evidence and its campaign's definition (no query)."""
    view = schemas.SubmissionRead.model_validate(submission)
    view.evidence = [schemas.EvidenceRef.model_validate(e) for e in files]
    measure = (
        definition.measure(submission.measure_code) if definition and submission.kind == "measure" else None
    )
    if measure:
        count = sum(1 for e in files if e.kind in measure.evidence.kinds)
        view.evidence_status = schemas.EvidenceStatus(
            required_count=measure.evidence.min_count,
            accepted_kinds=list(measure.evidence.kinds),
            count=count,
            satisfied=count >= measure.evidence.min_count,
        )
    return view


# ---------------------------------------------------------------- helpers


def _load(
    uow: Session, submission_id: str, scope: str | None
) -> tuple[Submission, CampaignDefinition | None]:
    submission = queries.get_submission(uow, submission_id, scope=scope)
    if submission is None:
        raise not_found("报送材料", "submission", submission_id)
    return submission, queries.current_definition(uow, submission.campaign_id)


def _expect(submission: Submission, states: tuple[str, ...], message: str, message_en: str) -> None:
    if submission.state not in states:
        raise ApiError(
            409,
            "invalid_state",
            f"{message}（当前状态：{submission.state}）",
            f"{message_en} (state: {submission.state})",
        )


def _hand_in(
    uow: Session, submission: Submission, definition: CampaignDefinition | None, *, ctx: ServiceContext
) -> None:
    now = ctx.clock.now()
    submission.submitted_at = now
    _set_state(uow, submission, "submitted", now)
    submission.late = _late(definition, submission, now)
    uow.add(
        SubmissionVersion(
            submission_id=submission.id,
            version=submission.version,
            title=submission.title,
            description=submission.description,
            held_on=submission.held_on,
            place=submission.place,
            participants=submission.participants,
            topics=list(submission.topics),
            submitted_at=now,
        )
    )
    ctx.outbox.add(
        uow,
        make_event(
            SubmissionSubmitted(
                submission_id=submission.id,
                unit_id=submission.unit_id,
                measure_code=submission.measure_code,
                title=submission.title,
                version=submission.version,
                kind=submission.kind,
                campaign_id=submission.campaign_id,
                unit_path=submission.unit_path,
                held_on=submission.held_on,
                outside_window=submission.outside_window,
                topics=list(submission.topics),
                submitted_at=now,
                late=bool(submission.late),
            ),
            producer=SERVICE,
        ),
    )


def _close_version(
    uow: Session, submission: Submission, outcome: str, comment: str | None, at: datetime
) -> None:
    # One UPDATE, without loading the version first (nothing reads it afterwards in these transactions); no row,
    # no change, as before.
    uow.execute(
        _version_closing(),
        {"sid": submission.id, "ver": submission.version, "outcome_": outcome, "remark": comment, "at": at},
    )


@functools.cache
def _version_closing() -> Update:
    # Built once, on the table: Session.get of the composite key, its flush and the ORM's UPDATE were a third of
    # the intake worker's CPU per decision (py-spy under bench.pipeline). Bind names differ from the columns'.
    table = cast(Table, SubmissionVersion.__table__)
    return (
        update(table)
        .where(table.c.submission_id == bindparam("sid"), table.c.version == bindparam("ver"))
        .values(outcome=bindparam("outcome_"), review_comment=bindparam("remark"), decided_at=bindparam("at"))
    )


def _apply(
    uow: Session,
    submission: Submission,
    fields: schemas.SubmissionFields,
    definition: CampaignDefinition | None,
    *,
    ctx: ServiceContext,
) -> None:
    changes = fields.model_dump(exclude_unset=True)  # only what the caller sent; null clears a field
    if changes.get("title"):
        submission.title = changes["title"]
    for name in ("held_on", "participants"):
        if name in changes:
            setattr(submission, name, changes[name])
    for name in ("description", "place"):
        if name in changes:
            setattr(submission, name, changes[name] or "")
    if "topics" in changes:
        submission.topics = _check_topics(changes["topics"] or [], definition)
        _write_topics(uow, submission)
    submission.outside_window = _outside_window(definition, submission.held_on)
    submission.updated_at = ctx.clock.now()


def _set_state(uow: Session, submission: Submission, state: str, at: datetime) -> None:
    # Every state change passes here, so the topic rows and the coverage projection always know whether they count.
    before = submission.state
    submission.state, submission.updated_at = state, at
    # The topic rows mirror submission.topics (the projection counts them from it too): with none, or when the
    # flag stays as it was, there is nothing to update.
    if submission.topics and (before in HANDED_IN) != (state in HANDED_IN):
        uow.execute(
            update(SubmissionTopic)
            .where(SubmissionTopic.submission_id == submission.id)
            .values(handed_in=state in HANDED_IN)
            # nothing reads topic rows as objects (only their columns, in SQL): matching the session's copies
            # afterwards was a quarter of this statement's CPU
            .execution_options(synchronize_session=False)
        )
    projection.state_changed(uow, submission, before, state)


def _write_topics(uow: Session, submission: Submission, *, new: bool = False) -> None:
    # A submission inserted in this transaction has no topic rows yet: nothing to read or delete.
    before: Sequence[str] = []
    if not new:
        before = uow.scalars(
            select(SubmissionTopic.topic_code).where(SubmissionTopic.submission_id == submission.id)
        ).all()
        uow.execute(delete(SubmissionTopic).where(SubmissionTopic.submission_id == submission.id))
    projection.topics_changed(uow, submission, before, submission.topics)
    for code in submission.topics:
        uow.add(
            SubmissionTopic(
                submission_id=submission.id,
                topic_code=code,
                campaign_id=submission.campaign_id,
                unit_id=submission.unit_id,
                handed_in=submission.state in HANDED_IN,
            )
        )
    uow.flush()


def _check_kind(kind: str, measure_code: str | None, definition: CampaignDefinition | None) -> str:
    if kind != "measure":
        if measure_code:
            raise ApiError(
                422,
                "measure_not_allowed",
                f"{KIND_NAMES[kind]}不针对具体宣传措施，请不要填写 measure_code",
                f"a {kind} is not about one measure; leave measure_code out",
            )
        return ""
    if not measure_code:
        raise ApiError(
            422,
            "measure_required",
            "宣传措施材料需要填写 measure_code",
            "a measure submission needs measure_code",
        )
    if definition and definition.measure(measure_code) is None:
        known = "、".join(m.code for m in definition.measures)
        raise ApiError(
            422,
            "unknown_measure",
            f"该活动没有宣传措施 {measure_code}（可选：{known}）",
            f"the campaign has no measure {measure_code}",
        )
    return measure_code


def _check_topics(topics: list[str], definition: CampaignDefinition | None) -> list[str]:
    unique = list(dict.fromkeys(t.strip() for t in topics if t and t.strip()))
    if definition:
        known = {t.code for t in definition.topics}
        unknown = [t for t in unique if t not in known]
        if unknown:
            raise ApiError(
                422,
                "unknown_topic",
                f"该活动没有宣传重点：{'、'.join(unknown)}（可选：{'、'.join(sorted(known))}）",
                f"the campaign has no topic(s) {', '.join(unknown)}",
            )
    elif any(len(t) > 64 for t in unique):
        raise ApiError(422, "invalid_topic", "宣传重点代码太长", "topic code too long")
    return unique


def _outside_window(definition: CampaignDefinition | None, held_on) -> bool:
    return bool(definition and held_on and not definition.in_publicity_window(held_on))


def _late(definition: CampaignDefinition | None, submission: Submission, now: datetime) -> bool:
    if definition is None or submission.kind == "good_practice":
        return False
    requirement = (
        "summary_report" if submission.kind == "summary_report" else f"measure:{submission.measure_code}"
    )
    deadline = definition.deadline_for(requirement)
    return bool(deadline and now > deadline.due)
