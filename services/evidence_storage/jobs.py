"""The evidence worker's periodic jobs: store-level retention for locked evidence, expiry of upload sessions, the
orphan sweep, web-playable copies of videos, reading the text in photos (OCR)."""

from __future__ import annotations

from services.evidence_storage.integrity import run_queued
from services.evidence_storage.ocr import read_pending
from services.evidence_storage.renditions import make_renditions
from services.evidence_storage.retention import APPLY_RETENTION, apply_retention
from services.evidence_storage.sweeper import sweep
from services.evidence_storage.uploads import expire_sessions
from shared.runtime import PeriodicJob, ServiceContext


def jobs(ctx: ServiceContext) -> list[PeriodicJob]:
    """The jobs a worker of this service runs: retention also right after a commit that locked evidence."""
    return [
        # Woken by handlers.track_decision's commit when it locked something, not by every approval: most approvals
        # (a report without files) lock nothing, and a query for pending rows per approval was a quarter of this
        # worker's CPU in bench/pipeline.py.
        PeriodicJob(APPLY_RETENTION, 30.0, lambda: apply_retention(ctx), wake_on_events=False),
        PeriodicJob("evidence-upload-sessions", 300.0, lambda: expire_sessions(ctx), wake_on_events=False),
        # the worker consumes no event for an upload: it looks for videos awaiting a web-playable copy every few seconds
        PeriodicJob(
            "evidence-renditions",
            ctx.settings.evidence_rendition_poll_s,
            lambda: make_renditions(ctx),
            wake_on_events=False,
        ),
        *(
            [
                PeriodicJob(
                    "evidence-orphan-sweep",
                    ctx.settings.evidence_sweep_interval_s,
                    lambda: sweep(ctx),
                    wake_on_events=False,
                )
            ]
            if ctx.settings.evidence_sweep_interval_s > 0
            else []
        ),
        # photos and video posters awaiting OCR (their rows are written with the evidence)
        PeriodicJob("evidence-ocr", ctx.settings.ocr_poll_s, lambda: read_pending(ctx), wake_on_events=False),
        PeriodicJob(
            "evidence-integrity-checks",
            ctx.settings.evidence_integrity_poll_s,
            lambda: run_queued(ctx),
            wake_on_events=False,
        ),
    ]
