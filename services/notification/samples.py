"""Sample contexts for every template family: used to validate an admin's override and to preview it."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.notification import contexts
from services.notification.links import Links
from shared.contracts.evidence import EvidenceRejected
from shared.contracts.intake import (
    CampaignPublished,
    DeadlineApproaching,
    DeadlineInfo,
    MeasureInfo,
    ReferenceMaterialInfo,
    SubmissionSubmitted,
)
from shared.contracts.review import (
    CircularPublished,
    InspectionRecorded,
    SubmissionReturned,
    SupervisionOpened,
)

_UNIT, _SUBMISSION = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
_CAMPAIGN = "00000000-0000-4000-8000-000000000003"
_DUE = datetime(2020, 3, 12, 10, 0, tzinfo=UTC)


def sample_context(family: str, *, links: Links, office: str) -> dict:
    """A full, realistic context for one family (invented people)."""
    greeting = "各位同事" if family == "reviewer_digest" else "王小明同志"
    return {**contexts.common(greeting=greeting, office=office), **_FAMILY[family](links)}


def _campaign(links: Links) -> dict:
    data = CampaignPublished(
        campaign_id=_CAMPAIGN,
        code="demo-2020",
        name="网上信访宣传月",
        version=1,
        organiser="市信访局",
        publicity_start=date(2020, 3, 9),
        publicity_end=date(2020, 3, 31),
        inspection_start=date(2020, 3, 21),
        inspection_end=date(2020, 3, 31),
        measures=[MeasureInfo(code="M1", name="召开专题会议"), MeasureInfo(code="M5", name="悬挂宣传横幅")],
        deadlines=[DeadlineInfo(code="liaison", name="明确联络员", due_at=_DUE)],
        reference_materials=[ReferenceMaterialInfo(code="A1", title="附件1：宣传标语参考资料")],
    )
    return contexts.campaign_published(data, unit_name="示例区信访局", links=links)


def _deadline(links: Links) -> dict:
    data = DeadlineApproaching(
        campaign_id=_CAMPAIGN,
        deadline_code="summary",
        deadline_name="活动总结报送",
        due_at=_DUE,
        unit_id=_UNIT,
        missing=["活动总结（含视频或照片）"],
        lead="P3D",
    )
    return contexts.deadline(
        "approaching", data, unit_name="示例区信访局", campaign_name="网上信访宣传月", links=links
    )


def _supervision(links: Links) -> dict:
    data = SupervisionOpened(
        supervision_id=_SUBMISSION,
        unit_id=_UNIT,
        level="yellow",
        method="phone",
        reason="宣传横幅未按要求悬挂",
        rectify_by=_DUE,
    )
    return contexts.supervision("opened", data, unit_name="示例区信访局", links=links)


def _items(links: Links) -> list[dict]:
    return [
        {
            "subject": "【审核通过】示例区信访局：召开专题会议",
            "body_text": "贵单位报送的材料已审核通过。",
            "link": links.review_item(_SUBMISSION),
            "created_at": _DUE,
        }
    ]


_FAMILY = {
    "delivery_failed": lambda links: contexts.delivery_failed(
        recipient="王小明 <wang.xm@example.org>",
        reason="550 5.1.1 mailbox unavailable",
        unit_id=_UNIT,
        unit_name="示例区信访局",
        links=links,
    ),
    "campaign_published": _campaign,
    "liaison_reminder": lambda links: contexts.liaison_reminder(
        kind="approaching",
        unit_id=_UNIT,
        unit_name="示例区信访局",
        deadline_name="明确联络员",
        due_at=_DUE,
        lead="P1D",
        campaign_name="网上信访宣传月",
        to_office=True,
        links=links,
    ),
    "submission_received": lambda links: contexts.submission_received(
        SubmissionSubmitted(
            submission_id=_SUBMISSION,
            unit_id=_UNIT,
            measure_code="M1",
            title="召开专题会议传达部署",
            version=1,
        ),
        unit_name="示例区信访局",
        links=links,
    ),
    "evidence_rejected": lambda links: contexts.evidence_rejected(
        EvidenceRejected(
            submission_id=_SUBMISSION,
            unit_id=_UNIT,
            filename="会议照片.jpg",
            reason_code="unsupported_media_type",
            reason="不支持的文件类型",
        ),
        unit_name="示例区信访局",
        links=links,
    ),
    "decision": lambda links: contexts.decision(
        "returned",
        SubmissionReturned(
            submission_id=_SUBMISSION,
            unit_id=_UNIT,
            measure_code="M1",
            title="召开专题会议传达部署",
            version=1,
            reviewer="赵审核",
            comment="请补充会议现场照片",
        ),
        unit_name="示例区信访局",
        links=links,
    ),
    "deadline": _deadline,
    "supervision": _supervision,
    "inspection_recorded": lambda links: contexts.inspection_recorded(
        InspectionRecorded(
            inspection_id=_SUBMISSION,
            unit_id=_UNIT,
            method="on_site",
            inspected_on=date(2020, 3, 23),
            inspector="钱检查",
            measures_verified=["M1", "M2"],
            residents_asked=10,
            residents_aware=8,
            residents_able=6,
            staff_tested=5,
            staff_proficient=5,
            findings="宣传角设置规范",
        ),
        unit_name="示例区信访局",
        links=links,
    ),
    "circular_published": lambda links: contexts.circular_published(
        CircularPublished(
            circular_id=_SUBMISSION,
            campaign_id=_CAMPAIGN,
            period="2020Q1",
            title="第一季度网上信访工作情况通报",
            docx_key="circulars/q1.docx",
            xlsx_key="circulars/q1.xlsx",
            snapshot_sha256="0" * 64,
        ),
        unit_name="示例区信访局",
        campaign_name="网上信访宣传月",
        links=links,
    ),
    "digest": lambda links: contexts.digest(
        unit_id=_UNIT, unit_name="示例区信访局", day=date(2020, 3, 12), items=_items(links), links=links
    ),
    "reviewer_digest": lambda links: contexts.reviewer_digest(
        day=date(2020, 3, 12), items=_items(links), links=links
    ),
    "evidence_rejected_digest": lambda links: contexts.evidence_rejected_digest(
        unit_name="示例区信访局",
        items=[
            {
                "filename": "会议照片.jpg",
                "reason_text": "不支持的文件类型",
                "link": links.evidence(_SUBMISSION),
                "created_at": _DUE,
            },
            {
                "filename": "横幅.png",
                "reason_text": "文件已损坏或不完整",
                "link": links.evidence(_SUBMISSION),
                "created_at": _DUE,
            },
        ],
    ),
}
