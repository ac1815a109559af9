"""What a test leaves behind: threads, pending asyncio tasks, child processes.

A snapshot is taken before each test (after the longer-lived fixtures it uses have
started), and compared after it: whatever the test started must be gone, waited for with
a bounded poll, not a sleep. What fixtures of a wider scope own (a module's local Fargate,
its server threads, its processes) predates the snapshot and is not the test's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import socketserver
import sys
import threading
import time
import traceback
import weakref

import psutil

#: Threads of process-wide pools that start on first use and live until exit by design.
PROCESS_WIDE_THREADS = (
    "Dask-Offload",  # distributed.utils._offload_executor: one thread, module-level
)

#: Seconds a test's threads, tasks and processes get to end after it returns.
GRACE = 15.0

_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def track_event_loops() -> None:
    """Record every asyncio event loop created from now on (to find their pending tasks)."""
    base = asyncio.BaseEventLoop
    if getattr(base.__init__, "_tracks_loops", False):
        return
    original = base.__init__

    def init(self: asyncio.BaseEventLoop, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        _loops.add(self)

    init._tracks_loops = True  # type: ignore[attr-defined]
    base.__init__ = init  # type: ignore[method-assign]


@dataclasses.dataclass
class Snapshot:
    """What was running before a test."""

    threads: set[threading.Thread]
    loops: set[asyncio.AbstractEventLoop]
    children: set[int]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(set(threading.enumerate()), set(_loops), _children())

    def leaks(self, grace: float = GRACE) -> list[str]:
        """What the test left running, once ``grace`` seconds of waiting for it are over."""
        deadline = time.monotonic() + grace
        collected = False
        while True:
            found = self._threads() + self._tasks() + self._processes()
            if not found or time.monotonic() > deadline:
                return found
            if not collected:  # what the test dropped in a reference cycle (an exception's
                gc.collect()  # traceback holds frames) is finalized, as it would be soon
                collected = True
                continue
            time.sleep(0.05)  # polling interval of the bounded wait

    def _threads(self) -> list[str]:
        frames = sys._current_frames()
        found = []
        for thread in threading.enumerate():
            if (
                thread in self.threads
                or not thread.is_alive()
                or thread.name.startswith(PROCESS_WIDE_THREADS)
                or _serves_a_live_server(thread)
            ):
                continue
            frame = frames.get(thread.ident or 0)
            where = "".join(traceback.format_stack(frame, limit=4)) if frame else ""
            kind = "daemon thread" if thread.daemon else "thread"
            found.append(f"{kind} {thread.name!r} still alive, at:\n{where}")
        return found

    def _tasks(self) -> list[str]:
        found = []
        for loop in list(_loops):
            if loop in self.loops:
                continue
            for task in asyncio.all_tasks(loop):
                if not task.done():
                    closed = "a closed" if loop.is_closed() else "an open"
                    found.append(
                        f"asyncio task pending on {closed} loop the test created: {task!r}"
                    )
        return found

    def _processes(self) -> list[str]:
        found = []
        for pid in _children() - self.children:
            try:
                process = psutil.Process(pid)
                if process.status() == psutil.STATUS_ZOMBIE:
                    continue
                command = " ".join(process.cmdline())[:200]
            except psutil.NoSuchProcess:
                continue
            found.append(f"child process {pid} still running: {command}")
        return found


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _serves_a_live_server(thread: threading.Thread) -> bool:
    """Whether ``thread`` serves one connection of a socketserver still serving.

    A server's threads per connection (werkzeug's, under moto) live as long as the
    client keeps the connection open: a module's local Fargate and its module's clients
    outlive the test. A server the test started and left serving is reported by its own
    ``serve_forever`` thread instead.
    """
    target = getattr(thread, "_target", None)
    server = getattr(target, "__self__", None)
    if getattr(target, "__name__", "") != "process_request_thread" or not isinstance(
        server, socketserver.BaseServer
    ):
        return False
    return not server._BaseServer__is_shut_down.is_set()  # type: ignore[attr-defined]
