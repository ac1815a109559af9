"""ECS tasks for dask: the task definition, batched launches, one poller, and stops.

Launching is batched (RunTask starts up to ``fargate.RUN_TASK_MAX_COUNT`` tasks a call)
and watching is shared (one DescribeTasks poller for all of a cluster's tasks, up to
``fargate.DESCRIBE_TASKS_MAX`` ids a call), so API calls grow with batches and polls,
not with workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from .. import fargate
from ..aws.throttling import TokenBucket
from ..cluster import lifetime
from ..errors import TaskFailedError
from ..options import ClusterOptions

logger = logging.getLogger(__name__)

FAMILY = "starburst-dask"
CONTAINER = "dask"
SCHEDULER_PORT = 8786
TAG_CLUSTER = "starburst-dask:cluster"
TAG_ROLE = "starburst-dask:role"

#: Worker entry point. One RunTask call carries one command for all its tasks, so each
#: worker learns its own dask name, its task id, from the ECS task metadata endpoint
#: (as every Fargate task can), then becomes ``dask worker``.
WORKER_BOOT = """\
import json, os, sys, urllib.request
url = os.environ["ECS_CONTAINER_METADATA_URI_V4"] + "/task"
task_id = json.load(urllib.request.urlopen(url, timeout=30))["TaskARN"].rsplit("/", 1)[1]
os.execvp("dask", ["dask", *sys.argv[1:], "--name", task_id])
"""


def task_id(arn: str) -> str:
    """The id at the end of a task ARN: also the dask name of a worker."""
    return arn.rsplit("/", 1)[-1]


def scheduler_command(options: ClusterOptions) -> list[str]:
    """The scheduler task's command."""
    return ["dask", "scheduler", "--port", str(SCHEDULER_PORT),
            "--idle-timeout", f"{options.scheduler_timeout}s"]


def worker_command(options: ClusterOptions, scheduler: str) -> list[str]:
    """The worker tasks' command (one for all workers; see ``WORKER_BOOT``)."""
    return ["python", "-c", WORKER_BOOT, "worker", scheduler,
            "--nthreads", str(options.worker_vcpus),
            "--memory-limit", str(options.worker_memory_limit),
            "--death-timeout", f"{options.worker_death_timeout}s"]


#: The longest address a scheduler can have (IPv4): sizes the worker command before launch.
LONGEST_SCHEDULER_ADDRESS = f"tcp://255.255.255.255:{SCHEDULER_PORT}"


def task_overrides(command: list[str], cpu: int, memory: int,
                   environment: dict[str, str]) -> dict[str, Any]:
    """RunTask ``overrides`` for one launch: task size, command and environment."""
    return {"cpu": str(cpu), "memory": str(memory), "containerOverrides": [{
        "name": CONTAINER,
        "command": command,
        "environment": [{"name": k, "value": v} for k, v in environment.items()],
    }]}


def overrides_length(options: ClusterOptions) -> int:
    """Characters of the largest RunTask ``overrides`` the cluster sends, as JSON.

    Scheduler and worker commands as :class:`~starburst_dask.cluster.core.FargateCluster`
    builds them, the worker's with the longest scheduler address.
    """
    commands = [
        (scheduler_command(options) + lifetime.scheduler_args(options),
         options.scheduler_cpu, options.scheduler_memory),
        (worker_command(options, LONGEST_SCHEDULER_ADDRESS) + lifetime.worker_args(options),
         options.worker_cpu, options.worker_memory),
    ]
    return max(len(json.dumps(task_overrides(c, cpu, mem, options.environment),
                              separators=(",", ":")))
               for c, cpu, mem in commands)


def task_tags(options: ClusterOptions, role: str) -> list[dict[str, str]]:
    """Tags for a task: the user's, plus the cluster name and role that identify it."""
    tags = {**options.tags, TAG_CLUSTER: options.name, TAG_ROLE: role}
    return [{"key": k, "value": v} for k, v in tags.items()]


async def ensure_task_definition(ecs: Any, options: ClusterOptions, roles: dict[str, str]) -> str:
    """ARN of an ACTIVE task definition for these options: the latest if it matches, else new.

    Reusing a matching revision keeps an account from filling with one revision per
    cluster. Task size is set per launch through RunTask overrides.
    """
    wanted = {
        "family": FAMILY,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(options.worker_cpu),
        "memory": str(options.worker_memory),
        "runtimePlatform": {"cpuArchitecture": options.architecture,
                            "operatingSystemFamily": fargate.OPERATING_SYSTEM_FAMILY},
        "executionRoleArn": roles["execution_role_arn"],
        "taskRoleArn": roles["task_role_arn"],
        "containerDefinitions": [{
            "name": CONTAINER,
            "image": options.image,
            "essential": True,
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": options.log_group,
                "awslogs-region": options.region,
                "awslogs-stream-prefix": FAMILY,
            }},
        }],
    }
    with contextlib.suppress(ClientError):
        latest = (await ecs.describe_task_definition(taskDefinition=FAMILY))["taskDefinition"]
        if latest.get("status") == "ACTIVE" and _matches(wanted, latest):
            return latest["taskDefinitionArn"]
    registered = await ecs.register_task_definition(**wanted)
    return registered["taskDefinition"]["taskDefinitionArn"]


def _matches(wanted: Any, actual: Any) -> bool:
    """Whether every field of ``wanted`` is in ``actual`` with the same value."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            _matches(v, actual.get(k)) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (isinstance(actual, list) and len(wanted) == len(actual)
                and all(_matches(w, a) for w, a in zip(wanted, actual, strict=True)))
    return wanted == actual


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

    def __init__(self, ecs: Any, cluster_arn: str, task_definition: str, *,
                 subnets: list[str], security_groups: list[str], assign_public_ip: bool,
                 started_by: str, deadline: float) -> None:
        self.ecs = ecs
        self.cluster_arn = cluster_arn
        self.task_definition = task_definition
        self.started_by = started_by
        self.deadline = deadline
        self.subnets = list(subnets)
        self.security_groups = security_groups
        self.public_ip = "ENABLED" if assign_public_ip else "DISABLED"
        self._calls = _pacing_bucket("fargate-run-task-calls")
        self._launches = _pacing_bucket("fargate-task-launches")

    async def run(self, count: int, *, command: list[str], cpu: int, memory: int,
                  environment: dict[str, str], tags: list[dict[str, str]],
                  capacity_provider: str = "FARGATE", retry_capacity: bool = True) -> Launch:
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
            sizes = [min(fargate.RUN_TASK_MAX_COUNT, pending - i)
                     for i in range(0, pending, fargate.RUN_TASK_MAX_COUNT)]
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
                            logger.warning("ECS cannot use the cluster's IAM roles yet (new or "
                                           "changed roles take seconds to propagate); "
                                           "retrying for up to %g s",
                                           fargate.IAM_PROPAGATION_WAIT)
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
                        raise self._error(launch, count,
                                          [f"{reason}: {fargate.CPU_ABOVE_LIMIT_HINT}"])
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

    def _error(self, launch: Launch, count: int, reasons: list[str],
               when: str = "") -> TaskFailedError:
        error = TaskFailedError(
            f"{len(launch.arns)} of {count} tasks started{when}; ECS refused the rest: "
            + "; ".join(sorted(set(reasons)))
        )
        error.arns = launch.arns  # type: ignore[attr-defined]
        return error

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

    async def _run_task(self, count: int, overrides: dict[str, Any], tags: list[dict[str, str]],
                        capacity_provider: str) -> tuple[list[str], list[dict[str, Any]]]:
        await self._pace(count)
        response = await self.ecs.run_task(
            cluster=self.cluster_arn,
            taskDefinition=self.task_definition,
            count=count,
            **_placement(capacity_provider),
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": self.subnets,
                "securityGroups": self.security_groups,
                "assignPublicIp": self.public_ip,
            }},
            overrides=overrides,
            startedBy=self.started_by,
            tags=tags,
            enableECSManagedTags=True,
        )
        return [t["taskArn"] for t in response["tasks"]], response.get("failures", [])


#: Fraction of AWS's refill rates the launcher paces itself to: the buckets are AWS's,
#: and a call reaches them a little after it leaves, so pacing at 100% gets throttled.
PACING = 0.95


def _pacing_bucket(limit: str) -> TokenBucket:
    burst, rate = fargate.RATE_LIMITS[limit]
    return TokenBucket(burst, rate * PACING)


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
        text in str(error) for text in fargate.IAM_PROPAGATION_ERRORS)


def _backoff(attempt: int) -> float:
    """Full-jitter exponential backoff: 0.2 s doubling, capped at 10 s."""
    return random.uniform(0, min(10.0, 0.2 * 2**attempt))


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

    def __init__(self, ecs: Any, cluster_arn: str, interval: float,
                 on_stopped: Callable[[dict[str, Any]], None] | None = None) -> None:
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
        task = await self._wait(arn, lambda t: t["lastStatus"] in ("RUNNING", "STOPPED"),
                                timeout)
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

    async def _wait(self, arn: str, done: Callable[[dict[str, Any]], bool],
                    timeout: float) -> dict[str, Any] | None:
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
                chunk = live[i:i + fargate.DESCRIBE_TASKS_MAX]
                try:
                    response = await self.ecs.describe_tasks(cluster=self.cluster_arn,
                                                             tasks=chunk)
                except ClientError as e:
                    logger.warning("DescribeTasks failed, retrying next poll: %s", e)
                    continue
                await self._update(response["tasks"])

    async def _update(self, described: list[dict[str, Any]]) -> None:
        async with self._changed:
            for task in described:
                stopped_now = (task["lastStatus"] == "STOPPED"
                               and self.tasks[task["taskArn"]]["lastStatus"] != "STOPPED")
                self.tasks[task["taskArn"]] = task
                if stopped_now and self.on_stopped is not None:
                    self.on_stopped(task)
            self._changed.notify_all()


def describe_stop(task: dict[str, Any]) -> str:
    """Why a task stopped, in the words ECS gave."""
    exit_codes = [c.get("exitCode") for c in task.get("containers", []) if "exitCode" in c]
    return (
        f"task {task_id(task['taskArn'])} stopped ({task.get('stopCode', 'unknown')}): "
        f"{task.get('stoppedReason') or 'no reason given'}"
        + (f"; exit code {exit_codes[0]}" if exit_codes else "")
        + f"; see its log in CloudWatch Logs under {FAMILY}/{CONTAINER}/{task_id(task['taskArn'])}"
    )


async def last_log_lines(logs: Any, log_group: str, arn: str, n: int = 5) -> list[str]:
    """The last ``n`` lines a task wrote to CloudWatch Logs (none if they cannot be read)."""
    stream = f"{FAMILY}/{CONTAINER}/{task_id(arn)}"
    try:
        answer = await logs.get_log_events(logGroupName=log_group, logStreamName=stream,
                                           limit=n, startFromHead=False)
    except ClientError as e:
        logger.debug("GetLogEvents %s: %s", stream, e)
        return []
    return [event["message"] for event in answer.get("events", [])]


async def stop_tasks(ecs: Any, cluster_arn: str, arns: Iterable[str], reason: str) -> None:
    """StopTask for each of ``arns`` (ECS has no batch stop); failures are warned about."""
    async def stop(arn: str) -> None:
        try:
            await ecs.stop_task(cluster=cluster_arn, task=arn, reason=reason)
        except ClientError as e:  # AWS answers StopTask of a stopped task without error
            logger.warning("could not stop task %s: %s", task_id(arn), e)

    await asyncio.gather(*(stop(a) for a in arns))


async def task_addresses(ec2: Any, task: dict[str, Any]) -> tuple[str, str | None]:
    """The private and public (None if none) IP addresses of a RUNNING task's ENI."""
    details = {d["name"]: d["value"]
               for a in task.get("attachments", []) if a["type"] == "ElasticNetworkInterface"
               for d in a["details"]}
    enis = await ec2.describe_network_interfaces(
        NetworkInterfaceIds=[details["networkInterfaceId"]]
    )
    public = enis["NetworkInterfaces"][0].get("Association", {}).get("PublicIp")
    return details["privateIPv4Address"], public
