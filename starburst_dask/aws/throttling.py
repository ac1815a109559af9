"""Token buckets: how AWS limits API rates, used to pace our calls and, locally, to enforce."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """A bucket of ``burst`` tokens refilled at ``rate`` tokens a second.

    Thread-safe. :meth:`take` never blocks: it says how long to wait instead, so the
    same bucket serves a server that throttles and a client that paces itself.

    Parameters
    ----------
    burst : float
        Capacity, and the tokens available at first.
    rate : float
        Tokens added per second.
    clock : callable
        Seconds, monotonic (``time.monotonic``; tests inject their own).
    """

    def __init__(
        self, burst: float, rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.rate = rate
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def take(self, n: float = 1) -> float:
        """Take ``n`` tokens if there are enough and return 0; else take none and return
        the seconds until there will be."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= n:
                self._tokens -= n
                return 0.0
            return (n - self._tokens) / self.rate

    def give(self, n: float) -> None:
        """Return ``n`` tokens taken for a call that did not go ahead."""
        with self._lock:
            self._tokens = min(self.burst, self._tokens + n)
