"""What happened in review, written once: the timeline record and, for a person's act, the audit row.

A use case calls `record` inside its own transaction. The timeline record is always written (it is the
unit's and the submission's history); the audit row only when a person acted through the API (the
rules acting alone, as `system`, leave no audit row). Both carry the same kind, subject, time and
detail, unless the use case keeps something off the audit log (`audit_detail`, e.g. a comment's text
belongs in the thread's history but not in the access log).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.review.models import AUDIT, TimelineRecord
from services.review.timeline import chain
from shared import audit
from shared.auth import Principal
from shared.request_context import RequestInfo

SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """Who acts: a person through the API (audited), or the rules (`system`), maybe on a person's call."""

    name: str
    role: str = ""
    principal: Principal | None = None
    request: RequestInfo | None = None

    @classmethod
    def of(cls, principal: Principal, request: RequestInfo | None = None) -> Actor:
        """The logged-in caller of an API route."""
        return cls(principal.name, principal.role, principal, request)


def record(
    uow: Session,
    actor: Actor,
    kind: str,
    subject: tuple[str, str],
    *,
    at: datetime,
    detail: dict[str, Any],
    unit_id: str | None = None,
    submission_id: str | None = None,
    audit_detail: dict[str, Any] | None = None,
) -> TimelineRecord:
    """Append the timeline record and (with a principal) the audit row of one act, in the caller's transaction."""
    subject_type, subject_id = subject
    row = chain.append(
        uow,
        at=at,
        actor=actor.name,
        actor_role=actor.role,
        kind=kind,
        subject_type=subject_type,
        subject_id=subject_id,
        unit_id=unit_id,
        submission_id=submission_id,
        detail=detail,
    )
    if actor.principal is not None:
        audit.record(
            uow,
            AUDIT,
            principal=actor.principal,
            action=kind,
            resource=subject,
            detail=detail if audit_detail is None else audit_detail,
            request=actor.request,
            at=at,
        )
    return row
