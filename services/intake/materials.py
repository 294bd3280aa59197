"""Reference materials (参考资料): documents the office attaches to a campaign for every unit to download."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.intake import queries
from services.intake.definition import CODE_PATTERN
from services.intake.models import CampaignChange, ReferenceMaterial
from shared.blobs.port import BlobStoreUnavailable, Readable
from shared.events import new_id
from shared.http import ApiError, not_found
from shared.runtime import ServiceContext

MAX_MATERIAL_BYTES = 100 * 1024 * 1024
# Served as attachments with nosniff, so the type only tells the browser what to offer.
MEDIA_TYPES = {
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".ppt": "application/vnd.ms-powerpoint",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".mp4": "video/mp4",
}


class _TooLarge(Exception):
    pass


class _Limited:
    """Reads a stream, failing once more than limit bytes went through."""

    def __init__(self, stream: Readable, limit: int) -> None:
        self._stream, self._limit, self.size = stream, limit, 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.size += len(data)
        if self.size > self._limit:
            raise _TooLarge()
        return data


def attach_material(
    campaign_ref: str,
    code: str,
    stream: Readable,
    *,
    filename: str | None,
    title: str | None = None,
    description: str | None = None,
    actor: str | None = None,
    ctx: ServiceContext,
) -> tuple[ReferenceMaterial, str]:
    """Store a material's file under reference/<campaign>/<code>/; the same bytes again change nothing.

    Returns the material and "attached", "replaced" or "unchanged". The change is audited.
    """
    if not re.fullmatch(CODE_PATTERN, code):
        raise ApiError(
            422, "invalid_code", "资料代码格式不正确（字母、数字、._-，最长 64 位）", "invalid material code"
        )
    name = clean_filename(filename)
    extension = PurePosixPath(name).suffix.lower()
    if extension not in MEDIA_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"不支持的资料类型：{extension or '无扩展名'}（支持 {'、'.join(sorted(MEDIA_TYPES))}）",
            f"unsupported material type {extension or '(none)'}",
        )
    with ctx.db.session() as uow:
        campaign = queries.campaign_by_ref(uow, campaign_ref)
        if campaign is None:
            raise not_found("活动", "campaign", campaign_ref)
        current = _material(uow, campaign.id, code)
    if current is None and not title:
        raise ApiError(422, "title_required", "新资料需要标题（title）", "a new material needs a title")
    key = f"reference/{campaign.id}/{code}/{new_id()}{extension}"
    try:
        stored = ctx.blob_store.put(
            key, _Limited(stream, MAX_MATERIAL_BYTES), content_type=MEDIA_TYPES[extension]
        )
    except _TooLarge:
        ctx.blob_store.delete(key)
        raise ApiError(
            413,
            "too_large",
            f"资料超过大小上限（{MAX_MATERIAL_BYTES} 字节）",
            f"material exceeds {MAX_MATERIAL_BYTES} bytes",
        ) from None
    except BlobStoreUnavailable as exc:
        raise ApiError(
            503,
            "store_unavailable",
            "存储服务暂时不可用，请稍后重试",
            "object store unavailable, retry later",
        ) from exc
    if stored.size == 0:
        ctx.blob_store.delete(key)
        raise ApiError(400, "empty_file", "文件为空", "the file is empty")
    if (
        current is not None
        and current.sha256 == stored.sha256
        and current.filename == name
        and (title is None or title == current.title)
        and (description is None or description == current.description)
    ):
        ctx.blob_store.delete(key)
        return current, "unchanged"
    try:
        material, outcome, old_key = _record(
            campaign.id, campaign.version, code, key, name, extension, stored, title, description, actor, ctx
        )
    except BaseException:
        ctx.blob_store.delete(key)  # no object without its row
        raise
    if old_key and old_key != key:
        ctx.blob_store.delete(old_key)
    return material, outcome


def _record(
    campaign_id, version, code, key, name, extension, stored, title, description, actor, ctx: ServiceContext
):
    now = ctx.clock.now()
    try:
        with ctx.db.transaction() as uow:
            material = _material(uow, campaign_id, code, lock=True)
            outcome = "replaced" if material is not None and material.object_key else "attached"
            if material is None:
                material = ReferenceMaterial(
                    id=new_id(),
                    campaign_id=campaign_id,
                    code=code,
                    title=title,
                    description=description or "",
                    declared=False,
                )
                uow.add(material)
            old_key, previous_sha = material.object_key, material.sha256
            if title:
                material.title = title
            if description is not None:
                material.description = description
            material.filename, material.media_type = name, MEDIA_TYPES[extension]
            material.size, material.sha256, material.object_key, material.uploaded_at = (
                stored.size,
                stored.sha256,
                key,
                now,
            )
            uow.add(
                CampaignChange(
                    campaign_id=campaign_id,
                    version=version,
                    action=f"material_{outcome}",
                    actor=actor,
                    at=now,
                    summary={
                        "code": code,
                        "filename": name,
                        "size": stored.size,
                        "sha256": stored.sha256,
                        "previous_sha256": previous_sha,
                    },
                )
            )
    except IntegrityError:
        raise ApiError(
            409,
            "concurrent_change",
            "该资料正被同时上传，请重试",
            "the material is being uploaded concurrently; retry",
        ) from None
    return material, outcome, old_key


def list_materials(campaign_ref: str, *, ctx: ServiceContext) -> list[ReferenceMaterial]:
    """A campaign's materials by code (declared ones not yet uploaded included)."""
    with ctx.db.session() as uow:
        campaign = queries.campaign_by_ref(uow, campaign_ref)
        if campaign is None:
            raise not_found("活动", "campaign", campaign_ref)
        return list(
            uow.scalars(
                select(ReferenceMaterial)
                .where(ReferenceMaterial.campaign_id == campaign.id)
                .order_by(ReferenceMaterial.code)
            )
        )


def open_material(
    campaign_ref: str, code: str, *, ctx: ServiceContext
) -> tuple[ReferenceMaterial, Iterator[bytes]]:
    """A material's metadata and its bytes as a stream; 404 if not uploaded."""
    with ctx.db.session() as uow:
        campaign = queries.campaign_by_ref(uow, campaign_ref)
        material = _material(uow, campaign.id, code) if campaign else None
    if material is None or not material.object_key:
        raise not_found("参考资料", "reference material", code)
    return material, ctx.blob_store.read(material.object_key)


def clean_filename(filename: str | None) -> str:
    """A display-only filename: no path, no control characters, length-capped."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r"\s+", " ", name).strip().lstrip(".")
    return (name or "unnamed")[:200]


def _material(uow, campaign_id: str, code: str, *, lock: bool = False) -> ReferenceMaterial | None:
    query = select(ReferenceMaterial).where(
        ReferenceMaterial.campaign_id == campaign_id, ReferenceMaterial.code == code
    )
    return uow.scalar(query.with_for_update() if lock else query)
