"""Batched RunTask calls: paced under AWS's rate limits, retried where retrying can help.

RunTask starts up to ``fargate.RUN_TASK_MAX_COUNT`` tasks a call, so API calls grow with
batches, not with workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from typing import Any

from botocore.exceptions import ClientError

from .. import fargate
from ..errors import TaskFailedError
from . import pacing
from .tasks import task_overrides

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Launch:
    """What one :meth:`TaskLauncher.run` started, and how many tasks the quota refused."""

    arns: list[str]
    quota_refused: int = 0
    capacity_refused: int = 0  # only when capacity failures are not retried


class TaskLauncher:
    """Starts tasks from one task definition, in RunTask calls of up to ten tasks.

    It paces itself under AWS's rate limits (token buckets from ``fargate.RATE_LIMITS``),
    lists every subnet in each call (Fargate spreads the tasks over them, and so over
    zones, and places them where it has capacity), and retries throttling
    and capacity failures with jittered exponential backoff until a deadline. Tasks the
    vCPU quota refuses are not retried here: the caller's quota governor decides.

    Parameters
    ----------
    ecs
        An aiobotocore ECS client.
    cluster_arn, task_definition : str
        Where to run, and what.
    subnets, security_groups : list of str
        The tasks' network.
    assign_public_ip : bool
        Whether tasks get a public IP.
    started_by : str
        ``startedBy`` of every task (the cluster name).
    deadline : float
        Seconds to keep retrying throttled or capacity-starved launches.
    """

    def __init__(
        self,
        ecs: Any,
        cluster_arn: str,
        task_definition: str,
        *,
        subnets: list[str],
        security_groups: list[str],
        assign_public_ip: bool,
        started_by: str,
        deadline: float,
    ) -> None:
        self.ecs = ecs
        self.cluster_arn = cluster_arn
        self.task_definition = task_definition
        self.started_by = started_by
        self.deadline = deadline
        self.subnets = list(subnets)
        self.security_groups = security_groups
        self.public_ip = "ENABLED" if assign_public_ip else "DISABLED"
        self._calls = pacing.bucket("fargate-run-task-calls")
        self._launches = pacing.bucket("fargate-task-launches")

    async def run(
        self,
        count: int,
        *,
        command: list[str],
        cpu: int,
        memory: int,
        environment: dict[str, str],
        tags: list[dict[str, str]],
        capacity_provider: str = "FARGATE",
        retry_capacity: bool = True,
    ) -> Launch:
        """Start up to ``count`` tasks.

        ``retry_capacity=False`` hands capacity failures back instead of retrying them
        (for a caller that falls back from Spot to On-Demand).

        Raises
        ------
        TaskFailedError
            A failure that retrying cannot mend, or throttling or capacity failures past
            the deadline; its ``arns`` are the tasks that did start.
        """
        overrides = task_overrides(command, cpu, memory, environment)
        launch = Launch([])
        deadline = time.monotonic() + self.deadline
        pending, attempt = count, 0
        iam_since: float | None = None  # when ECS first refused a role as not yet usable
        while pending:
            sizes = [
                min(fargate.RUN_TASK_MAX_COUNT, pending - i)
                for i in range(0, pending, fargate.RUN_TASK_MAX_COUNT)
            ]
            results = await asyncio.gather(
                *(self._run_task(n, overrides, tags, capacity_provider) for n in sizes),
                return_exceptions=True,
            )
            pending, reasons = 0, []
            for n, result in zip(sizes, results, strict=True):
                if isinstance(result, BaseException):
                    if _propagating(result):
                        if iam_since is None:
                            iam_since = time.monotonic()
                            logger.warning(
                                "ECS cannot use the cluster's IAM roles yet (new or "
                                "changed roles take seconds to propagate); "
                                "retrying for up to %g s",
                                fargate.IAM_PROPAGATION_WAIT,
                            )
                        if time.monotonic() - iam_since > fargate.IAM_PROPAGATION_WAIT:
                            raise self._error(launch, count, [str(result)]) from result
                    elif not _retryable(result):
                        raise self._error(launch, count, [str(result)]) from result
                    pending += n
                    reasons.append(str(result))
                    continue
                started, failures = result
                launch.arns += started
                for failure in failures:
                    reason = failure.get("reason", "unknown")
                    if fargate.is_quota_failure(reason):
                        launch.quota_refused += 1
                    elif reason.startswith(fargate.CAPACITY_UNAVAILABLE) and not retry_capacity:
                        launch.capacity_refused += 1
                    elif reason.startswith(fargate.CAPACITY_UNAVAILABLE):
                        pending += 1
                        reasons.append(reason)
                    elif reason.startswith(fargate.CPU_ABOVE_LIMIT):
                        raise self._error(
                            launch, count, [f"{reason}: {fargate.CPU_ABOVE_LIMIT_HINT}"]
                        )
                    else:
                        raise self._error(launch, count, [reason])
            if not pending:
                break
            delay = _backoff(attempt)
            if time.monotonic() + delay > deadline:
                raise self._error(launch, count, reasons, f" within {self.deadline:g} s")
            logger.info("retrying %d task launches: %s", pending, reasons[-1])
            await asyncio.sleep(delay)
            attempt += 1
        return launch

    def _error(
        self, launch: Launch, count: int, reasons: list[str], when: str = ""
    ) -> TaskFailedError:
        return TaskFailedError(
            f"{len(launch.arns)} of {count} tasks started{when}; ECS refused the rest: "
            + "; ".join(sorted(set(reasons))),
            arns=launch.arns,
        )

    async def _pace(self, tasks: int) -> None:
        """Wait until a RunTask call for ``tasks`` tasks is within AWS's rate limits."""
        while True:
            wait = self._calls.take(1)
            if not wait:
                wait = self._launches.take(tasks)
                if not wait:
                    return
                self._calls.give(1)
            await asyncio.sleep(wait)

    async def _run_task(
        self,
        count: int,
        overrides: dict[str, Any],
        tags: list[dict[str, str]],
        capacity_provider: str,
    ) -> tuple[list[str], list[dict[str, Any]]]:
        await self._pace(count)
        response = await self.ecs.run_task(
            cluster=self.cluster_arn,
            taskDefinition=self.task_definition,
            count=count,
            **_placement(capacity_provider),
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": self.subnets,
                    "securityGroups": self.security_groups,
                    "assignPublicIp": self.public_ip,
                }
            },
            overrides=overrides,
            startedBy=self.started_by,
            tags=tags,
            enableECSManagedTags=True,
        )
        return [t["taskArn"] for t in response["tasks"]], response.get("failures", [])


def _placement(capacity_provider: str) -> dict[str, Any]:
    """RunTask's placement: On-Demand by launch type (needs no capacity provider on the
    ECS cluster), Spot by capacity provider strategy."""
    if capacity_provider == "FARGATE":
        return {"launchType": "FARGATE"}
    return {"capacityProviderStrategy": [{"capacityProvider": capacity_provider, "weight": 1}]}


def _retryable(error: BaseException) -> bool:
    """Throttling, including EC2's, which RunTask wraps in InvalidParameterException."""
    if not isinstance(error, ClientError):
        return False
    code = error.response.get("Error", {}).get("Code", "")
    return code in ("ThrottlingException", "RequestLimitExceeded") or (
        "RequestLimitExceeded" in str(error)
    )


def _propagating(error: BaseException) -> bool:
    """ECS refusing a role it may accept once IAM has propagated it."""
    return isinstance(error, ClientError) and any(
        text in str(error) for text in fargate.IAM_PROPAGATION_ERRORS
    )


def _backoff(attempt: int) -> float:
    """Full-jitter exponential backoff: 0.2 s doubling, capped at 10 s."""
    return random.uniform(0, min(10.0, 0.2 * 2**attempt))
