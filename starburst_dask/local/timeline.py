"""The clock of the local Fargate's task lifecycles: what happens to a task after a delay.

A Fargate task's phases take time (``latency.py``): its ENI is created and attached while
it is PROVISIONING, its image pulled while PENDING, its ENI released while
DEPROVISIONING. One thread runs each task's next step when its delay is over, so that no
request or process thread waits.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

Step = Callable[[], None]
logger = logging.getLogger(__name__)


class Timeline:
    """Runs each scheduled step once its delay is over, in one thread.

    When the timeline closes (the local Fargate stopping), every step still due runs at
    once, or its ``cancel`` instead when it has one (a task that was still starting
    never starts); a step scheduled after that runs at once likewise.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[float, int, Step, Step | None]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="task-timeline", daemon=True)
        self._thread.start()

    def schedule(self, delay: float, step: Step, cancel: Step | None = None) -> None:
        """Call ``step`` in ``delay`` seconds (or ``cancel``, if given, should the
        timeline close first)."""
        with self._changed:
            if not self._closed:
                due = time.monotonic() + delay
                heapq.heappush(self._pending, (due, next(self._order), step, cancel))
                self._changed.notify()
                return
        (cancel or step)()

    def close(self) -> None:
        """Run every step still due now (or its ``cancel``), and end the thread."""
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
                closed = self._closed
                if closed:
                    due = sorted(self._pending)
                    self._pending.clear()
                else:
                    due = [heapq.heappop(self._pending)]
            for _, _, step, cancel in due:
                try:
                    (cancel or step)() if closed else step()
                except Exception:  # this thread must live: every task's next step is here
                    logger.exception("a task's lifecycle step failed")
            if closed:
                return
