"""A background loop: the thread behind the outbox relay and every periodic job."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Calls `step` on a daemon thread every interval seconds, at once when woken, and again at once while
    `step` returns True (more work is waiting)."""

    def __init__(self, name: str, interval_s: float, step: Callable[[], object]) -> None:
        self.name, self.interval_s, self._step = name, interval_s, step
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._step_started: float | None = None  # monotonic time the running step began, None between steps

    def wake(self) -> None:
        """Run the next step now instead of at the end of the interval."""
        self._wake.set()

    def start(self) -> None:
        """Start the thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current step and wait for the thread (at most 30 s)."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)

    def state(self, stall_s: float) -> dict[str, Any]:
        """Whether the thread runs and is not stuck in one step for longer than stall_s (for /livez)."""
        running = self._thread is not None and self._thread.is_alive()
        started = self._step_started
        busy_s = time.monotonic() - started if started is not None else 0.0
        return {"ok": running and busy_s <= stall_s, "running": running, "busy_s": round(busy_s, 1)}

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._step_started = time.monotonic()
            try:
                if self._step() is True:
                    continue
            except Exception:
                log.exception("%s failed", self.name)
            finally:
                self._step_started = None
            self._wake.wait(self.interval_s)
            self._wake.clear()
