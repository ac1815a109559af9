"""The scheduler and worker tasks as ``SpecCluster`` sees them: ``ProcessInterface`` objects.

Each receives the cluster's :class:`~.registry.TaskRegistry` in its spec options, and owns
its task's lifecycle through it, as distributed's ``ProcessInterface`` objects do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
from collections.abc import Awaitable, Callable
from typing import Any

import dask.config
from dask.utils import parse_timedelta
from distributed.comm import connect
from distributed.core import Status
from distributed.deploy.spec import ProcessInterface
from tornado.ioloop import IOLoop

from .. import fargate, futures
from ..ecs import quota, tasks, watcher
from ..errors import QuotaExceededError, SchedulerLostError, TaskFailedError
from . import lifetime
from .registry import TaskRegistry

logger = logging.getLogger(__name__)

#: Called, once its error is known, when the scheduler task stopped by itself.
LostHandler = Callable[[SchedulerLostError], Awaitable[None]]
#: Seconds one attempt to connect to a starting scheduler may take before the next.
CONNECT_ATTEMPT = 5.0


class FargateTask(ProcessInterface):
    """One ECS task of a cluster, seen by ``SpecCluster`` as a scheduler or worker.

    Parameters
    ----------
    registry : TaskRegistry
        The cluster's tasks: where this one is launched, watched and stopped.
    task_arn : str, optional
        The task, when it was launched already (workers are launched in batches).
    """

    role = "task"

    def __init__(
        self, *args: Any, registry: TaskRegistry, task_arn: str | None = None, **kwargs: Any
    ) -> None:
        self.registry = registry
        self.task_arn = task_arn
        super().__init__()

    async def close(self) -> None:
        """Stop the task (unless it is on its way to STOPPED already), without waiting
        for STOPPED: the cluster's close waits once for all its tasks."""
        if self.task_arn is not None and not self.registry.ending(self.task_arn):
            await self.registry.stop(
                [self.task_arn], f"{self.role} closed by its cluster", wait=False
            )
        await super().close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_arn}: status={self.status.name}>"


class FargateScheduler(FargateTask):
    """The scheduler task: launched once the quota has room, started (``start()``
    returns) as soon as RunTask answered: workers launch then, and find its address
    when they boot. :meth:`addressed` waits until ECS reports its address (while it is
    still PROVISIONING), :meth:`listening` until it accepts connections.

    ``lost`` says it stopped by itself (its idle timeout, its maximum lifetime, a crash):
    then there is nothing left to retire workers through or to terminate, and ``on_lost``
    (a spec option) hears why, as a :class:`~starburst_dask.errors.SchedulerLostError`.
    """

    role = "scheduler"
    lost = False

    def __init__(self, *args: Any, on_lost: LostHandler | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_lost = on_lost
        self._reporting: asyncio.Future[None] | None = None
        self._failing: asyncio.Future[None] | None = None
        self._seen_running: float | None = None  # when this process saw its task RUNNING

    async def start(self) -> None:
        """Launch the task: started once RunTask answered (workers launch then, and find
        its address themselves); :meth:`addressed` waits for its address."""
        self.registry.on_stopped[self.role] = self._stopped
        self.task_arn = await self._launch()
        await super().start()

    async def addressed(self) -> None:
        """Wait until ECS reports its addresses (while it is still PROVISIONING)."""
        assert self.task_arn is not None
        try:
            task = await self.registry.addressed(self.task_arn)
            private, public = await self._addresses(task)
        except TaskFailedError as e:
            raise await self._start_failed(e) from None
        # Workers, in the VPC, reach it at its private address; the client too when it is
        # in the VPC, else at its public address (SpecCluster connects to this one).
        scheme = tasks.scheme(self.registry.options)
        self.address = f"{scheme}://{private}:{tasks.SCHEDULER_PORT}"
        if public and not self.registry.options.inside_vpc:
            self.external_address = f"{scheme}://{public}:{tasks.SCHEDULER_PORT}"

    async def _addresses(self, task: dict[str, Any]) -> tuple[str, str | None]:
        """Its private and public IP addresses; the public one (from EC2) waited for
        while the client needs it and EC2 has not associated it yet."""
        o = self.registry.options
        deadline = asyncio.get_running_loop().time() + o.running_timeout
        private, public = await tasks.task_addresses(self.registry.aws.ec2, task)
        while public is None and self.registry.assigns_public_ip and not o.inside_vpc:
            if asyncio.get_running_loop().time() > deadline:
                raise TaskFailedError(
                    f"the scheduler task {tasks.task_id(task['taskArn'])} had no public IP "
                    f"address within {o.running_timeout:g} s"
                )
            await asyncio.sleep(watcher.BUSY_INTERVAL)
            private, public = await tasks.task_addresses(self.registry.aws.ec2, task)
        return private, public

    async def listening(self, connection_args: dict[str, Any]) -> None:
        """Wait until the scheduler accepts the client's connections (with
        ``connection_args``: TLS) at the address the client uses, within
        ``running_timeout``.

        Raises
        ------
        TaskFailedError
            Its task stopped first (ECS's reason and its last log lines), or it did not
            listen in time.
        """
        assert self.task_arn is not None
        address = self.external_address or self.address
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.registry.options.running_timeout
        # Once its task runs, the scheduler listens within seconds: past distributed's
        # connect timeout, this client cannot reach it (its network, or inside_vpc).
        reach = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")
        running = asyncio.ensure_future(self.registry.running(self.task_arn))
        try:
            while True:
                if running.done():
                    running.result()  # raises when the task stopped or did not run in time
                    deadline = min(deadline, self._running_since(loop) + reach)
                attempt = min(CONNECT_ATTEMPT, deadline - loop.time())
                with contextlib.suppress(OSError, asyncio.TimeoutError):
                    comm = await connect(address, timeout=max(attempt, 0.1), **connection_args)
                    await comm.close()
                    return
                if loop.time() > deadline:
                    raise TaskFailedError(self._unreachable(address, running.done(), reach))
                if running.done():
                    await asyncio.sleep(watcher.BUSY_INTERVAL)
                else:  # a pause, cut short by the task's news
                    await asyncio.wait([running], timeout=watcher.BUSY_INTERVAL)
        except TaskFailedError as e:
            raise await self._start_failed(e) from None
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, TaskFailedError):
                await running

    def _running_since(self, loop: asyncio.AbstractEventLoop) -> float:
        """When this process first saw the scheduler's task RUNNING (loop time)."""
        if self._seen_running is None:
            self._seen_running = loop.time()
        return self._seen_running

    def _unreachable(self, address: str, running: bool, reach: float) -> str:
        if not running:
            return (
                f"the scheduler did not accept connections at {address} within "
                f"{self.registry.options.running_timeout:g} s; raise running_timeout if its "
                "start is slow"
            )
        return (
            f"Timed out trying to connect to {address} after {reach:g} s: the scheduler's "
            "task runs, but this client cannot reach it; check that the security group "
            "admits this machine to port 8786, and use inside_vpc=True only from inside "
            "the tasks' VPC"
        )

    async def _start_failed(self, error: TaskFailedError) -> TaskFailedError:
        """``error`` with the scheduler task's last log lines, if it wrote any."""
        assert self.task_arn is not None
        try:
            lines = await tasks.last_log_lines(
                self.registry.aws.logs, self.registry.options.log_group, self.task_arn
            )
        except tasks.UNREACHABLE:
            lines = []
        if not lines:
            return error
        return TaskFailedError(
            f"{error}; the scheduler's last log lines:" + "".join(f"\n  {x}" for x in lines),
            arns=error.arns,
        )

    async def _launch(self) -> str:
        """Launch the scheduler task once the On-Demand quota has room for it."""
        o = self.registry.options
        command = tasks.scheduler_command(o) + lifetime.scheduler_args(o)
        vcpus = fargate.vcpus(o.scheduler_cpu)
        deadline = quota.Deadline(o.launch_retry_timeout)
        while True:
            status = await self.registry.quota_status("FARGATE")
            if quota.fits(status, vcpus):
                launch = await self.registry.launch(
                    1,
                    self.role,
                    command,
                    cpu=o.scheduler_cpu,
                    memory=o.scheduler_memory,
                    environment=tasks.scheduler_environment(o),
                )
                if launch.arns:
                    return launch.arns[0]
            if deadline.expired:
                raise QuotaExceededError(
                    quota.quota_error("FARGATE", vcpus, status, deadline.elapsed)
                )
            logger.warning("no room for the scheduler under the quota: %s", status)
            await self.registry.wait_for_room(min(o.quota_interval, deadline.remaining))

    def _stopped(self, task: dict[str, Any]) -> None:
        self.lost = True
        self.status = Status.closed
        self._reporting = asyncio.ensure_future(self._report_loss(task))

    async def _report_loss(self, task: dict[str, Any]) -> None:
        """Say why the scheduler stopped, with its last log lines, and tell ``on_lost``."""
        try:
            lines = await tasks.last_log_lines(
                self.registry.aws.logs, self.registry.options.log_group, task["taskArn"]
            )
        except Exception as e:  # noqa: BLE001 - the loss matters more than its log lines
            logger.debug("last log lines of the scheduler: %s", e)
            lines = []
        error = lost_error(task, lines)
        logger.error("%s", error)
        # This process's clients of it: their unfinished and new work fails with the reason.
        self._failing = asyncio.ensure_future(
            futures.keep_failing(
                self.external_address or self.address,
                IOLoop.current(),
                pickle.dumps(error),
                lambda: self._failing is not None,
            )
        )
        if self.on_lost is not None:
            await self.on_lost(error)

    async def close(self) -> None:
        """Stop the task (unless lost), any report of its loss still under way, and the
        failing of its clients' work."""
        for work in (self._reporting, self._failing):
            if work is not None and not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        self._failing = None
        await super().close()


def lost_error(task: dict[str, Any], log_lines: list[str]) -> SchedulerLostError:
    """The error for a scheduler task that stopped by itself, from its description."""
    reason = tasks.describe_stop(task)
    lines = "".join(f"\n  {line}" for line in log_lines)
    return SchedulerLostError(
        f"The cluster's scheduler is gone: {reason}."
        + (f" Its last log lines:{lines}" if lines else "")
        + "\nThe cluster failed: its workers were stopped and unfinished work is lost."
        " Close it and start a new cluster to run the work again.",
        task_id=tasks.task_id(task["taskArn"]),
        reason=reason,
    )


class FargateWorker(FargateTask):
    """A worker task, launched in a batch by the provisioner; ready when it is RUNNING."""

    role = "worker"

    def __init__(self, scheduler: str, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name

    async def start(self) -> None:
        assert self.task_arn is not None
        await self.registry.running(self.task_arn)
        await super().start()
