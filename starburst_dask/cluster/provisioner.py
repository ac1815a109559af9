"""The worker provisioner: how many workers are wanted, and launching them as quota allows.

It keeps the requested count, launches what the vCPU quota (and the cost limit) allows in
batches, lets the rest wait and launches them as room appears, files quota increases,
falls back from Spot to On-Demand, and replaces workers that stop by themselves. What it
launches it writes into the cluster's ``worker_spec``, plain data that ``SpecCluster``
then reconciles.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import fargate
from ..ecs import quota, tasks, watcher
from ..errors import ConfigurationError, QuotaExceededError, TaskFailedError
from ..format import format_usd
from ..options import ClusterOptions
from . import lifetime
from .registry import TaskRegistry
from .replacement import ReplacementPolicy

logger = logging.getLogger(__name__)

#: What a replacement's launch raises when AWS does not answer (an outage), among others.
_RETRIED: tuple[type[BaseException], ...] = (TaskFailedError, *tasks.UNREACHABLE)


class Capacity(enum.Enum):
    """Capacity providers for workers, in order of preference (the ``spot`` option)."""

    ON_DEMAND = ("FARGATE",)
    SPOT = ("FARGATE_SPOT",)
    SPOT_THEN_ON_DEMAND = ("FARGATE_SPOT", "FARGATE")

    @classmethod
    def for_spot(cls, spot: bool | str) -> Capacity:
        """The order for the ``spot`` option: ``False``, ``True`` or ``"fallback"``."""
        return {False: cls.ON_DEMAND, True: cls.SPOT, "fallback": cls.SPOT_THEN_ON_DEMAND}[spot]


class WorkerProvisioner:
    """Launches the workers a cluster wants, as the quota allows.

    Parameters
    ----------
    options : ClusterOptions
        The cluster's options (worker size, spot, deadlines, quota auto-request).
    registry : TaskRegistry
        Where workers are launched and tracked.
    worker_spec : dict
        The cluster's ``worker_spec``: launched workers are added, stopped ones removed.
    worker : dict
        The spec (``cls`` and ``options``) of one worker, completed with its task ARN.
    correct_state : callable
        Coroutine function reconciling the cluster with ``worker_spec``.
    affordable : callable
        How many of ``n`` more workers the cost limit allows.
    on_demand_premium : callable
        US dollars per hour one worker costs more On-Demand than on Spot.
    log : callable
        Writes one line to the cluster's log, for the user.
    """

    def __init__(
        self,
        options: ClusterOptions,
        registry: TaskRegistry,
        *,
        worker_spec: dict[str, Any],
        worker: dict[str, Any],
        correct_state: Callable[[], Awaitable[None]],
        affordable: Callable[[int], int],
        on_demand_premium: Callable[[], float],
        log: Callable[[str], None],
    ) -> None:
        self.options = options
        self.registry = registry
        self.worker_spec = worker_spec
        self.worker = worker
        self.correct_state = correct_state
        self.affordable = affordable
        self.on_demand_premium = on_demand_premium
        self.log = log
        self._fallback_said = False  # the move from Spot to On-Demand is said once
        #: Workers wanted: ``scale``, ``adapt`` and replacement change it.
        self.requested = options.n_workers
        self.capacity = Capacity.for_spot(options.spot)
        #: The workers' vCPU quota as last seen, with running and waiting workers.
        self.quota = quota.QuotaStatus(self.capacity.value[0])
        #: Relaunching workers that stop: back off after failures, give up after many.
        self.replacement = ReplacementPolicy()
        #: Names of workers that left by themselves (and were replaced).
        self.departed: set[str] = set()
        self._work: set[asyncio.Future[None]] = set()  # stops and replacements under way
        #: The scheduler's task, once launched: workers find its address themselves.
        self.scheduler_task: str | None = None
        self._closed = False
        self._started = False  # wait_for_first has returned: give-ups are logged, not raised
        self._lock = asyncio.Lock()
        self._waiter: asyncio.Task | None = None
        self._request: asyncio.Task | None = None  # auto-request files at most one
        registry.on_stopped["worker"] = self._worker_stopped

    @property
    def active(self) -> bool:
        """Whether to launch workers: not closed, and the scheduler task is live."""
        return not self._closed and any(r.role == "scheduler" for r in self.registry.live.values())

    @property
    def providers(self) -> tuple[str, ...]:
        return self.capacity.value

    @property
    def quota_needed(self) -> int:
        """vCPUs the quota would need for every requested worker to run."""
        return math.ceil(
            self.quota.usage + self.quota.waiting * fargate.vcpus(self.options.worker_cpu)
        )

    async def fits(self, cpu: int, provider: str) -> int:
        """How many tasks of ``cpu`` units fit under ``provider``'s quota now."""
        status = await self.registry.quota_status(provider)
        if provider == self.quota.capacity_provider:
            self.quota.quota, self.quota.usage = status.quota, status.usage
        return quota.fits(status, fargate.vcpus(cpu))

    async def launch(self) -> None:
        """Launch what is requested and the quota allows, in batches; the rest wait."""
        async with self._lock:
            missing = self.affordable(self.requested - len(self.worker_spec))
            if missing <= 0 or not self.active or self.scheduler_task is None:
                self._set_waiting(0)
                return
            launched: list[str] = []
            for provider in self.providers:  # Spot first, if asked for
                fit = min(
                    missing - len(launched), await self.fits(self.options.worker_cpu, provider)
                )
                if fit:
                    launched += await self._launch_on(provider, fit)
            self._set_waiting(missing - len(launched), launching=len(launched))
            self._say_fallback()
        # Shielded: a replacement cancelled by close() must not cancel SpecCluster's
        # reconcile midway (it would leave a started worker object it never closes).
        await asyncio.shield(self.correct_state())

    def _say_fallback(self) -> None:
        """Once workers run On-Demand under ``spot="fallback"``, say so, and what it costs."""
        on_demand = self.quota.providers.get("FARGATE", 0)
        if self._fallback_said or not on_demand or self.capacity is Capacity.ON_DEMAND:
            return
        self._fallback_said = True
        premium = self.on_demand_premium()
        self.log(
            f"Fargate Spot had no room: {on_demand} of {len(self.worker_spec)} workers now "
            f"run On-Demand, at {format_usd(premium * on_demand)}/hour more than on Spot "
            f"({format_usd(premium)}/hour each); replacements try Spot first"
        )

    async def _launch_on(self, provider: str, count: int) -> list[str]:
        """Launch ``count`` workers on ``provider``; Spot missing from the ECS cluster
        switches to On-Demand for good."""
        o = self.options
        assert self.scheduler_task is not None
        command = tasks.worker_command(o) + lifetime.worker_args(o)
        last = provider == self.providers[-1]
        try:
            launch = await self.registry.launch(
                count,
                "worker",
                command,
                cpu=o.worker_cpu,
                memory=o.worker_memory,
                provider=provider,
                retry_capacity=last,
                environment=tasks.worker_environment(self.scheduler_task),
            )
        except TaskFailedError as e:
            self._add(e.arns)
            if last or fargate.PROVIDER_NOT_ON_CLUSTER not in str(e):
                raise
            self.log(
                f"ECS cluster {o.ecs_cluster!r} has no {provider} capacity provider; "
                f"workers run on {self.providers[-1]} instead"
            )
            self.capacity = Capacity.ON_DEMAND
            self.quota.capacity_provider = self.providers[0]
            return []
        self._add(launch.arns)
        return launch.arns

    def _add(self, arns: list[str]) -> None:
        for arn in arns:
            options = {**self.worker["options"], "task_arn": arn}
            self.worker_spec[tasks.task_id(arn)] = {"cls": self.worker["cls"], "options": options}

    def _count_running(self) -> None:
        """Record the cluster's workers, by capacity provider."""
        live = (self.registry.live.get(w["options"]["task_arn"]) for w in self.worker_spec.values())
        providers = collections.Counter(r.capacity_provider for r in live if r is not None)
        self.quota.running, self.quota.providers = len(self.worker_spec), dict(providers)

    def _set_waiting(self, waiting: int, launching: int = 0) -> None:
        """Record the workers waiting for quota; say the plan when it changes."""
        changed = waiting != self.quota.waiting
        self.quota.waiting = waiting
        self._count_running()
        if not waiting:
            return
        if changed:
            vcpus = fargate.vcpus(self.options.worker_cpu)
            self.log(
                f"Requested {self.requested} workers ({self.requested * vcpus:g} vCPU); the "
                f"{self.quota.quota:g} vCPU Fargate quota ({self.quota.usage:g} in use) allows "
                f"{len(self.worker_spec)} now; launching {launching}, {waiting} waiting for quota"
            )
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.ensure_future(self._wait_for_quota())
            if self.options.quota_auto_request and self._request is None:
                self._request = asyncio.ensure_future(self.request_quota_increase())

    async def _wait_for_quota(self) -> None:
        """Launch waiting workers as room appears: our tasks stop, others' usage drops, or
        the quota is raised. Gives up when no worker at all could run by the deadline."""
        deadline = quota.Deadline(self.options.launch_retry_timeout)
        while self.quota.waiting and self.active:
            await self.registry.wait_for_room(min(self.options.quota_interval, deadline.remaining))
            before = len(self.worker_spec)
            try:
                await self.launch()
            except TaskFailedError as e:
                logger.error("launching workers: %s", e)
            if len(self.worker_spec) > before:
                deadline = quota.Deadline(self.options.launch_retry_timeout)
            elif not self.worker_spec and deadline.expired:
                self.requested = 0
                self._set_waiting(0)
                error = QuotaExceededError(
                    quota.quota_error(
                        self.quota.capacity_provider,
                        fargate.vcpus(self.options.worker_cpu),
                        self.quota,
                        deadline.elapsed,
                    )
                )
                if not self._started:
                    raise error  # FargateCluster() raises it
                logger.error("giving up on waiting workers: %s", error)

    async def wait_for_first(self) -> None:
        """While not one requested worker could launch, wait for room, within the deadline.

        Raises
        ------
        QuotaExceededError
            No worker fits under the quota by the deadline.
        """
        try:
            while self.requested and not self.worker_spec and self._waiter is not None:
                await asyncio.wait([self._waiter], timeout=watcher.BUSY_INTERVAL)
                if self._waiter.done():
                    self._waiter.result()
                    break
        finally:
            self._started = True

    async def request_quota_increase(self) -> dict[str, Any] | None:
        """File the quota increase that would let every requested worker run.

        Returns the request (its ``DesiredValue`` and ``Status``), or ``None`` when
        Service Quotas refused it (the reason is logged).
        """
        provider = self.quota.capacity_provider
        try:
            await self.fits(self.options.worker_cpu, provider)  # usage now, not at launch
            request = await quota.request_increase(
                self.registry.aws.quotas, provider, self.quota_needed
            )
        except (ClientError, BotoCoreError, ConfigurationError) as e:
            logger.warning("could not request a quota increase: %s", e)
            return None
        self.log(
            f"Requested a Fargate vCPU quota of {request['DesiredValue']:g}: "
            f"{request['Status']}; waiting workers launch once it is approved"
        )
        return request

    def _worker_stopped(self, task: dict[str, Any]) -> None:
        """ECS reports a worker's task stopping by itself: the worker is gone (unless it
        left already, when ECS's reason is said once more: why its task ended)."""
        name = tasks.task_id(task["taskArn"])
        reason = tasks.describe_stop(task)
        if name in self.worker_spec:
            self._gone(name, task["taskArn"], reason, stop=False)
        elif name in self.departed:
            self.log(f"Worker {name} (gone already): {reason}")

    def worker_gone(self, name: str, reason: str) -> None:
        """The scheduler removed worker ``name`` and it did not come back: stop its task
        if it still runs, and replace it."""
        arn = self.worker_spec.get(name, {}).get("options", {}).get("task_arn")
        if arn is not None:
            self._gone(name, arn, reason, stop=True)

    def _gone(self, name: str, arn: str, reason: str, *, stop: bool) -> None:
        """Drop a gone worker from the spec, say why, stop its task, and replace it."""
        del self.worker_spec[name]
        self._count_running()
        self.departed.add(name)
        self.log(f"Worker {name} left: {reason}")
        if stop:
            self._background(self.registry.stop([arn], f"worker gone: {reason}", wait=False))
        if self.active:
            self._background(self._replace(name, arn, reason))

    def _background(self, work: Awaitable[None]) -> None:
        future = asyncio.ensure_future(work)
        self._work.add(future)
        future.add_done_callback(self._work.discard)

    async def _replace(self, name: str, arn: str, reason: str) -> None:
        """Relaunch a worker that left by itself, unless workers keep failing."""
        joined = name in self.replacement.joined
        if not joined:
            try:
                lines = await tasks.last_log_lines(
                    self.registry.aws.logs, self.options.log_group, arn
                )
            except tasks.UNREACHABLE:
                lines = []
            if lines:
                reason += "; its last log lines:\n  " + "\n  ".join(lines)
        self.replacement.stopped(joined, reason, wanted=self.requested)
        if self.replacement.exhausted:
            self.requested = len(self.worker_spec)
            self._set_waiting(0)
            logger.error(self.replacement.error())
            return
        delay = self.replacement.delay
        self.log(
            f"Launching a replacement for worker {name}"
            + (f" in {delay:g} s ({self.replacement.failures} failed in a row)" if delay else "")
        )
        await asyncio.sleep(delay)  # backoff before the next try
        await self._launch_until_answered()

    async def _launch_until_answered(self) -> None:
        """``launch()``, retried with capped back-off while AWS does not answer (an
        outage: RunTask's connection errors come as a ``TaskFailedError`` caused by one),
        as long as workers are wanted; said once."""
        backoff, said = self.options.poll_interval, False
        while self.active:
            try:
                await self.launch()
                return
            except _RETRIED as e:
                unanswered = isinstance(e, tasks.UNREACHABLE) or isinstance(
                    e.__cause__, tasks.UNREACHABLE
                )
                if not unanswered:
                    logger.info("replacement worker: %s", e)  # its stop comes back as news
                    return
                if not said:
                    logger.warning("launching a replacement worker: %s; retrying", e)
                    said = True
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, fargate.RETRY_BACKOFF_MAX)

    def scale(self, n: int) -> None:
        """Want ``n`` workers; asking again after replacing gave up tries again."""
        self.requested = n
        if self.replacement.exhausted:
            self.replacement.failures = 0

    async def stop_workers(self, reason: str) -> None:
        """Launch nothing more, and stop every worker task now."""
        await self.close()
        workers = [arn for arn, task in self.registry.live.items() if task.role == "worker"]
        await self.registry.stop(workers, reason)

    async def close(self) -> None:
        """Launch nothing more; stop waiting for quota, and replacing workers."""
        self._closed, self.requested = True, 0
        for waiting in (self._waiter, self._request, *self._work):
            if waiting is not None:
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await waiting
