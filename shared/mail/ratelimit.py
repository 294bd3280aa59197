"""A token bucket: at most N sends a minute to one mail server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Refills `per_minute` tokens a minute, holding at most `burst`; a send takes one token."""

    def __init__(
        self, per_minute: int, *, burst: int = 1, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute <= 0 or burst <= 0:
            raise ValueError("per_minute and burst must be positive")
        self._rate = per_minute / 60.0
        self._capacity = float(burst)
        self._tokens = float(burst)
        self._monotonic = monotonic
        self._last = monotonic()
        self._lock = threading.Lock()

    def try_take(self) -> bool:
        """Take a token if one is there."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def give_back(self) -> None:
        """Return a token that was taken but not used (nothing was sent)."""
        with self._lock:
            self._tokens = min(self._capacity, self._tokens + 1.0)

    def available_within(self, seconds: float) -> int:
        """How many tokens can be taken from now until `seconds` from now: those there and those that come."""
        with self._lock:
            self._refill()
            return int(self._tokens + seconds * self._rate)

    def wait_s(self) -> float:
        """Seconds until the next token is there (0 when one is)."""
        with self._lock:
            self._refill()
            return max(0.0, (1.0 - self._tokens) / self._rate)

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
