"""Audit rows for evidence: one per download, presigned URL, preview, export entry and deletion, in the
service's append-only `audit_log` (shared/audit.py), under the verified principal of the request."""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.evidence_storage.access import Caller
from services.evidence_storage.models import AUDIT, Evidence
from shared import audit
from shared.contracts import make_event
from shared.contracts.evidence import EvidenceDownloaded
from shared.request_context import RequestInfo
from shared.runtime import ServiceContext

TIMELINE_ACTIONS = ("download", "download_url", "export")  # what the review timeline shows (not thumbnails)


def record(
    uow: Session,
    ctx: ServiceContext,
    caller: Caller,
    action: str,
    *,
    evidence: Evidence | None = None,
    unit_id: str | None = None,
    campaign_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Append an audit row (UTC time, actor, client address) in the caller's transaction."""
    facts = {
        "unit_id": evidence.unit_id if evidence else unit_id,
        "campaign_id": evidence.campaign_id if evidence else campaign_id,
        "submission_id": evidence.submission_id if evidence else None,
        "filename": evidence.filename if evidence else None,
    }
    if detail:
        facts["note"] = detail
    principal = caller.principal
    audit.record(
        uow,
        AUDIT,
        principal=principal,
        action=f"evidence.{action}",
        resource=("evidence", evidence.id if evidence else None),
        detail={key: value for key, value in facts.items() if value is not None},
        request=RequestInfo(client_ip=caller.client_ip, request_id=caller.request_id),
        at=ctx.clock.now(),
    )
    if evidence is not None and action in TIMELINE_ACTIONS:
        ctx.outbox.add(
            uow,
            make_event(
                EvidenceDownloaded(
                    evidence_id=evidence.id,
                    submission_id=evidence.submission_id,
                    unit_id=evidence.unit_id,
                    filename=evidence.filename,
                    actor=principal.name,
                    actor_role=principal.role,
                    action=action,
                    at=ctx.clock.now(),
                ),
                producer="evidence_storage",
            ),
        )
