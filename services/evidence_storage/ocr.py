"""Reading the text in photos (and in a video's poster frame) in the evidence worker, with RapidOCR.

Upload acceptance adds an `evidence_text` row (`pending`) for every photo and video, in the same transaction
as the evidence; the worker claims one (compare-and-set to `reading`, so two workers never read the same one;
a claim older than OCR_CLAIM_TIMEOUT_S, whose worker died, is taken over), decodes and scales it to
OCR_MAX_SIDE_PX, reads it, matches the measure's keywords (textmatch.py) and records the text, the finding and
an `evidence.text_read` event in one transaction, only if its claim is still the one on the row. Nothing is
refused: a finding is a hint for the reviewer.

The engine is `rapidocr-onnxruntime` (the optional `ocr` extra; its Chinese PP-OCR models ship in the wheel),
loaded once per process on first use. Without it (or with OCR_ENABLED off) photos are recorded as
`unavailable` ("OCR 未安装", finding unread) and read once an engine is there.
"""

from __future__ import annotations

import io
import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps
from sqlalchemy import and_, or_, select, update

from services.evidence_storage import video
from services.evidence_storage.images import _enable_heif
from services.evidence_storage.inspection import ffmpeg_source
from services.evidence_storage.models import Evidence, EvidenceText, KnownCampaign
from services.evidence_storage.textmatch import UNREAD, Match, TextRules, judge
from shared.blobs.port import BlobStoreUnavailable
from shared.contracts import make_event
from shared.contracts.evidence import EvidenceTextRead, TextMatch
from shared.db import rows_affected
from shared.events import new_id
from shared.metrics import OCR_FINDINGS, OCR_SECONDS
from shared.runtime import ServiceContext

SERVICE = "evidence_storage"
MAX_ATTEMPTS = 3
NOT_INSTALLED = "OCR 未安装"
DISABLED = "OCR 已关闭（OCR_ENABLED=false）"
MIN_SCORE = 0.5  # recognition confidence below which a line is dropped
# Text detection runs on the photo scaled to this longest side (RapidOCR's default scales the *shortest* side up
# to 736, which makes a 4:3 photo 981x736 but a wide banner shot huge); recognition reads each found line from the
# OCR_MAX_SIDE_PX image. bench/ocr.py measured recall and time with it.
DETECT_MAX_SIDE = 960
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Line:
    """One recognised line of text, with the recogniser's confidence."""

    text: str
    score: float


class _Engine:
    """The process's one OCR engine, loaded on first use; None (with the reason) when it cannot be."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False
        self._engine: Any = None
        self.note = ""

    def get(self, threads: int) -> Any:
        """The engine, or None when rapidocr-onnxruntime is not installed (logged once)."""
        with self._lock:
            if not self._loaded:
                self._loaded = True
                try:
                    from rapidocr_onnxruntime import RapidOCR
                except ImportError as exc:
                    self.note = NOT_INSTALLED
                    log.warning(
                        "OCR not installed (pip install .[ocr]): photos are recorded as unread (%s)", exc
                    )
                    return None
                started = time.perf_counter()
                try:
                    self._engine = RapidOCR(
                        intra_op_num_threads=threads,
                        inter_op_num_threads=1,
                        det_limit_type="max",  # detection on the photo scaled down to DETECT_MAX_SIDE
                        det_limit_side_len=DETECT_MAX_SIDE,
                    )
                except Exception as exc:  # a broken install (models, ONNX Runtime): the same as none, said so
                    self.note = NOT_INSTALLED
                    log.error("OCR engine could not be loaded: photos are recorded as unread (%s)", exc)
                    return None
                log.info("OCR engine loaded in %.1f s (%d thread(s))", time.perf_counter() - started, threads)
            return self._engine


ENGINE = _Engine()


def state(ctx: ServiceContext) -> dict[str, Any]:
    """The OCR state for health and ops: whether photos are read, and if not, why (in Chinese)."""
    if not ctx.settings.ocr_enabled:
        return {"ok": True, "ocr": "disabled", "note": DISABLED}
    try:
        import importlib.util

        installed = importlib.util.find_spec("rapidocr_onnxruntime") is not None
    except (ImportError, ValueError):
        installed = False
    return {
        "ok": True,
        "ocr": "ready" if installed else "unavailable",
        "note": "" if installed else NOT_INSTALLED,
    }


def scaled(image: Image.Image, max_side: int) -> Image.Image:
    """The photo upright, in RGB, with its longest side at most max_side pixels."""
    image = ImageOps.exif_transpose(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    image.thumbnail((max_side, max_side))
    return image


def read_lines(image: Image.Image, *, threads: int = 1, max_side: int = 1600) -> list[Line] | None:
    """The text lines in a photo, top to bottom; None when no OCR engine is installed."""
    engine = ENGINE.get(threads)
    if engine is None:
        return None
    import numpy as np

    pixels = np.asarray(scaled(image, max_side))[:, :, ::-1].copy()  # RapidOCR takes OpenCV's BGR order
    result, _ = engine(pixels)
    return [
        Line(text=str(text), score=float(score)) for _, text, score in (result or []) if score >= MIN_SCORE
    ]


# ---------------------------------------------------------------- the worker's job


def read_pending(ctx: ServiceContext, *, limit: int = 8) -> int:
    """Read claimed photos one at a time, up to limit; returns how many got an outcome."""
    if not _available(ctx):
        return _mark_unavailable(ctx)
    done = 0
    for _ in range(limit):
        claimed = _claim(ctx)
        if claimed is None:
            break
        evidence, token = claimed
        if not _read(ctx, evidence, token):
            break  # the store is down: try again on the next round
        done += 1
    return done


_requeued: set[int] = set()  # the databases (by id) whose unavailable photos this process put back


def _available(ctx: ServiceContext) -> bool:
    """Whether this process can read; the first time it can, photos left unread for want of an engine go back."""
    if not ctx.settings.ocr_enabled or ENGINE.get(ctx.settings.ocr_threads) is None:
        return False
    if id(ctx.db) not in _requeued:
        with ctx.db.transaction() as uow:
            uow.execute(
                update(EvidenceText).where(EvidenceText.state == "unavailable").values(state="pending")
            )
        _requeued.add(id(ctx.db))
    return True


def _mark_unavailable(ctx: ServiceContext) -> int:
    """Record every pending photo as unread for want of an engine, with its event; returns how many."""
    note = NOT_INSTALLED if ctx.settings.ocr_enabled else DISABLED
    with ctx.db.session() as uow:
        ids = list(
            uow.scalars(select(EvidenceText.evidence_id).where(EvidenceText.state == "pending").limit(200))
        )
    for evidence_id in ids:
        with ctx.db.transaction() as uow:
            taken = uow.execute(
                update(EvidenceText)
                .where(EvidenceText.evidence_id == evidence_id, EvidenceText.state == "pending")
                .values(state="unavailable", finding=UNREAD, note=note, finished_at=ctx.clock.now())
            )
            evidence = uow.get(Evidence, evidence_id)
            if rows_affected(taken) == 1 and evidence is not None:
                _publish(ctx, uow, evidence, state="unavailable", finding=UNREAD, note=note)
                OCR_FINDINGS.labels(UNREAD).inc()
    return len(ids)


def _claimable(ctx: ServiceContext):
    abandoned = ctx.clock.now() - timedelta(seconds=ctx.settings.ocr_claim_timeout_s)
    return or_(
        EvidenceText.state == "pending",
        and_(EvidenceText.state == "reading", EvidenceText.started_at < abandoned),
    )


def _claim(ctx: ServiceContext):
    """Take the oldest pending (or abandoned) photo: (evidence, the claim's token), or None."""
    now = ctx.clock.now()
    token = new_id()
    claimable = _claimable(ctx)
    with ctx.db.session() as uow:
        candidates = list(
            uow.scalars(
                select(EvidenceText.evidence_id).where(claimable).order_by(EvidenceText.queued_at).limit(5)
            )
        )
    for evidence_id in candidates:
        with ctx.db.transaction() as uow:
            taken = uow.execute(
                update(EvidenceText)
                .where(EvidenceText.evidence_id == evidence_id, claimable)
                .values(state="reading", started_at=now, claim=token, attempts=EvidenceText.attempts + 1)
            )
            if rows_affected(taken) != 1:
                continue  # another worker was faster
            evidence = uow.get(Evidence, evidence_id)
            row = uow.get(EvidenceText, evidence_id)
            if evidence is not None and row is not None and row.attempts > MAX_ATTEMPTS:
                # its readers died each time (a photo that kills the process): give up on it
                log.error(
                    "OCR of %s abandoned after %d attempts that never finished", evidence_id, row.attempts
                )
                row.state, row.finding, row.finished_at = "failed", UNREAD, now
                row.note = "reading never finished"
                _publish(ctx, uow, evidence, state="failed", finding=UNREAD, note="无法读取图片中的文字")
                OCR_FINDINGS.labels(UNREAD).inc()
                continue
            if evidence is not None:
                uow.expunge(evidence)
                return evidence, token
    return None


def _image_of(ctx: ServiceContext, evidence: Evidence, work: Path) -> Image.Image | None:
    """The photo, or the video's poster frame at OCR size; None for a video without a frame (or without ffmpeg)."""
    if evidence.category == "photo":
        _enable_heif()
        data = io.BytesIO(b"".join(ctx.blob_store.read(evidence.object_key)))
        image = Image.open(data)
        image.draft("RGB", (ctx.settings.ocr_max_side_px, ctx.settings.ocr_max_side_px))
        image.load()
        return image
    ffmpeg = video.ffmpeg_exe()
    if ffmpeg is None:
        return None
    source = ffmpeg_source(ctx.blob_store, evidence.object_key, work, 600)
    width = min(ctx.settings.ocr_max_side_px, evidence.width or ctx.settings.ocr_max_side_px)
    frame = video.poster(ffmpeg, source, work / "poster.jpg", width=width - width % 2)
    return Image.open(io.BytesIO(frame)) if frame else None


def _read(ctx: ServiceContext, evidence: Evidence, token: str) -> bool:
    """Read one photo and record the outcome; False when the store was unavailable (the claim is given back)."""
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="ocr-") as work:
            image = _image_of(ctx, evidence, Path(work))
            lines = (
                []
                if image is None
                else read_lines(
                    image, threads=ctx.settings.ocr_threads, max_side=ctx.settings.ocr_max_side_px
                )
            )
    except BlobStoreUnavailable as exc:
        log.warning("OCR of %s postponed, store unavailable: %s", evidence.id, exc)
        _give_back(ctx, evidence.id, token)
        return False
    # A missing object, a broken photo or video, the engine itself: one photo must not stop the job.
    except Exception as exc:
        return _failed(ctx, evidence, token, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    OCR_SECONDS.observe(seconds)
    if lines is None:  # the engine went away (cannot happen once loaded): leave it to the unavailable path
        _give_back(ctx, evidence.id, token)
        return False
    with ctx.db.transaction() as uow:
        rules = _rules(uow, evidence)
        finding, matches = judge([line.text for line in lines], rules)
        text = "\n".join(line.text for line in lines)
        taken = uow.execute(
            update(EvidenceText)
            .where(
                EvidenceText.evidence_id == evidence.id,
                EvidenceText.state == "reading",
                EvidenceText.claim == token,
            )
            .values(
                state="read",
                finding=finding,
                text=text,
                matches=[m.__dict__ for m in matches],
                note=None if image is not None else "视频没有可读的画面",
                seconds=round(seconds, 3),
                finished_at=ctx.clock.now(),
            )
        )
        if rows_affected(taken) != 1:
            log.info(
                "OCR of %s finished after its claim was taken over; the other reading counts", evidence.id
            )
            return True
        _publish(
            ctx,
            uow,
            evidence,
            state="read",
            finding=finding,
            text=text,
            matches=matches,
            keywords=list(rules.keywords),
            lines=len(lines),
        )
    OCR_FINDINGS.labels(finding).inc()
    log.info("read %s in %.2f s: %d line(s), finding %s", evidence.id, seconds, len(lines), finding)
    return True


def _rules(uow, evidence: Evidence) -> TextRules:
    """The keyword rules of the evidence's measure, from the campaign as last published."""
    campaign = uow.get(KnownCampaign, evidence.campaign_id) if evidence.campaign_id else None
    rule = ((campaign.text_rules if campaign is not None else None) or {}).get(evidence.measure_code or "")
    if not rule:
        return TextRules()
    return TextRules(keywords=tuple(rule.get("keywords", [])), expected=bool(rule.get("expected")))


def rejudge(ctx: ServiceContext, uow, campaign_id: str, *, cause=None) -> int:
    """Judge the text already read in a campaign's photos against its new keyword rules; returns how many changed."""
    changed = 0
    rows = uow.execute(
        select(EvidenceText, Evidence)
        .join(Evidence, Evidence.id == EvidenceText.evidence_id)
        .where(Evidence.campaign_id == campaign_id, EvidenceText.state == "read")
    )
    for row, evidence in rows:
        rules = _rules(uow, evidence)
        finding, matches = judge((row.text or "").split("\n") if row.text else [], rules)
        found = [m.__dict__ for m in matches]
        if finding == row.finding and found == (row.matches or []):
            continue
        row.finding, row.matches = finding, found
        _publish(
            ctx,
            uow,
            evidence,
            state="read",
            finding=finding,
            text=row.text or "",
            matches=matches,
            keywords=list(rules.keywords),
            lines=len(row.text.split("\n")) if row.text else 0,
            cause=cause,
        )
        changed += 1
    return changed


def _give_back(ctx: ServiceContext, evidence_id: str, token: str) -> None:
    with ctx.db.transaction() as uow:
        uow.execute(
            update(EvidenceText)
            .where(
                EvidenceText.evidence_id == evidence_id,
                EvidenceText.state == "reading",
                EvidenceText.claim == token,
            )
            .values(state="pending", attempts=EvidenceText.attempts - 1)
        )


def _failed(ctx: ServiceContext, evidence: Evidence, token: str, reason: str) -> bool:
    """An operator log line; the photo is tried again, up to MAX_ATTEMPTS, then recorded as unread."""
    with ctx.db.transaction() as uow:
        row = uow.get(EvidenceText, evidence.id)
        if row is None or row.state != "reading" or row.claim != token:
            return True
        final = row.attempts >= MAX_ATTEMPTS
        log.error(
            "OCR of %s (%s) failed (attempt %d of %d): %s",
            evidence.id,
            evidence.object_key,
            row.attempts,
            MAX_ATTEMPTS,
            reason,
        )
        row.state = "failed" if final else "pending"
        row.note = reason[:300]
        if final:
            row.finding = UNREAD
            row.finished_at = ctx.clock.now()
            _publish(ctx, uow, evidence, state="failed", finding=UNREAD, note="无法读取图片中的文字")
            OCR_FINDINGS.labels(UNREAD).inc()
    return True


def _publish(
    ctx: ServiceContext,
    uow,
    evidence: Evidence,
    *,
    state: str,
    finding: str,
    text: str = "",
    matches: list[Match] | None = None,
    keywords: list[str] | None = None,
    note: str = "",
    lines: int = 0,
    cause=None,
) -> None:
    ctx.outbox.add(
        uow,
        make_event(
            EvidenceTextRead(
                evidence_id=evidence.id,
                submission_id=evidence.submission_id,
                unit_id=evidence.unit_id,
                measure_code=evidence.measure_code,
                state=state,
                finding=finding,
                text=text,
                matches=[TextMatch(keyword=m.keyword, found=m.found, exact=m.exact) for m in matches or []],
                keywords=keywords or [],
                note=note,
                read_at=ctx.clock.now(),
                lines=lines,
            ),
            producer=SERVICE,
            cause=cause,
        ),
    )
