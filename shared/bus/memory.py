"""In-process bus: same semantics as RabbitMQ (retries, parking lot), for embedded mode and tests."""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from shared.bus.port import Handler, topic_matches
from shared.events import Envelope

log = logging.getLogger(__name__)


_Ready = tuple[float, int, int, bytes]  # (due, seq, attempt, body)


@dataclass
class _Queue:
    name: str
    patterns: tuple[str, ...]
    handler: Handler
    ready: list[_Ready] = field(default_factory=list)  # a heap
    parked: list[bytes] = field(default_factory=list)
    thread: threading.Thread | None = None


class InMemoryBus:
    """A bus inside one process: events are serialised as on the wire and delivered on threads."""

    def __init__(self, retry_delays_ms: Sequence[int] = (1000, 5000, 30000)) -> None:
        self._delays = tuple(retry_delays_ms)
        self._queues: dict[str, _Queue] = {}
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._running = False
        self._published = 0

    def publish(self, event: Envelope) -> None:
        """Route the event to every bound queue (copies, never shared objects)."""
        body = event.to_json()
        with self._cond:
            for queue in self._queues.values():
                if any(topic_matches(p, event.type) for p in queue.patterns):
                    heapq.heappush(queue.ready, (0.0, next(self._seq), 0, body))
            self._published += 1
            self._cond.notify_all()

    def subscribe(self, consumer: str, event_types: Sequence[str], handler: Handler) -> None:
        """Declare (or rebind) the consumer's queue."""
        with self._cond:
            existing = self._queues.get(consumer)
            if existing is not None:
                existing.patterns, existing.handler = tuple(event_types), handler
            else:
                self._queues[consumer] = _Queue(consumer, tuple(event_types), handler)
            if self._running:
                self._start_queue(self._queues[consumer])

    def start(self) -> None:
        """Start one delivery thread per queue."""
        with self._cond:
            self._running = True
            for queue in self._queues.values():
                self._start_queue(queue)

    def stop(self) -> None:
        """Stop the delivery threads after their current event."""
        with self._cond:
            self._running = False
            self._cond.notify_all()
            threads = [q.thread for q in self._queues.values() if q.thread]
        for thread in threads:
            thread.join(timeout=30)
        for queue in self._queues.values():
            queue.thread = None

    def parked(self, consumer: str) -> list[Envelope]:
        """Events parked for a consumer after exhausting retries."""
        with self._cond:
            queue = self._queues.get(consumer)
            return [Envelope.from_json(body) for body in (queue.parked if queue else [])]

    def health(self) -> dict[str, Any]:
        """Queue depths and parked counts."""
        with self._cond:
            return {
                "backend": "memory",
                "ok": True,
                "running": self._running,
                "queues": {q.name: {"ready": len(q.ready), "parked": len(q.parked)} for q in self._queues.values()},
            }

    def _start_queue(self, queue: _Queue) -> None:
        if queue.thread is None or not queue.thread.is_alive():
            queue.thread = threading.Thread(target=self._deliver_loop, args=(queue,), name=f"bus-{queue.name}", daemon=True)
            queue.thread.start()

    def _next(self, queue: _Queue) -> _Ready | None:
        with self._cond:
            while self._running:
                now = time.monotonic()
                if queue.ready and queue.ready[0][0] <= now:
                    return heapq.heappop(queue.ready)
                timeout = (queue.ready[0][0] - now) if queue.ready else None
                self._cond.wait(timeout=timeout if timeout is None else max(timeout, 0.001))
            return None

    def _deliver_loop(self, queue: _Queue) -> None:
        while True:
            item = self._next(queue)
            if item is None:
                return
            _, _, attempt, body = item
            try:
                queue.handler(Envelope.from_json(body))
            except Exception:
                self._retry_or_park(queue, attempt, body)

    def _retry_or_park(self, queue: _Queue, attempt: int, body: bytes) -> None:
        with self._cond:
            if attempt < len(self._delays):
                due = time.monotonic() + self._delays[attempt] / 1000.0
                heapq.heappush(queue.ready, (due, next(self._seq), attempt + 1, body))
                log.warning("handler %s failed (attempt %d); retrying", queue.name, attempt + 1, exc_info=True)
            else:
                queue.parked.append(body)
                log.error("handler %s failed %d times; event parked", queue.name, attempt + 1, exc_info=True)
            self._cond.notify_all()
