"""The progress bar of a cluster's worker launches (tqdm: a terminal bar, a notebook widget).

Drawn while wanted workers are not connected yet: from the start of a cluster, and again
when ``scale`` or a replacement launches more; it closes, leaving its last line, once
every requested worker is connected or waits for quota. It counts the workers requested,
those waiting for the vCPU quota (the wave plan: they launch as room appears), their tasks
provisioning (ECS's PROVISIONING, PENDING, ACTIVATING) and running, and the workers
connected to the scheduler. It reads what the cluster knows already and calls no AWS API.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from .provisioner import WorkerProvisioner
    from .registry import TaskRegistry

#: How often the bar is redrawn, in seconds: it reads memory only.
INTERVAL = 0.25
#: The task statuses before RUNNING (Fargate's task lifecycle).
PROVISIONING = ("PROVISIONING", "PENDING", "ACTIVATING")
BAR_FORMAT = "{desc}: {n}/{total} connected |{bar}| [{elapsed}{postfix}]"


class _Bar(tqdm):
    """tqdm without its monitor thread (which would outlive the cluster)."""

    monitor_interval = 0


@dataclasses.dataclass(frozen=True)
class LaunchCounts:
    """The cluster's workers at one moment, as the progress bar shows them."""

    #: Workers wanted (``n_workers``, then ``scale``/``adapt``).
    requested: int
    #: Workers waiting for room under the vCPU quota.
    waiting: int = 0
    #: Worker tasks launched and not yet RUNNING.
    provisioning: int = 0
    #: Worker tasks RUNNING (connected or about to).
    running: int = 0
    #: Workers connected to the scheduler.
    connected: int = 0
    #: The scheduler task's status until it runs (``None`` then).
    scheduler: str | None = None
    #: The vCPU quota and the account's usage of it, when read.
    quota: float = math.inf
    usage: float = 0.0

    @property
    def settled(self) -> bool:
        """Every requested worker is connected or waits for quota."""
        return self.scheduler is None and self.connected + self.waiting >= self.requested

    def postfix(self) -> str:
        """The counts in words, as the bar shows them after itself."""
        parts = [] if self.scheduler is None else [f"scheduler {self.scheduler}"]
        parts += [
            f"requested {self.requested}",
            f"provisioning {self.provisioning}",
            f"running {self.running}",
            f"waiting for quota {self.waiting}",
        ]
        if not math.isinf(self.quota):
            parts.append(f"quota {self.quota:g} vCPU ({self.usage:g} in use)")
        return ", ".join(parts)


def current(
    registry: TaskRegistry, provisioner: WorkerProvisioner | None, requested: int, connected: int
) -> LaunchCounts:
    """The counts now: the workers' task statuses from the registry (as the watcher saw
    them), the plan from the provisioner (before it exists: ``requested``, the scheduler
    starting), ``connected`` from the scheduler's info."""
    workers = registry.statuses("worker")
    if provisioner is None or provisioner.scheduler_task is None:
        scheduler = next(iter(registry.statuses("scheduler")), "starting")
        return LaunchCounts(requested, connected=connected, scheduler=scheduler)
    quota = provisioner.quota
    return LaunchCounts(
        provisioner.requested,
        waiting=quota.waiting,
        provisioning=sum(workers[s] for s in PROVISIONING),
        running=workers["RUNNING"],
        connected=connected,
        quota=quota.quota,
        usage=quota.usage,
    )


def of_cluster(cluster: Any, show: bool | None) -> LaunchProgress:
    """The progress of a :class:`~.core.FargateCluster`'s launches."""
    return LaunchProgress(
        lambda: current(
            cluster.registry,
            cluster.provisioner,
            cluster.options.n_workers,
            len(cluster.scheduler_info["workers"]),
        ),
        cluster.options.name,
        show,
    )


class LaunchProgress:
    """Draws the launch progress bar while workers are on their way.

    Parameters
    ----------
    counts : callable
        Returns the :class:`LaunchCounts` now.
    name : str
        The cluster's name, the bar's label.
    show : bool or None
        ``None``: in a terminal or a notebook only (tqdm's choice); ``True``: always, to
        stderr; ``False``: never.
    """

    def __init__(
        self, counts: Callable[[], LaunchCounts], name: str, show: bool | None = None
    ) -> None:
        self.counts = counts
        self.name = name
        self.show = show
        self._bar: Any = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start redrawing, in the running event loop (idempotent)."""
        if self.show is not False and self._task is None:
            self._task = asyncio.ensure_future(self._redraw())

    async def _redraw(self) -> None:
        while True:
            self.update()
            await asyncio.sleep(INTERVAL)

    def update(self) -> None:
        """Draw the counts now: open a bar when workers are on their way, close it (its
        last line left) once they all connected or wait for quota."""
        counts = self.counts()
        if self._bar is None:
            if counts.settled:
                return
            self._bar = _Bar(
                total=counts.requested,
                initial=counts.connected,
                postfix=counts.postfix(),
                desc=self.name,
                bar_format=BAR_FORMAT,
                disable=None if self.show is None else not self.show,
                dynamic_ncols=True,
            )
        self._bar.total = max(counts.requested, counts.connected)
        self._bar.n = counts.connected
        self._bar.set_postfix_str(counts.postfix(), refresh=False)
        self._bar.refresh()
        if counts.settled:
            self._finish()

    def _finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    async def close(self) -> None:
        """Stop redrawing; a bar still drawn shows its last counts and closes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._bar is not None:
            with contextlib.suppress(Exception):  # the registry may be closed: keep the bar
                self.update()
            self._finish()
