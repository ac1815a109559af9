"""Tasks that stop themselves: idle clusters, dead clients and a maximum lifetime.

A cluster whose client died without closing it must not run (and bill) forever. The
tasks enforce this themselves, with stock dask options only, since nothing else is
left to do it:

- The scheduler runs with ``--idle-timeout``. distributed's idle check counts only task
  activity (queued or processing tasks, transitions), not clients; so
  :data:`SCHEDULER_PRELOAD` also counts a connected client as activity. The scheduler
  therefore exits ``scheduler_timeout`` seconds after its last client left with no work
  running, and never under a live (if idle) client.
- The same preload closes the scheduler ``max_lifetime`` seconds after it started, work
  or not.
- Workers close as soon as their connection to the scheduler breaks (distributed's
  worker does), and ``--death-timeout`` bounds waiting for a scheduler that never
  answers. ``--lifetime`` is a backstop should a worker outlive its scheduler.

The preload is passed as the text of a script (``dask scheduler --preload '<code>'``),
so the image needs nothing but dask.
"""

from __future__ import annotations

from typing import Any

from dask.utils import parse_timedelta

from ..errors import ConfigurationError

#: Scheduler preload; ``{lifetime}`` is seconds or ``None``.
SCHEDULER_PRELOAD = """\
# starburst-dask: clients count as activity; close at the maximum lifetime.
import asyncio
from distributed.metrics import time
from tornado.ioloop import PeriodicCallback
LIFETIME = {lifetime!r}
def dask_setup(scheduler):
    def keep_alive_while_clients():
        if scheduler.idle_since and len(scheduler.clients) > 1:  # besides fire-and-forget
            scheduler.idle_since = time()
    scheduler.periodic_callbacks["starburst-clients"] = PeriodicCallback(
        keep_alive_while_clients, 1000)
    if LIFETIME:
        asyncio.get_running_loop().call_later(LIFETIME, lambda: asyncio.ensure_future(
            scheduler.close(reason="starburst-dask max-lifetime reached")))
"""


def max_lifetime_seconds(value: Any) -> float | None:
    """``starburst.max-lifetime`` in seconds (``"24h"``, ``3600``); ``None`` if unlimited.

    Raises
    ------
    ConfigurationError
        For a value that is not a positive duration.
    """
    if value in (None, "", 0, "0", False):
        return None
    try:
        seconds = parse_timedelta(value, default="seconds")
    except (ValueError, KeyError, TypeError):
        seconds = None
    if not seconds or seconds <= 0:
        raise ConfigurationError(
            f"max_lifetime must be a duration like '24h' or a number of seconds, not {value!r}"
        )
    return float(seconds)


def scheduler_args(options: Any) -> list[str]:
    """Extra ``dask scheduler`` arguments: the preload above."""
    lifetime = max_lifetime_seconds(getattr(options, "max_lifetime", None))
    return ["--preload", SCHEDULER_PRELOAD.format(lifetime=lifetime)]


def worker_args(options: Any) -> list[str]:
    """Extra ``dask worker`` arguments: ``--lifetime``, a backstop to the scheduler's."""
    lifetime = max_lifetime_seconds(getattr(options, "max_lifetime", None))
    return ["--lifetime", f"{lifetime:g}s"] if lifetime else []
