"""Circulars (通报): a frozen snapshot of the assessment for a period, its files, and publishing.

The snapshot is canonical JSON (sorted keys, no spaces, UTF-8) holding everything the .docx and
.xlsx show; its SHA-256 is recorded on the row, so `verify` can prove the stored snapshot is the
one the circular was made from. Files live in the blob store under
circulars/<campaign id>/<period>/r<revision>/. Each POST for a period makes a new draft revision;
a draft is published once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.review import activity
from services.review.assessment import scoring
from services.review.circulars import docs as circular_docs
from services.review.models import AUDIT, Circular
from shared import audit
from shared.auth import Principal
from shared.blobs.port import BlobNotFound, BlobStore, BlobStoreUnavailable
from shared.bounds import MAX_YEAR, MIN_YEAR
from shared.clock import as_utc
from shared.contracts import make_event
from shared.contracts.review import CircularPublished
from shared.db import rows_affected
from shared.http import ApiError, not_found
from shared.request_context import RequestInfo
from shared.runtime import ServiceContext

SERVICE = "review"
SNAPSHOT_SCHEMA = "review.circular-snapshot/1"
FILES = {
    "docx": ("circular.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "xlsx": ("circular.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "snapshot": ("snapshot.json", "application/json"),
}
CIRCULAR_DEFAULTS = {
    "commend_top": 3,
    "commend_min_score": 90.0,
    "criticise_below": 60.0,
}  # intake's CircularRules
_QUARTERS = {1: "第一季度", 2: "第二季度", 3: "第三季度", 4: "第四季度"}
_HALVES = {1: "上半年", 2: "下半年"}


# ---------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    """A reporting period: 2020-Q1, 2020-H1, 2020-03 or 2020."""

    code: str
    name: str  # Chinese, e.g. 第一季度
    year: int
    end: date
    start: date


def parse_period(code: str) -> Period:
    """The period a code names (years MIN_YEAR..MAX_YEAR of shared/bounds.py); 422 for anything else."""
    text = (code or "").strip()
    if (m := re.match(r"(\d{4})", text)) and not MIN_YEAR <= int(m[1]) <= MAX_YEAR:
        raise ApiError(
            422,
            "invalid_period",
            f"期别年份须在 {MIN_YEAR} 至 {MAX_YEAR} 之间",
            f"the period's year must lie between {MIN_YEAR} and {MAX_YEAR}",
        )
    if m := re.fullmatch(r"(\d{4})-Q([1-4])", text):
        year, quarter = int(m[1]), int(m[2])
        return Period(
            text, _QUARTERS[quarter], year, _month_end(year, quarter * 3), date(year, quarter * 3 - 2, 1)
        )
    if m := re.fullmatch(r"(\d{4})-H([12])", text):
        year, half = int(m[1]), int(m[2])
        return Period(text, _HALVES[half], year, _month_end(year, half * 6), date(year, half * 6 - 5, 1))
    if m := re.fullmatch(r"(\d{4})-(0[1-9]|1[0-2])", text):
        year, month = int(m[1]), int(m[2])
        return Period(text, f"{month}月份", year, _month_end(year, month), date(year, month, 1))
    if m := re.fullmatch(r"(\d{4})", text):
        return Period(text, "年度", int(m[1]), date(int(m[1]), 12, 31), date(int(m[1]), 1, 1))
    raise ApiError(
        422,
        "invalid_period",
        "期别格式不正确，应为 2020-Q1、2020-H1、2020-03 或 2020",
        "period must look like 2020-Q1, 2020-H1, 2020-03 or 2020",
    )


def _month_end(year: int, month: int) -> date:
    first_next = date(year + (month == 12), month % 12 + 1, 1)
    return first_next - timedelta(days=1)


# ---------------------------------------------------------------- the snapshot


def circular_rules(campaign: scoring.CampaignFacts) -> dict[str, float]:
    """Who is commended and criticised: the campaign's rules over the defaults."""
    rules = {
        **CIRCULAR_DEFAULTS,
        **{k: v for k, v in campaign.circular_rules.items() if k in CIRCULAR_DEFAULTS},
    }
    return {
        "commend_top": int(rules["commend_top"]),
        "commend_min_score": float(rules["commend_min_score"]),
        "criticise_below": float(rules["criticise_below"]),
    }


def build_snapshot(
    result: scoring.Assessment,
    *,
    period: Period,
    revision: int,
    title: str,
    document_number: str,
    issued_on: date,
) -> dict[str, Any]:
    """Everything a circular states, as plain JSON-ready data."""
    campaign, rules = result.campaign, circular_rules(result.campaign)
    zone = campaign.zone
    criticised = {u.unit_id: _reasons(u, rules) for u in result.units}
    criticised = {k: v for k, v in criticised.items() if v}
    levels = result.by_level()
    supervisions = sorted(
        ((s, u) for u in result.units for s in u.supervisions), key=lambda p: (p[0].opened_at, p[0].id)
    )
    return {
        "schema": SNAPSHOT_SCHEMA,
        "campaign": {
            "id": campaign.campaign_id,
            "code": campaign.code,
            "name": campaign.name,
            "organiser": campaign.organiser,
            "version": campaign.version,
            "timezone": campaign.timezone,
        },
        "period": period.code,
        "period_name": period.name,
        "revision": revision,
        "title": title,
        "document_number": document_number,
        "issued_on": issued_on.isoformat(),
        "as_of": result.as_of.isoformat(),
        "as_of_local": result.as_of.astimezone(zone).isoformat(),
        "rules": {"rubric": campaign.rubric, "circular": rules},
        "measures": [{"code": m["code"], "name": m.get("name", m["code"])} for m in campaign.measures],
        "summary": _summary(result, levels, supervisions),
        "levels": [
            {
                "level": level,
                "name": scoring.LEVEL_NAMES.get(level, level),
                "units": [_unit(u) for u in units],
            }
            for level, units in levels
        ],
        "commended": [_brief(u) for u in _commended(levels, rules, criticised)],
        "criticised": [
            {**_brief(u), "reasons": criticised[u.unit_id]}
            for _, units in levels
            for u in units
            if u.unit_id in criticised
        ],
        "supervisions": [
            {
                "supervision_id": s.id,
                "unit_id": u.unit_id,
                "unit_code": u.code,
                "unit_name": u.name,
                "level": s.level,
                "method": s.method,
                "state": s.state,
                "reason": s.reason,
                "opened_at": s.opened_at.isoformat(),
            }
            for s, u in supervisions
        ],
    }


def _unit(u: scoring.UnitResult) -> dict[str, Any]:
    return {
        "unit_id": u.unit_id,
        "code": u.code,
        "name": u.name,
        "level": u.level,
        "rank": u.rank,
        "total": u.total,
        "parts": dict(u.parts),
        "inspected": u.inspected,
        "lines": [scoring.line_dict(line) for line in u.lines],
    }


def _brief(u: scoring.UnitResult) -> dict[str, Any]:
    return {
        "unit_id": u.unit_id,
        "code": u.code,
        "name": u.name,
        "level": u.level,
        "rank": u.rank,
        "total": u.total,
    }


def _average(values: list[float]) -> float | None:
    return scoring.round2(sum(values) / len(values)) if values else None


def _summary(result: scoring.Assessment, levels, supervisions) -> dict[str, Any]:
    totals = [u.total for u in result.units]
    return {
        "units": len(result.units),
        "average": _average(totals),
        "inspected": sum(1 for u in result.units if u.inspected),
        "supervisions": len(supervisions),
        "red_supervisions": sum(1 for s, _ in supervisions if s.level == "red"),
        "levels": [
            {
                "level": level,
                "name": scoring.LEVEL_NAMES.get(level, level),
                "units": len(units),
                "average": _average([u.total for u in units]),
                "highest": max(u.total for u in units),
                "lowest": min(u.total for u in units),
            }
            for level, units in levels
        ],
    }


def _reasons(u: scoring.UnitResult, rules: dict[str, float]) -> list[str]:
    """Why a unit is criticised (empty: it is not): a low score or a red supervision, with what lies behind."""
    low = u.total < rules["criticise_below"]
    if not (low or u.red_supervision):
        return []
    reasons = (
        [f"考核得分 {scoring.fmt(u.total)} 分，低于 {scoring.fmt(rules['criticise_below'])} 分"]
        if low
        else []
    )
    for case in sorted(u.supervisions, key=lambda s: (s.level != "red", s.opened_at, s.id)):
        reasons.append(
            f"被{scoring.SUPERVISION_LEVELS.get(case.level, case.level)}色"
            f"{scoring.SUPERVISION_METHODS.get(case.method, case.method)}督办（{case.reason}）"
        )
    if u.missing_measures:
        reasons.append(f"宣传措施未完成或未通过审核：{'、'.join(f'“{name}”' for name in u.missing_measures)}")
    reasons.extend(u.deadline_findings)
    return reasons


def _commended(levels, rules: dict[str, float], criticised: dict[str, list[str]]) -> list[scoring.UnitResult]:
    """Per level, the best `commend_top` units at or above the minimum score (ties at the edge included)."""
    chosen: list[scoring.UnitResult] = []
    for _, units in levels:
        eligible = [u for u in units if u.total >= rules["commend_min_score"] and u.unit_id not in criticised]
        picked = eligible[: int(rules["commend_top"])]
        if picked:
            picked += [u for u in eligible[len(picked) :] if u.rank == picked[-1].rank]
        chosen.extend(picked)
    return chosen


def canonical(snapshot: dict[str, Any]) -> bytes:
    """The snapshot's canonical bytes: sorted keys, compact separators, UTF-8."""
    return json.dumps(
        snapshot, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def sha256(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- use cases


def default_title(campaign_name: str, period: Period) -> str:
    """<campaign name><period name>工作情况通报, e.g. 淮北市网上信访宣传月第一季度工作情况通报."""
    return f"{campaign_name}{period.name}工作情况通报"


def create(
    ctx: ServiceContext,
    *,
    campaign_id: str,
    period: str,
    as_of: str | None = None,
    title: str | None = None,
    document_number: str | None = None,
    principal: Principal,
    request: RequestInfo | None = None,
) -> Circular:
    """Freeze the assessment as of the period's end (or as_of) into a new draft revision with its files."""
    blobs = _blobs(ctx)
    spec = parse_period(period)
    now = ctx.clock.now()
    with ctx.db.session() as uow:
        campaign = scoring.load_campaign(uow, campaign_id)
    if spec.start > as_utc(now).astimezone(campaign.zone).date():
        raise ApiError(
            422,
            "period_not_started",
            f"{spec.code} 尚未开始，不能生成通报",
            f"the period {spec.code} has not begun; there is nothing to report yet",
        )
    # the one as_of rule (as GET /assessment): a moment after now means now, the facts known so far
    resolved = scoring.resolve_as_of(
        as_of, campaign.zone, now, default=scoring.end_of_day(spec.end, campaign.zone)
    )
    moment = resolved.at
    with ctx.db.session() as uow:
        result = scoring.compute(uow, campaign_id, moment)
    written: list[str] = []
    try:
        with ctx.db.transaction() as uow:
            revision = (
                uow.scalar(
                    select(func.max(Circular.revision)).where(
                        Circular.campaign_id == campaign_id, Circular.period == spec.code
                    )
                )
                or 0
            ) + 1
            number = document_number or f"宣传月通报〔{spec.year}〕{_sequence(uow, campaign_id, spec.code)}号"
            snapshot = build_snapshot(
                result,
                period=spec,
                revision=revision,
                title=title or default_title(campaign.name, spec),
                document_number=number,
                issued_on=as_utc(now).astimezone(campaign.zone).date(),
            )
            data = canonical(snapshot)
            prefix = f"circulars/{campaign_id}/{spec.code}/r{revision}"
            row = Circular(
                id=str(uuid.uuid4()),
                campaign_id=campaign_id,
                period=spec.code,
                revision=revision,
                title=snapshot["title"],
                as_of=moment,
                state="draft",
                snapshot_sha256=sha256(data),
                snapshot_key=f"{prefix}/{FILES['snapshot'][0]}",
                docx_key=f"{prefix}/{FILES['docx'][0]}",
                xlsx_key=f"{prefix}/{FILES['xlsx'][0]}",
                created_by=principal.name,
                created_at=now,
            )
            uow.add(row)
            uow.flush()  # takes the revision: a concurrent POST for the period fails here, before writing files
            for key, content, kind in (
                (row.snapshot_key, data, "snapshot"),
                (row.docx_key, circular_docs.write_docx(snapshot, row.snapshot_sha256), "docx"),
                (row.xlsx_key, circular_docs.write_xlsx(snapshot, row.snapshot_sha256), "xlsx"),
            ):
                written.append(key)
                stored = blobs.put(key, io.BytesIO(content), content_type=FILES[kind][1])
                if kind == "snapshot" and stored.sha256 and stored.sha256 != row.snapshot_sha256:
                    raise RuntimeError(f"the store hashed the snapshot as {stored.sha256}")
            audit.record(
                uow,
                AUDIT,
                principal=principal,
                action="circular.created",
                resource=("circular", row.id),
                detail={
                    "campaign_id": campaign_id,
                    "period": spec.code,
                    "revision": revision,
                    "as_of": moment.isoformat(),
                    "snapshot_sha256": row.snapshot_sha256,
                },
                request=request,
                at=now,
            )
    except BaseException as exc:
        for key in written:
            _quietly_delete(blobs, key)
        if isinstance(exc, IntegrityError):
            raise ApiError(
                409,
                "circular_revision_taken",
                "同一期通报正在生成，请稍后重试",
                "another revision of this period is being made; retry",
            ) from None
        raise
    return row


def _sequence(uow: Session, campaign_id: str, period: str) -> int:
    """The number of a period among the campaign's circulars, in the order they were first made."""
    firsts = uow.execute(
        select(Circular.period, func.min(Circular.created_at))
        .where(Circular.campaign_id == campaign_id)
        .group_by(Circular.period)
    ).all()
    ordered = [p for p, _ in sorted(firsts, key=lambda row: (as_utc(row[1]), row[0]))]
    return ordered.index(period) + 1 if period in ordered else len(ordered) + 1


def publish(
    ctx: ServiceContext, circular_id: str, *, principal: Principal, request: RequestInfo | None = None
) -> Circular:
    """Publish a draft once: circular.published, a timeline record and an audit entry, in one transaction."""
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        row = uow.get(Circular, circular_id)
        if row is None:
            raise not_found("通报", "circular", circular_id)
        if row.state == "published":
            raise _already_published()
        check = verify(ctx, row)
        if not check["ok"]:
            raise ApiError(
                409,
                "snapshot_mismatch",
                f"通报快照校验不通过，不能印发：{check['message']}",
                "the stored snapshot does not match its recorded SHA-256",
            )
        changed = uow.execute(
            update(Circular)
            .where(Circular.id == circular_id, Circular.state == "draft")
            .values(state="published", published_by=principal.name, published_at=now)
        )
        if rows_affected(changed) != 1:
            raise _already_published()
        uow.refresh(row)
        detail = {
            "campaign_id": row.campaign_id,
            "period": row.period,
            "revision": row.revision,
            "title": row.title,
            "snapshot_sha256": row.snapshot_sha256,
        }
        activity.record(
            uow,
            activity.Actor.of(principal, request),
            "circular.published",
            ("circular", row.id),
            at=now,
            detail=detail,
        )
        ctx.outbox.add(
            uow,
            make_event(
                CircularPublished(
                    circular_id=row.id,
                    campaign_id=row.campaign_id,
                    period=row.period,
                    title=row.title,
                    docx_key=row.docx_key,
                    xlsx_key=row.xlsx_key,
                    snapshot_sha256=row.snapshot_sha256,
                ),
                producer=SERVICE,
            ),
        )
    return row


def _already_published() -> ApiError:
    return ApiError(
        409, "already_published", "该通报已印发，不能重复印发", "this circular was already published"
    )


def verify(ctx: ServiceContext, row: Circular) -> dict[str, Any]:
    """Re-hash the stored snapshot and compare it with the SHA-256 recorded when it was made."""
    try:
        digest = hashlib.sha256()
        for chunk in _blobs(ctx).read(row.snapshot_key):
            digest.update(chunk)
        actual = digest.hexdigest()
    except BlobNotFound:
        return {
            "circular_id": row.id,
            "ok": False,
            "recorded_sha256": row.snapshot_sha256,
            "actual_sha256": None,
            "message": "快照文件缺失",
        }
    ok = actual == row.snapshot_sha256
    return {
        "circular_id": row.id,
        "ok": ok,
        "recorded_sha256": row.snapshot_sha256,
        "actual_sha256": actual,
        "message": "快照与记录的 SHA-256 一致"
        if ok
        else "快照内容与记录的 SHA-256 不一致（文件被改动或替换）",
    }


def open_file(ctx: ServiceContext, row: Circular, kind: str) -> tuple[Iterator[bytes], str, str]:
    """(chunks, media type, download name) of one of a circular's files."""
    key = {"docx": row.docx_key, "xlsx": row.xlsx_key, "snapshot": row.snapshot_key}[kind]
    suffix = {"docx": ".docx", "xlsx": "（得分明细）.xlsx", "snapshot": "（数据快照）.json"}[kind]
    revision = f"（第{row.revision}版）" if row.revision > 1 else ""
    try:
        chunks = _blobs(ctx).read(key)
    except BlobNotFound:
        raise ApiError(
            404, "file_missing", "通报文件缺失", "the circular's file is missing from the store"
        ) from None
    except BlobStoreUnavailable:
        raise ApiError(
            503, "store_unavailable", "文件存储暂时不可用，请稍后重试", "the blob store is unavailable"
        ) from None
    return chunks, FILES[kind][1], f"{row.title}{revision}{suffix}"


def _blobs(ctx: ServiceContext) -> BlobStore:
    if ctx.blobs is None:
        raise ApiError(
            503, "store_unavailable", "未配置文件存储，无法处理通报文件", "no blob store is configured"
        )
    return ctx.blobs


def _quietly_delete(blobs: BlobStore, key: str) -> None:
    with contextlib.suppress(Exception):  # cleanup after a failure must not hide the failure
        blobs.delete(key)
