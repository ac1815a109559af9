"""One DescribeTasks poller for all of a cluster's tasks.

Watching is shared (up to ``fargate.DESCRIBE_TASKS_MAX`` ids a call), so API calls grow
with polls, not with workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from .. import fargate
from ..errors import TaskFailedError
from .tasks import describe_stop, task_id

logger = logging.getLogger(__name__)


class TaskWatcher:
    """One poller for all of a cluster's tasks.

    Every ``interval`` seconds, while any task is watched, it describes them all in
    DescribeTasks calls of up to 100 ids, and wakes whoever waits on a task.

    Parameters
    ----------
    ecs
        An aiobotocore ECS client.
    cluster_arn : str
        The ECS cluster the tasks run in.
    interval : float
        Seconds between polls.
    on_stopped : callable, optional
        Called with the description of each watched task that reaches STOPPED.
    """

    def __init__(
        self,
        ecs: Any,
        cluster_arn: str,
        interval: float,
        on_stopped: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.ecs = ecs
        self.cluster_arn = cluster_arn
        self.interval = interval
        self.on_stopped = on_stopped
        #: Latest description of each watched task, by ARN.
        self.tasks: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Condition()
        self._poller: asyncio.Task | None = None

    def watch(self, arns: Iterable[str]) -> None:
        """Start watching ``arns`` (and the poller, if it is not running)."""
        for arn in arns:
            self.tasks.setdefault(arn, {"taskArn": arn, "lastStatus": "PROVISIONING"})
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())

    async def close(self) -> None:
        """Stop polling."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def running(self, arn: str, timeout: float) -> dict[str, Any]:
        """Wait until ``arn`` is RUNNING and return its description.

        Raises
        ------
        TaskFailedError
            If it stopped first (with its ``stopCode`` and ``stoppedReason``), or
            ``timeout`` passed.
        """
        task = await self._wait(arn, lambda t: t["lastStatus"] in ("RUNNING", "STOPPED"), timeout)
        if task is None:
            raise TaskFailedError(
                f"task {task_id(arn)} did not reach RUNNING within {timeout:g} s "
                f"(last status {self.tasks[arn]['lastStatus']}); raise running_timeout if "
                "image pulls are slow"
            )
        if task["lastStatus"] == "STOPPED":
            raise TaskFailedError(describe_stop(task))
        return task

    async def stopped(self, arn: str, timeout: float) -> dict[str, Any] | None:
        """Wait until ``arn`` is STOPPED; its description, or ``None`` after ``timeout``."""
        return await self._wait(arn, lambda t: t["lastStatus"] == "STOPPED", timeout)

    async def _wait(
        self, arn: str, done: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        self.watch([arn])
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: done(self.tasks[arn])), timeout
                )
        task = self.tasks[arn]
        return task if done(task) else None

    async def _poll(self) -> None:
        while any(t["lastStatus"] != "STOPPED" for t in self.tasks.values()):
            await asyncio.sleep(self.interval)
            live = [a for a, t in self.tasks.items() if t["lastStatus"] != "STOPPED"]
            for i in range(0, len(live), fargate.DESCRIBE_TASKS_MAX):
                chunk = live[i : i + fargate.DESCRIBE_TASKS_MAX]
                try:
                    response = await self.ecs.describe_tasks(cluster=self.cluster_arn, tasks=chunk)
                except ClientError as e:
                    logger.warning("DescribeTasks failed, retrying next poll: %s", e)
                    continue
                await self._update(response["tasks"])

    async def _update(self, described: list[dict[str, Any]]) -> None:
        async with self._changed:
            for task in described:
                stopped_now = (
                    task["lastStatus"] == "STOPPED"
                    and self.tasks[task["taskArn"]]["lastStatus"] != "STOPPED"
                )
                self.tasks[task["taskArn"]] = task
                if stopped_now and self.on_stopped is not None:
                    self.on_stopped(task)
            self._changed.notify_all()
