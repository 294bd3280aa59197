"""Intake use cases: commands from the API and reactions to review decisions."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.intake import schemas
from services.intake.models import Submission, Unit
from shared.contracts import make_event, read_payload
from shared.contracts.intake import LiaisonDesignated, SubmissionSubmitted
from shared.contracts.review import DECISIONS
from shared.events import Envelope, new_id
from shared.http import ApiError, not_found
from shared.runtime import ServiceContext

SERVICE = "intake"


def register_unit(command: schemas.UnitCreate, *, ctx: ServiceContext) -> Unit:
    """Create a unit with its liaison; publishes liaison.designated."""
    now = ctx.clock.now()
    try:
        with ctx.db.transaction() as uow:
            if command.parent_id and uow.get(Unit, command.parent_id) is None:
                raise not_found("上级单位", "parent unit", command.parent_id)
            if uow.scalar(select(Unit.id).where(Unit.code == command.code)):
                raise _duplicate_code(command.code)
            unit = Unit(
                id=new_id(),
                code=command.code,
                name=command.name,
                level=command.level,
                parent_id=command.parent_id,
                liaison_name=command.liaison.name,
                liaison_email=str(command.liaison.email),
                created_at=now,
            )
            uow.add(unit)
            uow.flush()
            ctx.outbox.add(uow, make_event(_liaison_payload(unit), producer=SERVICE))
    except IntegrityError:
        raise _duplicate_code(command.code) from None
    ctx.outbox_written()
    return unit


def designate_liaison(unit_id: str, liaison: schemas.LiaisonIn, *, ctx: ServiceContext) -> Unit:
    """Replace a unit's liaison; publishes liaison.designated."""
    with ctx.db.transaction() as uow:
        unit = uow.get(Unit, unit_id)
        if unit is None:
            raise not_found("单位", "unit", unit_id)
        unit.liaison_name, unit.liaison_email = liaison.name, str(liaison.email)
        ctx.outbox.add(uow, make_event(_liaison_payload(unit), producer=SERVICE))
    ctx.outbox_written()
    return unit


def submit(command: schemas.SubmissionCreate, *, ctx: ServiceContext) -> Submission:
    """Hand in a submission for a measure; publishes submission.submitted."""
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        if uow.get(Unit, command.unit_id) is None:
            raise not_found("单位", "unit", command.unit_id)
        submission = Submission(
            id=new_id(),
            unit_id=command.unit_id,
            measure_code=command.measure_code,
            title=command.title,
            description=command.description,
            state="submitted",
            version=1,
            created_at=now,
            updated_at=now,
        )
        uow.add(submission)
        uow.flush()
        ctx.outbox.add(uow, make_event(_submitted_payload(submission), producer=SERVICE))
    ctx.outbox_written()
    return submission


def record_decision(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Mirror a reviewer's decision onto the submission's state (a stale version is ignored)."""
    decision = read_payload(DECISIONS[event.type], event)
    submission = uow.get(Submission, decision.submission_id)
    if submission is None or submission.version != decision.version:
        return
    submission.state = event.type.split(".", 1)[1]
    submission.review_comment = decision.comment
    submission.updated_at = ctx.clock.now()


def _liaison_payload(unit: Unit) -> LiaisonDesignated:
    return LiaisonDesignated(
        unit_id=unit.id,
        unit_code=unit.code,
        unit_name=unit.name,
        liaison_name=unit.liaison_name,
        liaison_email=unit.liaison_email,
    )


def _submitted_payload(submission: Submission) -> SubmissionSubmitted:
    return SubmissionSubmitted(
        submission_id=submission.id,
        unit_id=submission.unit_id,
        measure_code=submission.measure_code,
        title=submission.title,
        version=submission.version,
    )


def _duplicate_code(code: str) -> ApiError:
    return ApiError(409, "duplicate_code", f"单位代码已存在：{code}", f"unit code already exists: {code}")
