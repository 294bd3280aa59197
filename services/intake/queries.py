"""Every read of units and submissions goes through here, so one rule decides who sees what.

`scope` is a visible unit subtree: a materialised unit path ("/<root>/.../<unit>/") whose subtree the
caller may see, or None for everything (campaign office staff). The API passes scope_of(principal)
(shared/auth.py): a unit's token carries its own unit path, so a unit sees its subtree only.
"""

from __future__ import annotations

from sqlalchemy import Select, select, true
from sqlalchemy.orm import Session

from services.intake.definition import CampaignDefinition, stored_definition
from services.intake.models import (
    Campaign,
    CampaignChange,
    CampaignVersion,
    LiaisonDesignation,
    Submission,
    SubmissionEvidence,
    SubmissionVersion,
    Unit,
)
from shared.db import by_key


def within(column, scope: str | None):
    """WHERE clause: the path column lies in the subtree at scope (always true without a scope)."""
    return column.startswith(scope, autoescape=True) if scope else true()


def visible_path(unit_path: str | None, scope: str | None) -> bool:
    """Whether one row's unit path lies in the subtree at scope."""
    return scope is None or bool(unit_path and unit_path.startswith(scope))


def get_unit(uow: Session, unit_id: str, *, scope: str | None = None) -> Unit | None:
    """One unit, if it exists and lies in scope."""
    unit = by_key(uow, Unit, unit_id)
    return unit if unit is not None and visible_path(unit.unit_path, scope) else None


def list_units(
    uow: Session,
    *,
    scope: str | None = None,
    campaign_id: str | None = None,
    subtree: str | None = None,
    include_inactive: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[Unit]:
    """Units in scope, optionally of one campaign and under one subtree path, by path then code."""
    query = select(Unit).where(within(Unit.unit_path, scope), within(Unit.unit_path, subtree))
    if campaign_id:
        query = query.where(Unit.campaign_id == campaign_id)
    if not include_inactive:
        query = query.where(Unit.active.is_(True))
    return list(uow.scalars(query.order_by(Unit.unit_path, Unit.code).limit(limit).offset(offset)))


def liaison_history(uow: Session, unit_id: str) -> list[LiaisonDesignation]:
    """A unit's liaisons in the order they were designated."""
    return list(
        uow.scalars(
            select(LiaisonDesignation)
            .where(LiaisonDesignation.unit_id == unit_id)
            .order_by(LiaisonDesignation.id)
        )
    )


def get_submission(uow: Session, submission_id: str, *, scope: str | None = None) -> Submission | None:
    """One submission, if it exists and its unit lies in scope."""
    submission = uow.get(Submission, submission_id)
    return submission if submission is not None and visible_path(submission.unit_path, scope) else None


def submissions_query(
    *,
    scope: str | None = None,
    campaign_id: str | None = None,
    unit_id: str | None = None,
    subtree: str | None = None,
    kind: str | None = None,
    measure_code: str | None = None,
    state: str | None = None,
) -> Select:
    """SELECT of submissions in scope with the given filters, newest first."""
    query = select(Submission).where(
        within(Submission.unit_path, scope), within(Submission.unit_path, subtree)
    )
    for column, value in (
        (Submission.campaign_id, campaign_id),
        (Submission.unit_id, unit_id),
        (Submission.kind, kind),
        (Submission.measure_code, measure_code),
        (Submission.state, state),
    ):
        if value:
            query = query.where(column == value)
    return query.order_by(Submission.created_at.desc(), Submission.id)


def list_submissions(uow: Session, *, limit: int = 100, offset: int = 0, **filters) -> list[Submission]:
    """Submissions in scope with the given filters (see submissions_query), one page."""
    return list(uow.scalars(submissions_query(**filters).limit(limit).offset(offset)))


def submission_versions(uow: Session, submission_id: str) -> list[SubmissionVersion]:
    """Every version of a submission, oldest first."""
    return list(
        uow.scalars(
            select(SubmissionVersion)
            .where(SubmissionVersion.submission_id == submission_id)
            .order_by(SubmissionVersion.version)
        )
    )


def submission_evidence(uow: Session, submission_ids: list[str]) -> dict[str, list[SubmissionEvidence]]:
    """The evidence intake has heard of, per submission."""
    if not submission_ids:
        return {}
    rows = uow.scalars(
        select(SubmissionEvidence)
        .where(SubmissionEvidence.submission_id.in_(submission_ids))
        .order_by(SubmissionEvidence.stored_at, SubmissionEvidence.evidence_id)
    )
    out: dict[str, list[SubmissionEvidence]] = {}
    for row in rows:
        out.setdefault(row.submission_id, []).append(row)
    return out


def list_campaigns(uow: Session) -> list[Campaign]:
    """Every campaign, newest publicity window first (campaigns are visible to every unit)."""
    return list(uow.scalars(select(Campaign).order_by(Campaign.publicity_start.desc(), Campaign.code)))


def campaign_by_ref(uow: Session, ref: str) -> Campaign | None:
    """A campaign by id or by code."""
    return uow.get(Campaign, ref) or uow.scalar(select(Campaign).where(Campaign.code == ref))


def current_definition(uow: Session, campaign_id: str | None) -> CampaignDefinition | None:
    """The campaign's currently published definition (None for no campaign); parsed once per version."""
    if not campaign_id:
        return None
    row = uow.execute(
        select(Campaign.version, Campaign.definition_sha256).where(Campaign.id == campaign_id)
    ).first()
    if row is None:
        return None
    return stored_definition(
        row.definition_sha256,
        lambda: uow.scalar(
            select(CampaignVersion.definition).where(
                CampaignVersion.campaign_id == campaign_id, CampaignVersion.version == row.version
            )
        ),
    )


def published_definition(uow: Session, campaign_id: str) -> CampaignDefinition:
    """The current definition of a campaign that exists (loading a campaign always publishes one)."""
    definition = current_definition(uow, campaign_id)
    if definition is None:
        raise LookupError(f"campaign {campaign_id} has no published definition")
    return definition


def campaign_versions(uow: Session, campaign_id: str) -> list[CampaignVersion]:
    """Every published version of a campaign, oldest first."""
    return list(
        uow.scalars(
            select(CampaignVersion)
            .where(CampaignVersion.campaign_id == campaign_id)
            .order_by(CampaignVersion.version)
        )
    )


def campaign_changes(uow: Session, campaign_id: str) -> list[CampaignChange]:
    """The audit trail of a campaign, oldest first."""
    return list(
        uow.scalars(
            select(CampaignChange)
            .where(CampaignChange.campaign_id == campaign_id)
            .order_by(CampaignChange.id)
        )
    )
