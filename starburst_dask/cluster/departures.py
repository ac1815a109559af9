"""Workers the scheduler removed while the cluster still wanted them.

The scheduler removes a worker whose connection closed or whose heartbeats stopped (its
``worker-ttl``: a hang). A nanny restarting its worker (``client.restart()``, a TTL
restart) also removes it, and the worker comes back under the same name: so a removal
counts only once :data:`REJOIN_GRACE` has passed without the name returning. Then the
provisioner hears that the worker is gone, with the scheduler's reason, and replaces it.
(ECS reporting the worker's task stopping may say so sooner: the provisioner takes the
first sign.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

#: Seconds a worker the scheduler removed may take to come back under its name (its
#: nanny restarting it: ``client.restart()``, a worker TTL restart) before it is gone.
REJOIN_GRACE = 10.0


class Departures:
    """Watches the scheduler's removals of wanted workers; reports those that stay away.

    Parameters
    ----------
    workers : callable
        The cluster's ``scheduler_info["workers"]`` now (address -> info): ``SpecCluster``
        replaces ``scheduler_info`` as it learns of the scheduler, so it is asked each time.
    wanted : callable
        Whether a worker name is still wanted (in the cluster's ``worker_spec``, and the
        cluster running).
    scheduler_events : callable
        Coroutine function returning the scheduler's events (``scheduler_comm.events``).
    gone : callable
        Called with the worker's name and why it left, once it is gone.
    """

    def __init__(
        self,
        workers: Callable[[], dict[str, Any]],
        wanted: Callable[[str], bool],
        scheduler_events: Callable[..., Any],
        gone: Callable[[str, str], None],
    ) -> None:
        self.workers = workers
        self.wanted = wanted
        self.scheduler_events = scheduler_events
        self.gone = gone
        self._pending: set[asyncio.Future[None]] = set()

    def removed(self, address: str) -> None:
        """The scheduler removed the worker at ``address`` (before ``SpecCluster`` forgets
        it): wait for the grace, then decide."""
        name = str(self.workers().get(address, {}).get("name", ""))
        if name and self.wanted(name):
            future = asyncio.ensure_future(self._decide(name, address))
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)

    async def _decide(self, name: str, address: str) -> None:
        await asyncio.sleep(REJOIN_GRACE)  # the grace a restarting nanny has to come back
        back = any(str(w.get("name")) == name for w in self.workers().values())
        if back or not self.wanted(name):
            return
        self.gone(name, await self._reason(address))

    async def _reason(self, address: str) -> str:
        """Why the scheduler removed it: its TTL (from the scheduler's events), or its
        connection."""
        with contextlib.suppress(Exception):  # the reason is a nicety: replace it anyway
            events = await asyncio.wait_for(self.scheduler_events(topic="scheduler"), 5)
            for _, event in events:
                if event.get("action") == "worker-ttl-timed-out" and address in event.get(
                    "workers", ()
                ):
                    return f"the scheduler removed it: no heartbeat for {event['ttl']:g} s"
        return "the scheduler removed it: its connection closed"

    def close(self) -> None:
        """Decide nothing more."""
        for pending in list(self._pending):
            pending.cancel()
