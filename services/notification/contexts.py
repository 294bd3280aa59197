"""What each template family is given: pure functions from an event's payload (and what we know) to a context.

The handlers and the template samples (for validating an admin's override) both build contexts here,
so an override is checked against exactly the names the real e-mails carry.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from services.notification.labels import (
    EVIDENCE_REASONS,
    INSPECTION_METHODS,
    SUBMISSION_KINDS,
    SUPERVISION_LEVELS,
    SUPERVISION_METHODS,
    duration_text,
    label,
)
from services.notification.links import Links
from shared.contracts.evidence import EvidenceRejected
from shared.contracts.intake import CampaignPublished, SubmissionSubmitted
from shared.contracts.review import CircularPublished, InspectionRecorded

FILENAME_IN_SUBJECT = 40  # characters of an uploader's filename shown in a subject line
# Line breaks, other control characters and bidirectional overrides (which can disguise an extension).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def common(*, greeting: str, office: str, in_digest: bool = False) -> dict:
    """Names every template may use: the greeting line, the signature, and whether it is part of a digest."""
    return {"greeting": greeting, "office": office, "in_digest": in_digest}


def campaign_published(data: CampaignPublished, *, unit_name: str, links: Links) -> dict:
    """A campaign (version) was published: its window, measures, deadlines and links to plan and materials."""
    campaign = {
        "id": data.campaign_id,
        "code": data.code,
        "name": data.name,
        "version": data.version,
        "organiser": data.organiser,
        "publicity_start": data.publicity_start,
        "publicity_end": data.publicity_end,
        "inspection_start": data.inspection_start,
        "inspection_end": data.inspection_end,
        "measures": [{"code": m.code, "name": m.name} for m in data.measures],
        "deadlines": [{"code": d.code, "name": d.name, "due_at": d.due_at} for d in data.deadlines],
    }
    materials_url = links.materials(data.campaign_id)
    materials = [
        {"code": m.code, "title": m.title, "url": links.absolute(m.url) if m.url else materials_url}
        for m in data.reference_materials
    ]
    plan_url = links.absolute(data.plan_url) if data.plan_url else links.campaign(data.campaign_id)
    return {
        "unit_name": unit_name,
        "campaign": campaign,
        "plan_url": plan_url,
        "materials": materials,
        "materials_url": materials_url,
    }


def liaison_reminder(
    *,
    kind: str,
    unit_id: str,
    unit_name: str,
    deadline_name: str,
    due_at: datetime,
    lead: str,
    campaign_name: str,
    to_office: bool,
    links: Links,
) -> dict:
    """A unit has not named its liaison by the deadline: told to the office (or the liaison, if one is known)."""
    return {
        "kind": kind,
        "unit_name": unit_name,
        "deadline_name": deadline_name,
        "due_at": due_at,
        "lead_text": duration_text(lead),
        "campaign_name": campaign_name,
        "to_office": to_office,
        "unit_url": links.unit(unit_id),
    }


def submission_received(data: SubmissionSubmitted, *, unit_name: str, links: Links) -> dict:
    """A receipt for a submission (version)."""
    return {
        "unit_name": unit_name,
        "title": data.title,
        "measure_code": data.measure_code,
        "version": data.version,
        "kind": data.kind,
        "kind_text": label(SUBMISSION_KINDS, data.kind),
        "outside_window": data.outside_window,
        "submission_url": links.submission(data.submission_id),
    }


def short_filename(filename: str | None, limit: int = FILENAME_IN_SUBJECT) -> str:
    """An uploader's filename made safe to show in a subject: control and direction characters removed, shortened."""
    text = _UNSAFE.sub(" ", filename or "").strip() or "（无文件名）"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def evidence_rejected(data: EvidenceRejected, *, unit_name: str, links: Links) -> dict:
    """An upload was refused, and why."""
    return {
        "unit_name": unit_name,
        "filename": short_filename(data.filename, 200),
        "filename_short": short_filename(data.filename),
        "reason_code": data.reason_code,
        "reason": data.reason,
        "reason_text": data.reason or label(EVIDENCE_REASONS, data.reason_code),
        "evidence_url": links.evidence(data.submission_id),
    }


def evidence_rejected_digest(*, unit_name: str, items: list[dict]) -> dict:
    """Several refused uploads of one unit, told in one mail (at most one an hour)."""
    return {"unit_name": unit_name, "items": items, "count": len(items)}


def decision(kind: str, data, *, unit_name: str, links: Links) -> dict:
    """A reviewer's decision (approved, returned, rejected) with the comment and score."""
    return {
        "kind": kind,
        "unit_name": unit_name,
        "title": data.title,
        "measure_code": data.measure_code,
        "version": data.version,
        "reviewer": data.reviewer,
        "comment": data.comment,
        "score": getattr(data, "score", None),
        "submission_url": links.submission(data.submission_id),
    }


def deadline(kind: str, data, *, unit_name: str, campaign_name: str, links: Links) -> dict:
    """A deadline is near (approaching) or passed (missed), with what is still missing."""
    return {
        "kind": kind,
        "unit_name": unit_name,
        "deadline_code": data.deadline_code,
        "deadline_name": data.deadline_name,
        "due_at": data.due_at,
        "lead_text": duration_text(getattr(data, "lead", "")),
        "missing": list(data.missing),
        "campaign_name": campaign_name,
        "link": links.unit_submissions(data.unit_id),
    }


def supervision(kind: str, data, *, unit_name: str, links: Links) -> dict:
    """A supervision (督办) was opened, escalated or closed."""
    return {
        "kind": kind,
        "unit_name": unit_name,
        "level": data.level,
        "level_text": label(SUPERVISION_LEVELS, data.level),
        "method": data.method,
        "method_text": label(SUPERVISION_METHODS, data.method),
        "reason": data.reason,
        "rectify_by": data.rectify_by,
        "outcome": getattr(data, "outcome", ""),
        "link": links.supervision(data.supervision_id),
    }


def inspection_recorded(data: InspectionRecorded, *, unit_name: str, links: Links) -> dict:
    """An inspection (检查) of the unit was recorded."""
    return {
        "unit_name": unit_name,
        "method": data.method,
        "method_text": label(INSPECTION_METHODS, data.method),
        "inspected_on": data.inspected_on,
        "inspector": data.inspector,
        "measures_verified": list(data.measures_verified),
        "residents_asked": data.residents_asked,
        "residents_aware": data.residents_aware,
        "residents_able": data.residents_able,
        "staff_tested": data.staff_tested,
        "staff_proficient": data.staff_proficient,
        "findings": data.findings,
        "link": links.inspection(data.inspection_id),
    }


def circular_published(data: CircularPublished, *, unit_name: str, campaign_name: str, links: Links) -> dict:
    """A circular (通报) was published."""
    return {
        "unit_name": unit_name,
        "title": data.title,
        "period": data.period,
        "campaign_name": campaign_name,
        "link": links.circular(data.circular_id),
    }


def digest(*, unit_id: str, unit_name: str, day: date, items: list[dict], links: Links) -> dict:
    """A unit's daily digest: each item's subject, text and time, and a link to the unit's submissions."""
    return {"unit_name": unit_name, "day": day, "items": items, "link": links.unit_submissions(unit_id)}


def reviewer_digest(*, day: date, items: list[dict], links: Links) -> dict:
    """Reviewers' daily digest of new submissions."""
    return {"day": day, "items": items, "queue_url": links.review_queue()}


def delivery_failed(
    *,
    recipient: str,
    reason: str,
    unit_id: str | None,
    unit_name: str,
    links: Links,
    channel: str = "email",
) -> dict:
    """An e-mail to a liaison (or a group-robot post) failed for good: told to the campaign office once a day."""
    robot = ROBOT_NAMES.get(channel, "")
    query = f"?status=failed&channel={channel}" if robot else "?status=failed"
    return {
        "recipient": recipient,
        "reason": reason,
        "unit_name": unit_name,
        "unit_url": links.unit(unit_id) if unit_id else "",
        "deliveries_url": links.absolute(f"/notification/deliveries{query}"),
        "robot": robot,  # empty for an e-mail; 钉钉群机器人 or 企业微信群机器人 for a post
    }


ROBOT_NAMES = {"dingtalk": "钉钉群机器人", "wecom": "企业微信群机器人"}
