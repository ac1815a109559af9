"""The registry of one cluster's ECS tasks: launching, watching, stopping and usage.

Each task is recorded once, from its launch until ECS reports it STOPPED, with what the
quota and the cost need to know of it (a stopping task holds its vCPUs until STOPPED).
Whoever launched a role's tasks hears, at the first sign (``desiredStatus`` STOPPED or a
stopping ``lastStatus``), when one of them stops by itself (:attr:`TaskRegistry.on_stopped`);
stops asked for are not news, unless ECS stopped the task for another reason first.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Callable
from typing import Any

from .. import fargate
from ..aws.clients import AwsClients
from ..aws.preflight import check_image_route, preflight
from ..ecs import pacing, quota, tasks, watcher
from ..ecs.launcher import Launch, TaskLauncher
from ..ecs.usage import ProjectUsage
from ..ecs.watcher import TaskWatcher
from ..errors import TaskFailedError
from ..options import ClusterOptions
from .tls import ClusterTls

logger = logging.getLogger(__name__)

#: Called with the first description of a task stopping without being asked to.
StoppedHandler = Callable[[dict[str, Any]], None]


@dataclasses.dataclass
class TaskRecord:
    """One task the cluster launched: what its role, quota and bill depend on."""

    arn: str
    role: str
    capacity_provider: str
    vcpus: float
    #: When RunTask answered (it holds its vCPUs from about then: ``createdAt``).
    launched: datetime.datetime = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
    )
    #: The cluster asked ECS to stop it.
    stopping: bool = False
    #: ECS reported it stopping for a reason of its own, and its role's handler was told.
    noticed: bool = False

    @property
    def ending(self) -> bool:
        """Whether the task is on its way to STOPPED, as far as the cluster knows."""
        return self.stopping or self.noticed


class TaskRegistry:
    """Every ECS task of one cluster, from launch to STOPPED.

    Parameters
    ----------
    aws : AwsClients
        The cluster's open clients.
    options : ClusterOptions
        The cluster's options (name, timeouts, poll interval, tags).
    """

    def __init__(self, aws: AwsClients, options: ClusterOptions) -> None:
        self.aws = aws
        self.options = options
        #: Tasks launched and not yet seen STOPPED, by ARN.
        self.live: dict[str, TaskRecord] = {}
        #: Handlers, by role, for tasks that stop without being asked to (first sign).
        self.on_stopped: dict[str, StoppedHandler] = {}
        #: Set whenever one of our tasks stops: room under the quota may have appeared.
        self.room = asyncio.Event()
        #: The task definition tasks launch from, once opened.
        self.definition: str | None = None
        self._launcher: TaskLauncher | None = None
        self._watcher: TaskWatcher | None = None
        self._governor: quota.QuotaGovernor | None = None
        #: StopTask's rate ("cluster resource modify"), shared with the process's callers.
        self._modify = pacing.shared("cluster-resource-modify", options.region)
        #: Whether the tasks get public IP addresses (known once opened).
        self.assigns_public_ip = False
        #: What preflight found: from check() for open().
        self._found: dict[str, Any] | None = None

    async def check(self) -> None:
        """Open the clients and check the account (``preflight``), creating nothing: before
        the cluster's image is found or built."""
        await self.aws.open()
        self._found = await preflight(self.aws, self.options)

    async def open(self, tls: ClusterTls | None = None) -> None:
        """Once :meth:`check`-ed and the image known: check the tasks' network reaches it,
        and find or register the task definition, its container taking the user's secrets
        and those delivering ``tls``'s certificates: then tasks can be launched."""
        found, secrets = self._found, None
        assert found is not None, "check() first"
        check_image_route(found, self.options.image, self.options.region)
        if tls is not None:
            secrets = await tls.deliver(self.aws, found["execution_role_arn"])
        self.definition = definition = await tasks.ensure_task_definition(
            self.aws.ecs, self.options, found, secrets=secrets
        )
        self._launcher = TaskLauncher(
            self.aws.ecs,
            found["cluster_arn"],
            definition,
            subnets=found["subnets"],
            security_groups=found["security_groups"],
            assign_public_ip=found["assign_public_ip"],
            started_by=self.options.name,
            deadline=self.options.launch_retry_timeout,
        )
        self._watcher = TaskWatcher(
            self.aws.ecs,
            found["cluster_arn"],
            self.options.poll_interval,
            self._stopped,
            on_stopping=self._stopping,
            budget=pacing.shared("cluster-resource-read", self.options.region),
        )
        self.assigns_public_ip = found["assign_public_ip"]
        # The project's own usage, every cluster's, from ECS; the metric for the rest.
        project = ProjectUsage(self.aws.ecs, found["cluster_arn"], self._live_usage)
        self._governor = quota.QuotaGovernor(self.aws.quotas, self.aws.cloudwatch, project)

    @property
    def opened(self) -> bool:
        return self._watcher is not None

    async def launch(
        self,
        count: int,
        role: str,
        command: list[str],
        *,
        cpu: int,
        memory: int,
        provider: str = "FARGATE",
        retry_capacity: bool = True,
        environment: dict[str, str] | None = None,
    ) -> Launch:
        """Start ``count`` tasks of ``role``; every one that starts is recorded and watched.

        ``environment`` is added to the cluster's for these tasks."""
        assert self._launcher is not None, "registry not opened"
        try:
            launch = await self._launcher.run(
                count,
                command=command,
                cpu=cpu,
                memory=memory,
                environment={**self.options.environment, **(environment or {})},
                tags=tasks.task_tags(self.options, role),
                capacity_provider=provider,
                retry_capacity=retry_capacity,
            )
        except TaskFailedError as e:
            self._record(e.arns, role, cpu, provider)
            raise
        self._record(launch.arns, role, cpu, provider)
        return launch

    def _record(self, arns: list[str], role: str, cpu: int, provider: str) -> None:
        for arn in arns:
            self.live[arn] = TaskRecord(arn, role, provider, fargate.vcpus(cpu))
        assert self._watcher is not None
        self._watcher.watch(arns)

    def _live_usage(self) -> dict[str, tuple[str, float, datetime.datetime]]:
        """The live tasks' capacity providers, vCPUs and launch times, by ARN (for the
        governor)."""
        return {a: (r.capacity_provider, r.vcpus, r.launched) for a, r in self.live.items()}

    async def quota_status(self, provider: str) -> quota.QuotaStatus:
        """The quota of ``provider`` and the account's usage of it now, ours exactly."""
        assert self._governor is not None, "registry not opened"
        return await self._governor.status(provider)

    async def wait_for_room(self, timeout: float) -> None:
        """Wait until one of our tasks stops (room may have appeared), or ``timeout``."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.room.wait(), timeout)
        self.room.clear()

    async def addressed(self, arn: str) -> dict[str, Any]:
        """Wait until ECS reports ``arn``'s private IP address (before it runs; within
        ``running_timeout``); its description."""
        assert self._watcher is not None
        return await self._watcher.addressed(arn, self.options.running_timeout)

    async def running(self, arn: str) -> dict[str, Any]:
        """Wait until ``arn`` is RUNNING (within ``running_timeout``); its description."""
        assert self._watcher is not None
        return await self._watcher.running(arn, self.options.running_timeout)

    def descriptions(self) -> list[dict[str, Any]]:
        """The latest description of every task this cluster launched (for the bill)."""
        return list(self._watcher.tasks.values()) if self._watcher is not None else []

    def statuses(self, role: str) -> collections.Counter[str]:
        """How many live tasks of ``role``, not stopping, are in each ``lastStatus`` (as the
        watcher last saw them; ``PROVISIONING`` from launch until it does). Read-only."""
        seen = self._watcher.tasks if self._watcher is not None else {}
        return collections.Counter(
            seen.get(arn, {}).get("lastStatus", "PROVISIONING")
            for arn, record in self.live.items()
            if record.role == role and not record.ending
        )

    def ending(self, arn: str) -> bool:
        """Whether ``arn`` is stopped or on its way to STOPPED, as far as we know."""
        record = self.live.get(arn)
        return record is None or record.ending

    async def stop(self, arns: list[str], reason: str, *, wait: bool = True) -> None:
        """Stop live tasks and (``wait``) wait until ECS reports them STOPPED.

        One StopTask per task, ever: a task asked already, or that ECS reports stopping
        by itself, is only waited for. The calls
        go out at once, within AWS's rate ("cluster resource modify", shared). The wait is
        one, bounded once for them all, through the watcher, and not for tasks StopTask
        could not stop (warned about by :func:`~starburst_dask.ecs.tasks.stop_tasks`; a
        later ``stop`` asks again), nor while the endpoint does not answer: an outage
        makes ``close()`` say what it could not stop, not hang or raise.
        """
        arns = [a for a in arns if a in self.live]
        if not arns or self._watcher is None:
            return
        asked = [a for a in arns if not self.live[a].ending]
        for arn in asked:
            self.live[arn].stopping = True
        unstopped = await tasks.stop_tasks(
            self.aws.ecs, self._watcher.cluster_arn, asked, reason, self._modify
        )
        for arn in unstopped:
            if arn in self.live:
                self.live[arn].stopping = False
        self._watcher.stopping_asked([a for a in asked if a not in unstopped])
        if wait:
            await self._wait_stopped([a for a in arns if a in self.live and a not in unstopped])

    async def _wait_stopped(self, arns: list[str]) -> None:
        assert self._watcher is not None
        if not arns:
            return
        # SIGTERM's grace (our task definition's stopTimeout), then DEPROVISIONING (tens
        # of seconds), then a couple of polls.
        timeout = (
            fargate.STOP_TIMEOUT_MAX
            + fargate.DEPROVISIONING_TYPICAL_MAX
            + 2 * self.options.poll_interval
        )
        described = await self._watcher.all_stopped(arns, timeout)
        late = [tasks.task_id(a) for a, d in described.items() if d is None]
        if late:
            outage = self._watcher.outage
            logger.warning(
                "%d task(s) not reported STOPPED %s: %s",
                len(late),
                f"(DescribeTasks fails: {watcher.describe_error(outage.error)})"
                if outage is not None
                else f"within {timeout:g} s",
                ", ".join(late),
            )

    async def close(self, reason: str) -> None:
        """Stop every live task (again, those an outage kept from stopping), then stop
        watching."""
        await self.stop(list(self.live), reason)
        if self._watcher is not None:
            await self._watcher.close()

    def _stopping(self, task: dict[str, Any]) -> None:
        """A watched task shows the first sign of stopping: tell its role's handler, unless
        the cluster asked for the stop and ECS did not stop it for another reason first."""
        record = self.live.get(task["taskArn"])
        if record is None or record.noticed or record.role not in self.on_stopped:
            return
        if record.stopping and task.get("stopCode") in (None, "UserInitiated"):
            return
        record.noticed = True
        self.on_stopped[record.role](task)

    def _stopped(self, task: dict[str, Any]) -> None:
        """A watched task reached STOPPED: forget it; its vCPUs are free."""
        self.live.pop(task["taskArn"], None)
        self.room.set()
