"""Export of approved (locked) evidence as a ZIP streamed while it is made: unit/measure/file, with a CSV
manifest of SHA-256 per file. Entries are stored (photos and videos do not compress) and written with data
descriptors, so nothing is built whole in memory or on disk and memory stays at about one chunk."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select

from services.evidence_storage import audit
from services.evidence_storage.access import Caller, check_access
from services.evidence_storage.duplicates import duplicates_of
from services.evidence_storage.models import Evidence, KnownUnit
from services.evidence_storage.sniff import BY_MEDIA_TYPE
from shared.auth import visible
from shared.blobs.port import BlobNotFound
from shared.http import ApiError, not_found
from shared.runtime import ServiceContext

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = [
    "path",
    "sha256",
    "size",
    "verified",
    "evidence_id",
    "unit_id",
    "unit_code",
    "unit_name",
    "submission_id",
    "measure_code",
    "media_type",
    "original_filename",
    "captured_at",
    "outside_window",
    "duplicates",
]
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


@dataclass(frozen=True)
class _Entry:
    evidence: Evidence
    path: str
    unit: KnownUnit | None
    duplicates: str


def export_zip(
    *, caller: Caller, ctx: ServiceContext, unit_id: str | None = None, campaign_id: str | None = None
) -> tuple[str, Iterator[bytes]]:
    """(download name, ZIP chunks) of a unit's or a campaign's approved evidence; each file is audited."""
    with ctx.db.transaction() as uow:
        if unit_id:
            _ensure_unit_visible(uow, caller, unit_id)
        query = select(Evidence).where(
            Evidence.locked.is_(True), visible(caller.principal, Evidence.unit_path, Evidence.unit_id)
        )
        query = (
            query.where(Evidence.unit_id == unit_id)
            if unit_id
            else query.where(Evidence.campaign_id == campaign_id)
        )
        rows = list(uow.scalars(query.order_by(Evidence.unit_id, Evidence.measure_code, Evidence.created_at)))
        if not rows:
            raise ApiError(
                404,
                "nothing_to_export",
                "没有已审核通过（已锁定）的佐证资料可导出",
                "there is no approved (locked) evidence to export",
            )
        units = {
            unit.id: unit
            for unit in uow.scalars(select(KnownUnit).where(KnownUnit.id.in_({row.unit_id for row in rows})))
        }
        flags = duplicates_of(uow, [row.id for row in rows])
        scope = f"unit {unit_id}" if unit_id else f"campaign {campaign_id}"
        for row in rows:
            audit.record(uow, ctx, caller, "export", evidence=row, detail=scope)
    entries = [
        _Entry(
            row,
            _path(row, units.get(row.unit_id)),
            units.get(row.unit_id),
            " ".join(f"{flag.match}:{other}" for flag, other in flags[row.id]),
        )
        for row in rows
    ]
    name = f"evidence-{'unit-' + _folder_name(unit_id, units.get(unit_id)) if unit_id else 'campaign-' + str(campaign_id)}.zip"
    return name, _stream(ctx, entries)


def _ensure_unit_visible(uow, caller: Caller, unit_id: str) -> None:
    """404 unless the caller may see the unit (its path from unit.registered, else from its evidence)."""
    unit = uow.get(KnownUnit, unit_id)
    path = unit.unit_path if unit is not None else None
    if not path:
        path = uow.scalar(
            select(Evidence.unit_path).where(Evidence.unit_id == unit_id, Evidence.unit_path != "").limit(1)
        )
    check_access(caller, not_found("单位", "unit", unit_id), unit_path=path, unit_id=unit_id)


def _stream(ctx: ServiceContext, entries: list[_Entry]) -> Iterator[bytes]:
    sink = _Sink()
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(MANIFEST_COLUMNS)
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for entry in entries:
            evidence = entry.evidence
            info = zipfile.ZipInfo(entry.path, date_time=evidence.created_at.timetuple()[:6])
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = evidence.size  # lets zipfile choose ZIP64 up front for big videos
            digest = hashlib.sha256()
            try:
                chunks = ctx.blob_store.read(evidence.object_key)
            except BlobNotFound:
                writer.writerow(_manifest_row(entry, "", "missing"))
                continue
            with archive.open(info, "w") as out:
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    yield from sink.drain()
            verified = "ok" if digest.hexdigest() == evidence.sha256 else "MISMATCH " + digest.hexdigest()
            writer.writerow(_manifest_row(entry, entry.path, verified))
            yield from sink.drain()
        archive.writestr(MANIFEST, "\ufeff" + manifest.getvalue())  # BOM: spreadsheet programs read the UTF-8
    yield from sink.drain()


def _manifest_row(entry: _Entry, path: str, verified: str) -> list:
    evidence, unit = entry.evidence, entry.unit
    return [
        path,
        evidence.sha256,
        evidence.size,
        verified,
        evidence.id,
        evidence.unit_id,
        unit.code if unit else "",
        unit.name if unit else "",
        evidence.submission_id,
        evidence.measure_code or "",
        evidence.media_type,
        evidence.filename,
        evidence.captured_at or "",
        "" if evidence.outside_window is None else ("yes" if evidence.outside_window else "no"),
        entry.duplicates,
    ]


def _path(evidence: Evidence, unit: KnownUnit | None) -> str:
    """unit/measure/file; the file keeps its display name, made unique by the evidence id and given its true extension."""
    kind = BY_MEDIA_TYPE.get(evidence.media_type)
    extension = kind.extension if kind else ""
    stem = evidence.filename
    if extension and stem.lower().endswith(extension):
        stem = stem[: -len(extension)]
    stem = _safe(stem)[:120] or "file"
    return f"{_folder_name(evidence.unit_id, unit)}/{_safe(evidence.measure_code or 'other')}/{stem}_{evidence.id[:8]}{extension}"


def _folder_name(unit_id: str | None, unit: KnownUnit | None) -> str:
    return _safe(f"{unit.code}_{unit.name}" if unit else str(unit_id))


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part).strip(" .") or "_"


class _Sink:
    """A write-only file that hands what was written since the last drain() to the response."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        """Keep the bytes until drain()."""
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to close: the response ends with the last drain()."""

    def drain(self) -> Iterator[bytes]:
        """Everything written since the last call, as one chunk (none if nothing was)."""
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            yield data
