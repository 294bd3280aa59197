"""Loading a campaign definition: create the campaign, or publish a new version when its content changed.

Loading the same content again (whatever its layout, comments or format) changes nothing. A changed
definition becomes version N+1: the text is kept, the change is audited (campaign_changes), the unit
tree is brought in line (new units registered, changed ones updated, dropped ones retired), liaisons
named in the definition are designated, and campaign.published goes out, all in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.intake import queries, units
from services.intake.definition import (
    CampaignDefinition,
    DefinitionInvalid,
    UnitDef,
    canonical_json,
    definition_sha256,
    parse_definition,
    sniff_format,
)
from services.intake.models import Campaign, CampaignChange, CampaignVersion, ReferenceMaterial, Unit
from shared.contracts import make_event
from shared.contracts.intake import CampaignPublished, DeadlineInfo, MeasureInfo, ReferenceMaterialInfo
from shared.events import new_id
from shared.http import ApiError
from shared.runtime import ServiceContext

SERVICE = "intake"
_ATTEMPTS = 3


@dataclass
class LoadResult:
    """What a load did, for the API and the CLI."""

    campaign_id: str
    code: str
    name: str
    version: int
    outcome: str  # created, unchanged, new_version
    sha256: str
    units_created: int = 0
    units_updated: int = 0
    units_retired: int = 0
    liaisons_designated: int = 0

    @property
    def message(self) -> str:
        """What happened, in Chinese."""
        if self.outcome == "unchanged":
            return f"活动“{self.name}”（{self.code}）定义未变化，仍为第 {self.version} 版，未做任何改动"
        head = (
            f"已创建活动“{self.name}”（{self.code}），第 1 版"
            if self.outcome == "created"
            else f"活动“{self.name}”（{self.code}）已发布新版本：第 {self.version} 版"
        )
        return (
            f"{head}；新增单位 {self.units_created} 个，更新 {self.units_updated} 个，停用 {self.units_retired} 个；"
            f"登记联络员 {self.liaisons_designated} 名"
        )


class DefinitionRefused(ApiError):
    """422 for an invalid definition, listing every issue (field, line, message) in the body."""

    def __init__(self, error: DefinitionInvalid) -> None:
        issues = error.issues
        shown = "；".join(i.describe() for i in issues[:5]) + ("……" if len(issues) > 5 else "")
        shown_en = "; ".join(i.describe_en() for i in issues[:5]) + ("..." if len(issues) > 5 else "")
        super().__init__(
            422,
            "invalid_definition",
            f"活动定义有 {len(issues)} 处错误：{shown}",
            f"the campaign definition has {len(issues)} error(s): {shown_en}",
        )
        self.info["errors"] = [i.as_dict() for i in issues]
        self.issues = issues


def load_definition(
    text: str, *, ctx: ServiceContext, fmt: str | None = None, actor: str | None = None
) -> LoadResult:
    """Validate a definition and create the campaign or publish its new version (idempotent on content)."""
    try:
        definition = parse_definition(text, fmt=fmt)
    except DefinitionInvalid as exc:
        raise DefinitionRefused(exc) from None
    fmt = fmt or sniff_format(text)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            result = _load(definition, text, fmt, actor, ctx)
            break
        except IntegrityError:
            # Two loads raced (the same new campaign, or the same next version): the loser retries and
            # then sees the winner's version.
            if attempt == _ATTEMPTS:
                raise ApiError(
                    409,
                    "concurrent_change",
                    "活动定义正被同时修改，请重试",
                    "the campaign changed concurrently; retry",
                ) from None
    return result


def _load(
    definition: CampaignDefinition, text: str, fmt: str, actor: str | None, ctx: ServiceContext
) -> LoadResult:
    sha = definition_sha256(definition)
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        campaign = uow.scalar(select(Campaign).where(Campaign.code == definition.code).with_for_update())
        if campaign is not None and campaign.definition_sha256 == sha:
            return LoadResult(campaign.id, campaign.code, campaign.name, campaign.version, "unchanged", sha)
        previous = queries.current_definition(uow, campaign.id) if campaign else None
        if campaign is None:
            campaign = Campaign(id=new_id(), code=definition.code, version=1, created_at=now)
            uow.add(campaign)
        else:
            campaign.version += 1
        _describe(campaign, definition, sha, now)
        uow.flush()
        uow.add(
            CampaignVersion(
                campaign_id=campaign.id,
                version=campaign.version,
                sha256=sha,
                source_format=fmt,
                source_text=text,
                definition=canonical_json(definition),
                created_at=now,
                created_by=actor,
            )
        )
        uow.flush()
        ctx.outbox.add(uow, make_event(published_payload(campaign, definition), producer=SERVICE))
        result = LoadResult(
            campaign.id,
            campaign.code,
            campaign.name,
            campaign.version,
            "created" if previous is None else "new_version",
            sha,
        )
        _sync_units(uow, campaign, definition, previous, result, ctx)
        _sync_materials(uow, campaign, definition)
        uow.add(
            CampaignChange(
                campaign_id=campaign.id,
                version=campaign.version,
                action=result.outcome,
                actor=actor,
                summary=_summary(previous, definition, result),
                at=now,
            )
        )
    return result


def _describe(campaign: Campaign, d: CampaignDefinition, sha: str, now) -> None:
    campaign.name, campaign.organiser, campaign.timezone = d.name, d.organiser, d.timezone
    campaign.definition_sha256, campaign.updated_at = sha, now
    campaign.publicity_start, campaign.publicity_end = d.windows.publicity.start, d.windows.publicity.end
    inspection = d.windows.inspection
    campaign.inspection_start = inspection.start if inspection else None
    campaign.inspection_end = inspection.end if inspection else None


def published_payload(campaign: Campaign, d: CampaignDefinition) -> CampaignPublished:
    """The campaign.published payload of a campaign version."""
    return CampaignPublished(
        campaign_id=campaign.id,
        code=campaign.code,
        name=d.name,
        version=campaign.version,
        organiser=d.organiser,
        publicity_start=d.windows.publicity.start,
        publicity_end=d.windows.publicity.end,
        inspection_start=d.windows.inspection.start if d.windows.inspection else None,
        inspection_end=d.windows.inspection.end if d.windows.inspection else None,
        measures=[
            MeasureInfo(
                code=m.code,
                name=m.name,
                min_evidence=m.evidence.min_count,
                accepted_kinds=list(m.evidence.kinds),
                weight=m.weight,
                text_keywords=list(m.text.keywords) if m.text else [],
                expects_text=bool(m.text and m.text.expected and m.text.keywords),
            )
            for m in d.measures
        ],
        topics=[{"code": t.code, "name": t.name, "description": t.description} for t in d.topics],
        deadlines=[DeadlineInfo(code=x.code, name=x.name, due_at=x.due) for x in d.deadlines],
        definition_sha256=campaign.definition_sha256,
        reference_materials=[
            ReferenceMaterialInfo(code=m.code, title=m.title, url=material_path(campaign.id, m.code))
            for m in d.materials
        ],
        timezone=d.timezone,
        rubric=d.rubric.model_dump(mode="json") if d.rubric else None,
        supervision_rules=d.supervision.model_dump(mode="json"),
        circular_rules=d.circular.model_dump(mode="json"),
        channel_rules=d.channels.model_dump(mode="json"),
    )


def material_path(campaign_id: str, code: str) -> str:
    """Where a reference material downloads, under the gateway (PUBLIC_BASE_URL)."""
    return f"/intake/campaigns/{campaign_id}/materials/{code}/content"


def _sync_units(
    uow: Session,
    campaign: Campaign,
    d: CampaignDefinition,
    previous: CampaignDefinition | None,
    result: LoadResult,
    ctx: ServiceContext,
) -> None:
    existing = {u.code: u for u in uow.scalars(select(Unit).where(Unit.campaign_id == campaign.id))}
    before = {u.code: u for u in previous.units} if previous else {}
    ids = {
        u.code: existing[u.code].id if u.code in existing else units.unit_id_for(campaign.id, u.code)
        for u in d.units
    }
    now = ctx.clock.now()
    touched: set[str] = set()
    for spec in _parents_first(d.units):
        row = existing.get(spec.code)
        parent_id = ids[spec.parent] if spec.parent else None
        if row is None:
            row = Unit(
                id=ids[spec.code],
                campaign_id=campaign.id,
                code=spec.code,
                name=spec.name,
                level=spec.level,
                parent_id=parent_id,
                unit_path="",
                participates=spec.participates,
                active=True,
                source="definition",
                liaison_late=False,
                created_at=now,
                updated_at=now,
            )
            uow.add(row)
            existing[spec.code] = row
            result.units_created += 1
            touched.add(row.id)
        elif (row.name, row.level, row.parent_id, row.participates, row.active, row.source) != (
            spec.name,
            spec.level,
            parent_id,
            spec.participates,
            True,
            "definition",
        ):
            row.name, row.level, row.parent_id, row.participates = (
                spec.name,
                spec.level,
                parent_id,
                spec.participates,
            )
            row.active, row.source, row.updated_at = True, "definition", now
            result.units_updated += 1
            touched.add(row.id)
    for code, row in existing.items():
        if row.source == "definition" and row.active and code not in ids:
            row.active, row.updated_at = False, now
            result.units_retired += 1
    uow.flush()
    touched.update(u.id for u in units.repath_campaign(uow, campaign.id))
    uow.flush()
    # Thousands of event inserts follow: without autoflush each would re-scan every unit in the session.
    with uow.no_autoflush:
        for row in sorted((r for r in existing.values() if r.id in touched), key=lambda r: r.unit_path):
            ctx.outbox.add(uow, make_event(units.registered_payload(row), producer=SERVICE))
        for spec in d.units:
            if spec.liaison and _liaison_changed(spec, before.get(spec.code), existing[spec.code]):
                liaison = spec.liaison
                units.designate(
                    uow,
                    existing[spec.code],
                    liaison.name,
                    str(liaison.email),
                    liaison.phone,
                    at=liaison.designated_at or now,
                    source="definition",
                    ctx=ctx,
                    definition=d,
                )
                result.liaisons_designated += 1


def _parents_first(specs: list[UnitDef]) -> list[UnitDef]:
    by_code = {u.code: u for u in specs}

    def depth(unit: UnitDef) -> int:
        return 0 if unit.parent is None else 1 + depth(by_code[unit.parent])

    return sorted(specs, key=depth)


def _liaison_changed(spec: UnitDef, before: UnitDef | None, row: Unit) -> bool:
    # Only a liaison the definition itself changed is designated: one a unit later named through the
    # API is not overwritten by reloading an unchanged entry.
    if spec.liaison is None or (before is not None and before.liaison == spec.liaison):
        return False
    current = (row.liaison_name, row.liaison_email, row.liaison_phone)
    return current != (spec.liaison.name, str(spec.liaison.email), spec.liaison.phone)


def _sync_materials(uow: Session, campaign: Campaign, d: CampaignDefinition) -> None:
    rows = {
        m.code: m
        for m in uow.scalars(select(ReferenceMaterial).where(ReferenceMaterial.campaign_id == campaign.id))
    }
    declared = {m.code for m in d.materials}
    for spec in d.materials:
        row = rows.get(spec.code)
        if row is None:
            uow.add(
                ReferenceMaterial(
                    id=new_id(),
                    campaign_id=campaign.id,
                    code=spec.code,
                    title=spec.title,
                    description=spec.description,
                    declared=True,
                )
            )
        else:
            row.title, row.description, row.declared = spec.title, spec.description, True
    for code, row in rows.items():
        if code not in declared:
            row.declared = False


def _summary(previous: CampaignDefinition | None, d: CampaignDefinition, result: LoadResult) -> dict:
    summary = {
        "sha256": result.sha256,
        "units_created": result.units_created,
        "units_updated": result.units_updated,
        "units_retired": result.units_retired,
        "liaisons_designated": result.liaisons_designated,
    }
    if previous is None:
        return summary
    old, new = previous.model_dump(mode="json"), d.model_dump(mode="json")
    summary["previous_sha256"] = definition_sha256(previous)
    summary["changed_sections"] = sorted(key for key in new if old.get(key) != new.get(key))
    for section in ("measures", "topics", "deadlines", "units", "materials"):
        before = {item["code"]: item for item in old.get(section, [])}
        after = {item["code"]: item for item in new.get(section, [])}
        delta = {
            "added": sorted(set(after) - set(before)),
            "removed": sorted(set(before) - set(after)),
            "changed": sorted(code for code in set(after) & set(before) if after[code] != before[code]),
        }
        if any(delta.values()):
            summary[section] = delta
    return summary
