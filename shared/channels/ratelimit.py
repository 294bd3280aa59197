"""A sliding-window limit per robot: at most N posts in any window of W seconds (DingTalk and WeCom: 20 a minute)."""

from __future__ import annotations

import threading
from collections import deque


class WindowLimit:
    """Counts the posts of each key in the last `window_s` seconds; times come from the caller (the clock port)."""

    def __init__(self, per_window: int, window_s: float = 60.0) -> None:
        if per_window <= 0 or window_s <= 0:
            raise ValueError("per_window and window_s must be positive")
        self.per_window, self.window_s = per_window, window_s
        self._sent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def try_take(self, key: str, now: float) -> bool:
        """Count a post for `key` at `now` if the window has room."""
        with self._lock:
            times = self._expire(key, now)
            if len(times) >= self.per_window:
                return False
            times.append(now)
            return True

    def wait_s(self, key: str, now: float) -> float:
        """Seconds until `key` may post again (0 when it may now)."""
        with self._lock:
            times = self._expire(key, now)
            if len(times) < self.per_window:
                return 0.0
            return max(0.0, times[0] + self.window_s - now)

    def saturate(self, key: str, now: float) -> None:
        """The platform said we post too fast: count the window full from now."""
        with self._lock:
            self._sent[key] = deque([now] * self.per_window)

    def _expire(self, key: str, now: float) -> deque[float]:
        times = self._sent.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times
