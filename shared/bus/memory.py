"""In-process bus: same semantics as RabbitMQ (retries, parking lot), for embedded mode and tests."""

from __future__ import annotations

import heapq
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.bus.port import Handler, ParkedMessage, Unprocessable, parked_message, topic_matches
from shared.events import Envelope
from shared.metrics import EVENTS_PARKED, EVENTS_RETRIED, event_type_of

log = logging.getLogger(__name__)


Settled = Callable[[bool], None]  # called with parked=True when some queue parked the event


class _Settlement:
    """Calls back once every queue an event was routed to has handled or parked it."""

    def __init__(self, pending: int, callback: Settled) -> None:
        self._pending, self._callback, self._lock, self._parked = pending, callback, threading.Lock(), False
        if pending == 0:
            callback(False)

    def settle(self, *, parked: bool = False) -> None:
        """One queue is done with the event."""
        with self._lock:
            self._pending -= 1
            self._parked |= parked
            done = self._pending == 0
        if done:
            try:
                self._callback(self._parked)
            except Exception:  # a settlement callback must not kill a delivery thread
                log.exception("settlement callback failed")


_Ready = tuple[float, int, int, bytes, "_Settlement | None"]  # (due, seq, attempt, body, settlement)


@dataclass
class _Queue:
    name: str
    patterns: tuple[str, ...]
    handler: Handler
    ready: list[_Ready] = field(default_factory=list)  # a heap
    parked: list[bytes] = field(default_factory=list)
    park_notes: dict[int, tuple[int, str | None]] = field(default_factory=dict)  # id(body) -> attempts, error
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

    settles_in_process = True  # publish() takes on_settled: the outbox relay marks rows only once handled

    def publish(self, event: Envelope, on_settled: Settled | None = None) -> None:
        """Route the event to every bound queue (copies, never shared objects).

        on_settled(parked) is called once every queue has handled (or parked) the event: the outbox relay of
        the embedded mode marks its row published only then, so a crash before that loses nothing.
        """
        body = event.to_json()
        with self._cond:
            targets = [
                q for q in self._queues.values() if any(topic_matches(p, event.type) for p in q.patterns)
            ]
            settlement = _Settlement(len(targets), on_settled) if on_settled else None
            for queue in targets:
                heapq.heappush(queue.ready, (0.0, next(self._seq), 0, body, settlement))
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

    def queue_state(self, consumer: str) -> dict[str, int]:
        """Waiting and parked messages of a consumer."""
        with self._cond:
            queue = self._queues.get(consumer)
            return {"ready": len(queue.ready) if queue else 0, "parked": len(queue.parked) if queue else 0}

    def parked_messages(self, consumer: str, limit: int = 100) -> list[ParkedMessage]:
        """The consumer's parked messages with attempts and error, oldest first."""
        with self._cond:
            queue = self._queues.get(consumer)
            return [] if queue is None else [self._describe(queue, body) for body in queue.parked[:limit]]

    def replay_parked(self, consumer: str, message_id: str | None = None) -> int:
        """Deliver parked messages (one, or all) again from attempt one."""
        with self._cond:
            queue = self._queues.get(consumer)
            if queue is None:
                return 0
            chosen = self._take_parked(queue, message_id)
            for body in chosen:
                heapq.heappush(queue.ready, (0.0, next(self._seq), 0, body, None))
            self._cond.notify_all()
        return len(chosen)

    def purge_parked(self, consumer: str, message_id: str | None = None) -> list[ParkedMessage]:
        """Drop parked messages (one, or all); returns them."""
        with self._cond:
            queue = self._queues.get(consumer)
            if queue is None:
                return []
            described = {id(body): self._describe(queue, body) for body in queue.parked}
            return [described[id(body)] for body in self._take_parked(queue, message_id)]

    def _describe(self, queue: _Queue, body: bytes) -> ParkedMessage:
        attempts, error = queue.park_notes.get(id(body), (0, None))
        return parked_message(body, message_id=None, attempts=attempts, error=error)

    def _take_parked(self, queue: _Queue, message_id: str | None) -> list[bytes]:
        chosen = [
            b for b in queue.parked if message_id is None or self._describe(queue, b).message_id == message_id
        ]
        queue.parked = [b for b in queue.parked if not any(b is c for c in chosen)]
        for body in chosen:
            queue.park_notes.pop(id(body), None)
        return chosen

    def health(self) -> dict[str, Any]:
        """Queue depths and parked counts."""
        with self._cond:
            return {
                "backend": "memory",
                "ok": True,
                "running": self._running,
                "queues": {
                    q.name: {"ready": len(q.ready), "parked": len(q.parked)} for q in self._queues.values()
                },
            }

    def _start_queue(self, queue: _Queue) -> None:
        if queue.thread is None or not queue.thread.is_alive():
            queue.thread = threading.Thread(
                target=self._deliver_loop, args=(queue,), name=f"bus-{queue.name}", daemon=True
            )
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
            _, _, attempt, body, settlement = item
            try:
                event = Envelope.from_json(body)
            except ValueError:
                self._park(queue, body, settlement, "received a body that is not an envelope")
                continue
            try:
                queue.handler(event)
            except Unprocessable:
                self._park(queue, body, settlement, f"cannot process {event.event_id} ({event.type})")
            except Exception:
                self._retry_or_park(queue, attempt, body, settlement)
            else:
                if settlement:
                    settlement.settle()

    def _retry_or_park(
        self, queue: _Queue, attempt: int, body: bytes, settlement: _Settlement | None
    ) -> None:
        if attempt >= len(self._delays):
            self._park(queue, body, settlement, f"failed {attempt + 1} times")
            return
        with self._cond:
            due = time.monotonic() + self._delays[attempt] / 1000.0
            heapq.heappush(queue.ready, (due, next(self._seq), attempt + 1, body, settlement))
            log.warning("handler %s failed (attempt %d); retrying", queue.name, attempt + 1, exc_info=True)
            EVENTS_RETRIED.labels(queue.name, event_type_of(body)).inc()
            self._cond.notify_all()

    def _park(self, queue: _Queue, body: bytes, settlement: _Settlement | None, why: str) -> None:
        with self._cond:
            queue.parked.append(body)
            error = sys.exc_info()[1]
            attempts = 1 + len(self._delays) if why.startswith("failed") else 1
            queue.park_notes[id(body)] = (
                attempts,
                f"{type(error).__name__}: {error}"[:500] if error else why,
            )
            log.error("handler %s %s; event parked", queue.name, why, exc_info=True)
            EVENTS_PARKED.labels(queue.name, event_type_of(body)).inc()
            self._cond.notify_all()
        if settlement:
            settlement.settle(parked=True)
