"""DEPROVISIONING: the time a Fargate task spends between its container's exit and STOPPED.

After a task's essential container exits (whatever the cause), AWS reports it
DEPROVISIONING while it detaches and deletes the task's ENI, for tens of seconds, and
only then STOPPED. One thread of the local Fargate ends each task's deprovisioning after a
delay drawn from a settable range (see ``docs/local-fargate.md``).
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable

#: Seconds between a container's exit and STOPPED, by default. AWS takes tens of seconds;
#: the default is short so that tests, which wait for STOPPED at every close, are not
#: slowed, while a poller still sees the state. Tests of the delay set AWS's range.
DEFAULT_DELAYS = (0.1, 0.3)


class Deprovisioner:
    """Runs each task's release (its ENI deleted, STOPPED) after a drawn delay.

    Parameters
    ----------
    delays : (float, float)
        The range, in seconds, each task's delay is drawn from (uniformly).
    """

    def __init__(self, delays: tuple[float, float] = DEFAULT_DELAYS) -> None:
        self.delays = delays
        self._pending: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="deprovisioner", daemon=True)
        self._thread.start()

    @property
    def delays(self) -> tuple[float, float]:
        return self._delays

    @delays.setter
    def delays(self, delays: tuple[float, float]) -> None:
        low, high = delays
        if not 0 <= low <= high:
            raise ValueError(f"deprovisioning delays must be 0 <= low <= high, not {delays}")
        self._delays = (float(low), float(high))

    def schedule(self, release: Callable[[], None]) -> None:
        """Call ``release`` once this task's deprovisioning is over (at once when closed)."""
        with self._changed:
            if self._closed:
                release()
                return
            due = time.monotonic() + random.uniform(*self._delays)
            heapq.heappush(self._pending, (due, next(self._order), release))
            self._changed.notify()

    def close(self) -> None:
        """Release every task still deprovisioning now, and end the thread."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._closed and (
                    not self._pending or self._pending[0][0] > time.monotonic()
                ):
                    timeout = self._pending[0][0] - time.monotonic() if self._pending else None
                    self._changed.wait(timeout)
                if self._closed:
                    due = list(self._pending)
                    self._pending.clear()
                else:
                    due = [heapq.heappop(self._pending)]
            for _, _, release in sorted(due):
                release()
            if self._closed:
                return
