"""Prometheus metrics (prometheus-client): what every process counts, and `/metrics` for APIs and worker health servers.

Counters and histograms are updated where things happen (HTTP middleware, consumer, relay, jobs, uploads,
deliveries); backlogs and ages are read from the service's database when Prometheus scrapes. Every name
starts with `cep_`; deploy/prometheus/alerts.yml and deploy/grafana/ use them (tests/operations check that).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from shared.bus.port import MessageBus
    from shared.runtime import ServiceContext

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "cep_http_requests", "HTTP requests answered", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "cep_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENTS_CONSUMED = Counter("cep_events_consumed", "Events handled and committed", ["consumer", "type"])
EVENTS_DUPLICATE = Counter(
    "cep_events_duplicate", "Events acknowledged without effect (seen before)", ["consumer", "type"]
)
EVENTS_FAILED = Counter(
    "cep_events_failed", "Handler runs that raised (the bus retries or parks)", ["consumer", "type"]
)
EVENTS_RETRIED = Counter("cep_events_retried", "Events sent to a retry queue", ["consumer", "type"])
EVENTS_PARKED = Counter("cep_events_parked", "Events moved to the parking lot", ["consumer", "type"])
HANDLER_DURATION = Histogram(
    "cep_event_handler_duration_seconds",
    "Time to handle one event (all handlers, one commit)",
    ["consumer", "type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter("cep_events_published", "Outbox rows published to the bus", ["service"])
OUTBOX_WAKES = Counter(
    "cep_outbox_wakes",
    "Relay wake-ups over PostgreSQL NOTIFY: notified (API, at a commit), woken (worker), listen_failed",
    ["service", "outcome"],
)
DB_PINGS = Counter(
    "cep_db_pings",
    "Pooled PostgreSQL connections pinged before use (idle longer than DATABASE_PING_IDLE_S): alive, replaced",
    ["schema", "outcome"],
)
PUBLISH_FAILED = Counter("cep_outbox_publish_failed", "Outbox publish attempts that failed", ["service"])
UPLOADS = Counter("cep_uploads", "Evidence uploads finished, by outcome", ["outcome"])
UPLOAD_BYTES = Counter("cep_upload_bytes", "Bytes of finished evidence uploads, by outcome", ["outcome"])
UPLOAD_COMPLETIONS_TAKEN_OVER = Counter(
    "cep_upload_completions_taken_over",
    "Upload session completions taken over because the completing process stopped (its lease ran out)",
)
MAILS = Counter("cep_mails", "E-mail delivery attempts, by outcome", ["outcome"])
CHANNEL_POSTS = Counter(
    "cep_channel_posts", "Group-robot post attempts, by channel and outcome", ["channel", "outcome"]
)
MAIL_LEASES_EXPIRED = Counter(
    "cep_mail_leases_expired",
    "Deliveries put back in the queue because their worker's lease ran out (resends)",
)
EVENTS_UNPROCESSABLE = Counter(
    "cep_events_unprocessable",
    "Events of an unknown type or with a malformed payload, parked",
    ["consumer", "type"],
)
ORPHANS_SWEPT = Counter(
    "cep_orphans_swept", "Objects without a row removed, and unfinished multipart uploads aborted", ["kind"]
)
OCR_SECONDS = Histogram(
    "cep_ocr_seconds",
    "Time to read the text of one photo or video poster (decode, scale, OCR)",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
OCR_FINDINGS = Counter(
    "cep_ocr_findings",
    "Photos read, by finding (keywords_found, no_campaign_text, none, unread)",
    ["finding"],
)
JOB_RUNS = Counter("cep_job_runs", "Periodic job runs, by outcome", ["service", "job", "outcome"])
JOB_DURATION = Histogram(
    "cep_job_duration_seconds",
    "Time of one periodic job run",
    ["service", "job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)
_JOB_LAST_SUCCESS: dict[tuple[str, str], float] = {}


def event_type_of(body: bytes) -> str:
    """The type of an event on the wire, for labels ("unreadable" when the body is not an envelope)."""
    try:
        return str(json.loads(body)["type"])[:128]
    except (ValueError, KeyError, TypeError):
        return "unreadable"


def job_succeeded(service: str, job: str, at: float | None = None) -> None:
    """Record a periodic job's successful run (the last one's time is exported)."""
    _JOB_LAST_SUCCESS[(service, job)] = at or time.time()


class _JobCollector(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "cep_job_last_success_timestamp_seconds",
            "Unix time of the periodic job's last successful run",
            labels=["service", "job"],
        )
        for (service, job), at in sorted(_JOB_LAST_SUCCESS.items()):
            family.add_metric([service, job], at)
        yield family


Sample = tuple[str, str, tuple[str, ...], tuple[str, ...], float]  # name, help, label names, labels, value
Probe = Callable[["ServiceContext"], Iterable[Sample]]


def outbox_probe(ctx: ServiceContext) -> Iterable[Sample]:
    """The outbox backlog, the age of its oldest unpublished row and how many of those failed to publish."""
    from sqlalchemy import func, select

    t = ctx.messaging.outbox
    with ctx.db.session() as uow:
        count, oldest, errors = uow.execute(
            select(func.count(), func.min(t.c.created_at), func.count(t.c.last_error)).where(
                t.c.published_at.is_(None)
            )
        ).one()
    yield "cep_outbox_backlog", "Outbox rows not yet published", ("service",), (ctx.name,), count
    yield (
        "cep_outbox_oldest_unpublished_age_seconds",
        "Age of the oldest unpublished outbox row (0: none)",
        ("service",),
        (ctx.name,),
        age_s(oldest),
    )
    yield (
        "cep_outbox_errors",
        "Unpublished outbox rows whose last publish failed",
        ("service",),
        (ctx.name,),
        errors,
    )


class _ServicesCollector(Collector):
    """Backlogs read from each registered service's database when Prometheus scrapes."""

    def __init__(self) -> None:
        self.services: dict[str, tuple[ServiceContext, list[Probe]]] = {}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for ctx, probes in list(self.services.values()):
            for probe in probes:
                try:
                    samples = list(probe(ctx))
                except Exception as exc:  # a scrape must answer even when a database does not
                    log.warning("metrics: %s of %s failed: %s", probe.__name__, ctx.name, type(exc).__name__)
                    continue
                for name, doc, label_names, labels, value in samples:
                    family = families.setdefault(name, GaugeMetricFamily(name, doc, labels=list(label_names)))
                    family.add_metric(list(labels), value)
        yield from families.values()


def age_s(moment: datetime | None) -> float:
    """Seconds since a moment (naive = UTC), 0 for none."""
    if moment is None:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


_collectors: dict[str, Collector] = {}


def _collector(key: str, make: Callable[[], Collector]) -> Collector:
    if key not in _collectors:
        _collectors[key] = make()
        REGISTRY.register(_collectors[key])
    return _collectors[key]


def register_service(ctx: ServiceContext, *probes: Probe) -> None:
    """Export a service's database backlogs (outbox, plus its own probes); the latest context of a name wins."""
    _collector("jobs", _JobCollector)
    services = _collector("services", _ServicesCollector)
    assert isinstance(services, _ServicesCollector)
    known = services.services.get(ctx.name)
    extra = [p for p in (known[1] if known and known[0] is ctx else []) if p is not outbox_probe]
    services.services[ctx.name] = (ctx, [outbox_probe, *extra, *(p for p in probes if p not in extra)])


def register_bus(bus: MessageBus) -> None:
    """Export the bus's queue depths and parked counts (from its health report) as gauges."""
    collector = _collector("bus", _BusCollector)
    assert isinstance(collector, _BusCollector)
    collector.bus = bus


class _BusCollector(Collector):
    bus: MessageBus | None = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if self.bus is None:
            return
        try:
            report = self.bus.health()
        except Exception as exc:
            log.warning("metrics: bus health failed: %s", type(exc).__name__)
            return
        queues = report.get("queues") or {}
        ready = GaugeMetricFamily(
            "cep_queue_ready", "Messages waiting in a consumer's queue (consumer lag)", labels=["queue"]
        )
        parked = GaugeMetricFamily(
            "cep_parked_messages", "Messages in a consumer's parking lot", labels=["queue"]
        )
        for queue, state in sorted(queues.items()):
            if isinstance(state, dict):
                if "ready" in state:
                    ready.add_metric([queue], state["ready"])
                if "parked" in state:
                    parked.add_metric([queue], state["parked"])
        yield ready
        yield parked


def metrics_router(token: str | None = None) -> APIRouter:
    """GET /metrics in Prometheus' text format (with a token: only for `Authorization: Bearer <token>`)."""
    router = APIRouter()

    @router.get("/metrics", tags=["ops"], summary="Prometheus 指标 · metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        if token:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


def exposition() -> bytes:
    """What /metrics answers: this process's metrics; under API_WORKERS > 1 (PROMETHEUS_MULTIPROC_DIR set by the
    launcher) every worker process's counters and histograms summed, then the backlog gauges read now."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return generate_latest(REGISTRY)
    from prometheus_client import CollectorRegistry, multiprocess

    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]  # untyped upstream
    probes = CollectorRegistry()
    for collector in list(_collectors.values()):
        probes.register(collector)
    return generate_latest(merged) + generate_latest(probes)
