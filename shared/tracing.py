"""Optional OpenTelemetry tracing (off by default): HTTP request → outbox → bus → consumer as one trace.

On only when OTEL_EXPORTER_OTLP_ENDPOINT is set and the `otel` extra is installed (`pip install
'campaign-evidence[otel]'`); the SDK reads the other standard OTEL_* variables itself. The W3C trace context
travels inside the event envelope (`trace`), so it survives the outbox and the broker unchanged. Without
tracing every function here does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

log = logging.getLogger(__name__)
_tracer = None


def setup_tracing(service: str, *, endpoint: str | None, exporter: Any = None) -> bool:
    """Trace this process to the OTLP endpoint (or the given exporter); False when off or not installed."""
    global _tracer
    if not endpoint and exporter is None:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed: no tracing")
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _tracer = provider.get_tracer("campaign-evidence")
    log.info("tracing to %s", endpoint or type(exporter).__name__)
    return True


def stop_tracing() -> None:
    """Turn tracing off again (tests)."""
    global _tracer
    _tracer = None


def current_trace() -> dict[str, str] | None:
    """The current span's W3C trace context (traceparent) to carry in an event, or None."""
    if _tracer is None:
        return None
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier or None


@contextmanager
def span(
    name: str, *, parent: Mapping[str, str] | None = None, kind: str = "internal", **attributes: object
) -> Iterator[None]:
    """A span around a block, child of the given carried context (an event's or a request's headers)."""
    if _tracer is None:
        with nullcontext():
            yield
        return
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    context = extract(dict(parent)) if parent else None
    with _tracer.start_as_current_span(
        name,
        context=context,
        kind=getattr(SpanKind, kind.upper()),
        attributes={k: str(v) for k, v in attributes.items() if v is not None},
    ):
        yield
