"""One DescribeTasks poller for all of a cluster's tasks.

Watching is shared (up to ``fargate.DESCRIBE_TASKS_MAX`` ids a call), so API calls grow
with polls, not with workers. Polls follow the work: every ``BUSY_INTERVAL`` seconds while
a task starts or stops, every ``interval`` once all are steady (RUNNING), always within
AWS's DescribeTasks rate (``READ_SHARE`` of it for this poller, drawn from a budget shared
with the process's other callers). Whoever waits on a task is woken by the poll that sees
it change. The poller outlives any failure while the watcher is open:
an endpoint that does not answer, throttling or another error answer is retried with
capped exponential back-off, said once when it begins and once when it ends; the first
answer after it reconciles what changed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .. import fargate
from ..aws.throttling import TokenBucket
from ..errors import TaskFailedError
from ..format import format_duration
from . import pacing
from .tasks import UNREACHABLE, addressed, describe_stop, task_id

logger = logging.getLogger(__name__)

#: Seconds between polls while a task starts or stops (at most ``interval``): what a wait
#: for a task's change may take beyond the change itself.
BUSY_INTERVAL = 0.5
#: The share of AWS's DescribeTasks rate ("cluster resource read") one poller uses at
#: most: many tasks changing at once never leave the other callers without calls.
READ_SHARE = 0.5
#: Task states that are steady: nothing to expect until ECS or someone stops the task.
STEADY_STATES = ("RUNNING",)


def describe_error(error: BaseException) -> str:
    """An error as the log names it: its type and message."""
    return f"{type(error).__name__}: {error}"


@dataclasses.dataclass
class Outage:
    """DescribeTasks failing since ``since`` (monotonic seconds), first with ``error``."""

    since: float
    error: BaseException
    failures: int = 1

    @property
    def unreachable(self) -> bool:
        """Whether the endpoint did not answer at all (rather than answered an error)."""
        return isinstance(self.error, UNREACHABLE)


class TaskWatcher:
    """One poller for all of a cluster's tasks.

    While any task is watched, it describes them all in DescribeTasks calls of up to 100
    ids (every ``BUSY_INTERVAL`` seconds while one starts or stops, else every
    ``interval``), and wakes whoever waits on a task.

    Parameters
    ----------
    ecs
        An aiobotocore ECS client.
    cluster_arn : str
        The ECS cluster the tasks run in.
    interval : float
        Seconds between polls while every task is steady (RUNNING, no stop asked).
    on_stopped : callable, optional
        Called with the description of each watched task that reaches STOPPED.
    on_stopping : callable, optional
        Called once with the first description of each watched task that shows it
        stopping (:func:`stopping`), before ``on_stopped`` when both are news at once.
    budget : TokenBucket, optional
        The account's DescribeTasks rate, shared with other callers (``pacing.shared``).
    max_backoff : float
        Seconds between polls, at most, while DescribeTasks fails.
    sleep, clock : callable
        How to wait and what time it is (monotonic); replaceable for tests.
    """

    def __init__(
        self,
        ecs: Any,
        cluster_arn: str,
        interval: float,
        on_stopped: Callable[[dict[str, Any]], None] | None = None,
        *,
        on_stopping: Callable[[dict[str, Any]], None] | None = None,
        budget: TokenBucket | None = None,
        max_backoff: float = fargate.RETRY_BACKOFF_MAX,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ecs = ecs
        self.cluster_arn = cluster_arn
        self.interval = interval
        self.busy_interval = min(BUSY_INTERVAL, interval)
        self.on_stopped = on_stopped
        self.on_stopping = on_stopping
        self.max_backoff = max(max_backoff, interval)
        #: Latest description of each watched task, by ARN.
        self.tasks: dict[str, dict[str, Any]] = {}
        #: DescribeTasks failing since when, and why; ``None`` while it answers.
        self.outage: Outage | None = None
        self._sleep = sleep
        self._clock = clock
        burst, rate = fargate.RATE_LIMITS["cluster-resource-read"]
        own = TokenBucket(burst * READ_SHARE, rate * READ_SHARE * pacing.PACING, clock)
        self._budgets = (own,) if budget is None else (own, budget)
        #: Tasks asked to stop whose descriptions do not show it yet: the work is busy.
        self._asked: set[str] = set()
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._last = clock()
        self._poller: asyncio.Task | None = None
        self._closed = False

    def watch(self, arns: Iterable[str]) -> None:
        """Start watching ``arns`` (and the poller, if it is not running)."""
        for arn in arns:
            self.tasks.setdefault(arn, {"taskArn": arn, "lastStatus": "PROVISIONING"})
        self._wake.set()  # polls come at the busy pace now
        if not self._closed and (self._poller is None or self._poller.done()):
            self._last = self._clock()
            self._poller = asyncio.ensure_future(self._poll())

    def stopping_asked(self, arns: Iterable[str]) -> None:
        """``arns`` were asked to stop: poll at the busy pace until they are STOPPED."""
        self._asked.update(a for a in arns if a in self.tasks)
        self._wake.set()

    @property
    def busy(self) -> bool:
        """Whether a watched task is starting or stopping (or was asked to stop)."""
        return any(
            t["lastStatus"] not in STEADY_STATES or stopping(t) or a in self._asked
            for a, t in self.tasks.items()
            if t["lastStatus"] != "STOPPED"
        )

    async def close(self) -> None:
        """Stop polling."""
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def running(self, arn: str, timeout: float) -> dict[str, Any]:
        """Wait until ``arn`` is RUNNING and return its description.

        Raises
        ------
        TaskFailedError
            If it is stopping first (with its ``stopCode`` and ``stoppedReason``: known
            before DEPROVISIONING ends), or ``timeout`` passed.
        """
        task = await self._wait(arn, lambda t: t["lastStatus"] == "RUNNING" or stopping(t), timeout)
        if task is None:
            raise TaskFailedError(
                f"task {task_id(arn)} did not reach RUNNING within {timeout:g} s "
                f"(last status {self.tasks[arn]['lastStatus']}); raise running_timeout if "
                "image pulls are slow"
            )
        if stopping(task):
            raise TaskFailedError(describe_stop(task))
        return task

    async def addressed(self, arn: str, timeout: float) -> dict[str, Any]:
        """Wait until ECS reports ``arn``'s ENI and private IP address (while it is still
        PROVISIONING or PENDING) and return its description.

        Raises
        ------
        TaskFailedError
            As :meth:`running` does.
        """
        task = await self._wait(arn, lambda t: addressed(t) or stopping(t), timeout)
        if task is None:
            raise TaskFailedError(
                f"task {task_id(arn)} had no network address within {timeout:g} s "
                f"(last status {self.tasks[arn]['lastStatus']})"
            )
        if stopping(task):
            raise TaskFailedError(describe_stop(task))
        return task

    async def stopped(self, arn: str, timeout: float) -> dict[str, Any] | None:
        """Wait until ``arn`` is STOPPED; its description, or ``None`` after ``timeout``,
        or as soon as the endpoint is found not to answer (nothing can be learnt then)."""
        return (await self.all_stopped([arn], timeout))[arn]

    async def all_stopped(
        self, arns: list[str], timeout: float
    ) -> dict[str, dict[str, Any] | None]:
        """One wait until every one of ``arns`` is STOPPED, bounded by ``timeout`` for them
        all, and given up as soon as the endpoint is found not to answer; each one's
        description, ``None`` for those not STOPPED."""
        self.watch(arns)

        def stopped(arn: str) -> bool:
            return self.tasks[arn]["lastStatus"] == "STOPPED"

        def done() -> bool:
            unreachable = self.outage is not None and self.outage.unreachable
            return unreachable or all(map(stopped, arns))

        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(done), timeout)
        return {a: self.tasks[a] if stopped(a) else None for a in arns}

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
        backoff: float | None = None
        while any(t["lastStatus"] != "STOPPED" for t in self.tasks.values()):
            if backoff is None:
                await self._until_due()
            else:
                await self._sleep(backoff)
            self._last = self._clock()
            try:
                await self._describe_all()
            except Exception as error:  # noqa: BLE001 - the poller must outlive any failure
                backoff = await self._failed(error)
            else:
                self._recovered()
                backoff = None

    async def _until_due(self) -> None:
        """Rest until the next poll is due: ``busy_interval`` after the last while tasks
        start or stop, ``interval`` once all are steady; sooner when work begins (a task
        watched, a stop asked)."""
        while True:
            self._wake.clear()
            due = self._last + (self.busy_interval if self.busy else self.interval)
            if due <= self._clock():
                return
            rest = asyncio.ensure_future(self._sleep(due - self._clock()))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({rest, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in (rest, woken):
                    waiting.cancel()

    async def _describe_all(self) -> None:
        live = [a for a, t in self.tasks.items() if t["lastStatus"] != "STOPPED"]
        for i in range(0, len(live), fargate.DESCRIBE_TASKS_MAX):
            chunk = live[i : i + fargate.DESCRIBE_TASKS_MAX]
            await pacing.pace(*self._budgets, sleep=self._sleep)
            response = await self.ecs.describe_tasks(cluster=self.cluster_arn, tasks=chunk)
            await self._update(response["tasks"])

    async def _failed(self, error: Exception) -> float:
        """Note a failed poll (said once per outage); the seconds to wait before the next."""
        if self.outage is None:
            self.outage = Outage(self._clock(), error)
            logger.warning(
                "DescribeTasks failed (%s): %s; retrying with back-off until it answers, "
                "then tasks that stopped meanwhile are replaced",
                "the AWS endpoint did not answer" if self.outage.unreachable else "AWS refused",
                describe_error(error),
            )
            async with self._changed:  # waits that give up when the endpoint is gone
                self._changed.notify_all()
        else:
            self.outage.failures += 1
        # Capped exponential back-off with jitter, as AWS's SDKs retry.
        ceiling = min(self.max_backoff, self.busy_interval * 2**self.outage.failures)
        return random.uniform(ceiling / 2, ceiling)

    def _recovered(self) -> None:
        if self.outage is None:
            return
        lasted = self._clock() - self.outage.since
        logger.warning(
            "DescribeTasks answers again after %s (%d failed polls, first %s); task states "
            "reconciled",
            format_duration(lasted),
            self.outage.failures,
            describe_error(self.outage.error),
        )
        self.outage = None

    async def _update(self, described: list[dict[str, Any]]) -> None:
        async with self._changed:
            for task in described:
                before = self.tasks[task["taskArn"]]
                self.tasks[task["taskArn"]] = task
                if stopping(task) and not stopping(before):
                    _call(self.on_stopping, task)
                if task["lastStatus"] == "STOPPED" and before["lastStatus"] != "STOPPED":
                    self._asked.discard(task["taskArn"])
                    _call(self.on_stopped, task)
            self._changed.notify_all()


def stopping(task: dict[str, Any]) -> bool:
    """Whether ECS reports ``task`` stopping: asked to (``desiredStatus`` STOPPED), or
    past RUNNING (DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED)."""
    return task.get("desiredStatus") == "STOPPED" or task["lastStatus"] in fargate.STOPPING_STATES


def _call(handler: Callable[[dict[str, Any]], None] | None, task: dict[str, Any]) -> None:
    if handler is None:
        return
    try:
        handler(task)
    except Exception:  # a handler's bug must not end the watching
        logger.exception("handling stopped task %s failed", task_id(task["taskArn"]))
