"""A token bucket: byte rates (upload and download caps per host), request rates (per host at its coordinator)."""
from __future__ import annotations

import threading
import time
from typing import Callable


class TokenBucket:
    """`rate` bytes per second with up to `burst` bytes saved up. rate <= 0 means unlimited."""

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self.clock, self.sleep = clock, sleep
        self.tokens = self.burst
        self.last = clock()
        self.lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def reserve(self, n: int) -> float:
        """Take n tokens (possibly into debt); returns how long the caller must wait first."""
        if self.rate <= 0:
            return 0.0
        with self.lock:
            self._refill()
            self.tokens -= n
            return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def allow(self, n: float = 1) -> float:
        """Take n tokens if the bucket holds them (0.0), else take none and return how long until it does."""
        if self.rate <= 0:
            return 0.0
        with self.lock:
            self._refill()
            if self.tokens >= n:
                self.tokens -= n
                return 0.0
            return (n - self.tokens) / self.rate

    def take(self, n: int) -> None:
        """Block until n bytes may pass. Large n is fine: it waits in proportion."""
        wait = self.reserve(n)
        if wait > 0:
            self.sleep(wait)
