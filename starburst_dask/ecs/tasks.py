"""ECS tasks for dask: commands, overrides, tags, the task definition, addresses and stops.

Launching is in :mod:`.launcher`, watching in :mod:`.watcher`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
import botocore.exceptions
from botocore.exceptions import ClientError, HTTPClientError

from .. import fargate
from ..aws.throttling import TokenBucket
from ..cluster import lifetime
from . import pacing
from .boot import BOOT, RETIRE_ON_SIGTERM, SCHEDULER_TASK_VAR

if TYPE_CHECKING:  # options validates the overrides these commands make: no import back
    from ..options import ClusterOptions

logger = logging.getLogger(__name__)

FAMILY = "starburst-dask"
CONTAINER = "dask"
#: The ports a task listens on, pinned (not the system's ephemeral range) so that the
#: security group can admit exactly these: the scheduler and its dashboard (from the
#: caller's networks too), then the worker, its nanny and its dashboard (the cluster only).
SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
WORKER_PORT = 8788
NANNY_PORT = 8789
WORKER_DASHBOARD_PORT = 8790
#: The scheduler and dashboard ports: what the caller's networks reach.
CALLER_PORTS = (SCHEDULER_PORT, DASHBOARD_PORT)
#: Every port a task listens on: what the cluster's own tasks reach of each other.
CLUSTER_PORTS = (SCHEDULER_PORT, WORKER_DASHBOARD_PORT)
TAG_CLUSTER = "starburst-dask:cluster"
TAG_ROLE = "starburst-dask:role"

#: The tasks' plain settings with TLS (their certificates come as ``secrets``): no
#: connection without it.
TLS_ENVIRONMENT = {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}


def task_id(arn: str) -> str:
    """The id at the end of a task ARN: also the dask name of a worker."""
    return arn.rsplit("/", 1)[-1]


def scheme(options: ClusterOptions) -> str:
    """The cluster's dask protocol: ``tls``, or ``tcp`` with ``security=False``."""
    return "tls" if options.security else "tcp"


def scheduler_command(options: ClusterOptions) -> list[str]:
    """The scheduler task's command (see ``BOOT``)."""
    return [
        "python",
        "-c",
        BOOT,
        "scheduler",
        "--protocol",
        scheme(options),
        "--port",
        str(SCHEDULER_PORT),
        "--dashboard-address",
        f":{DASHBOARD_PORT}",
        "--idle-timeout",
        f"{options.scheduler_timeout}s",
    ]


def worker_command(options: ClusterOptions) -> list[str]:
    """The worker tasks' command (one for all workers): the scheduler's address is filled
    in by ``BOOT``, from the task :func:`worker_environment` names."""
    return [
        "python",
        "-c",
        BOOT,
        "worker",
        f"{scheme(options)}://{{scheduler}}:{SCHEDULER_PORT}",
        "--nthreads",
        str(options.worker_vcpus),
        "--memory-limit",
        str(options.worker_memory_limit),
        "--death-timeout",
        f"{options.worker_death_timeout}s",
        "--worker-port",
        str(WORKER_PORT),
        "--nanny-port",
        str(NANNY_PORT),
        "--dashboard-address",
        f":{WORKER_DASHBOARD_PORT}",
        "--preload-nanny",
        RETIRE_ON_SIGTERM,
    ]


def worker_environment(scheduler_task: str) -> dict[str, str]:
    """The worker tasks' own environment: their scheduler's task, whose address they find."""
    return {SCHEDULER_TASK_VAR: scheduler_task}


def scheduler_environment(options: ClusterOptions) -> dict[str, str]:
    """The scheduler task's own environment: distributed's worker TTL (a hung worker is
    removed after it, instead of distributed's 5 minutes)."""
    return {"DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": f"{options.worker_ttl:g}s"}


#: What a call raises when the endpoint did not answer (refused, reset, timed out), as
#: opposed to AWS's error answers (``ClientError``).
UNREACHABLE: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError
    HTTPClientError,  # ReadTimeoutError, ConnectionClosedError, ...
    aiohttp.ClientError,
    OSError,
    asyncio.TimeoutError,
)

#: The longest scheduler task ARN (partition, region, a 255-character ECS cluster name):
#: sizes the workers' environment before launch.
LONGEST_TASK_ARN = f"arn:aws-us-gov:ecs:us-gov-west-1:123456789012:task/{'c' * 255}/{'0' * 32}"


def task_overrides(
    command: list[str], cpu: int, memory: int, environment: dict[str, str]
) -> dict[str, Any]:
    """RunTask ``overrides`` for one launch: task size, command and environment."""
    return {
        "cpu": str(cpu),
        "memory": str(memory),
        "containerOverrides": [
            {
                "name": CONTAINER,
                "command": command,
                "environment": [{"name": k, "value": v} for k, v in environment.items()],
            }
        ],
    }


def overrides_length(options: ClusterOptions) -> int:
    """Characters of the largest RunTask ``overrides`` the cluster sends, as JSON.

    Scheduler and worker commands as :class:`~starburst_dask.cluster.core.FargateCluster`
    builds them, the workers' with the longest scheduler task ARN.
    """
    commands = [
        (
            scheduler_command(options) + lifetime.scheduler_args(options),
            options.scheduler_cpu,
            options.scheduler_memory,
            {**options.environment, **scheduler_environment(options)},
        ),
        (
            worker_command(options) + lifetime.worker_args(options),
            options.worker_cpu,
            options.worker_memory,
            {**options.environment, **worker_environment(LONGEST_TASK_ARN)},
        ),
    ]
    return max(
        len(json.dumps(task_overrides(c, cpu, mem, env), separators=(",", ":")))
        for c, cpu, mem, env in commands
    )


def task_tags(options: ClusterOptions, role: str) -> list[dict[str, str]]:
    """Tags for a task: the user's, plus the cluster name and role that identify it."""
    tags = {**options.tags, TAG_CLUSTER: options.name, TAG_ROLE: role}
    return [{"key": k, "value": v} for k, v in tags.items()]


async def ensure_task_definition(
    ecs: Any,
    options: ClusterOptions,
    roles: dict[str, str],
    secrets: dict[str, str] | None = None,
) -> str:
    """ARN of an ACTIVE task definition for these options: the latest if it matches, else new.

    Reusing a matching revision keeps an account from filling with one revision per
    cluster. Task size is set per launch through RunTask overrides. The container's
    ``secrets`` are the user's ``options.secrets`` and these ``secrets`` (environment
    variable -> ``valueFrom``): ECS reads their values when a task starts, so only their
    references are in the definition, and never in RunTask overrides.
    """
    references = {**options.secrets, **(secrets or {})}
    container_secrets = [{"name": n, "valueFrom": references[n]} for n in sorted(references)]
    environment = [{"name": k, "value": v} for k, v in TLS_ENVIRONMENT.items()]
    wanted = {
        "family": FAMILY,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(options.worker_cpu),
        "memory": str(options.worker_memory),
        "runtimePlatform": {
            "cpuArchitecture": options.architecture,
            "operatingSystemFamily": fargate.OPERATING_SYSTEM_FAMILY,
        },
        "executionRoleArn": roles["execution_role_arn"],
        "taskRoleArn": roles["task_role_arn"],
        "containerDefinitions": [
            {
                "name": CONTAINER,
                "image": options.image,
                "essential": True,
                # SIGTERM to SIGKILL: the most Fargate allows, the whole warning of a Spot
                # interruption, for workers to hand their data over (RETIRE_ON_SIGTERM).
                "stopTimeout": fargate.STOP_TIMEOUT_MAX,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": options.log_group,
                        "awslogs-region": options.region,
                        "awslogs-stream-prefix": FAMILY,
                    },
                },
                **({"secrets": container_secrets} if container_secrets else {}),
                **({"environment": environment} if options.security else {}),
            }
        ],
    }
    with contextlib.suppress(ClientError):
        latest = (await ecs.describe_task_definition(taskDefinition=FAMILY))["taskDefinition"]
        # _matches ignores fields only ``latest`` has: a revision's secrets (another
        # cluster's TLS secret) and environment must be ours.
        container = latest["containerDefinitions"][0]
        same_lists = container.get("secrets", []) == container_secrets and container.get(
            "environment", []
        ) == (environment if options.security else [])
        if latest.get("status") == "ACTIVE" and same_lists and _matches(wanted, latest):
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
        return (
            isinstance(actual, list)
            and len(wanted) == len(actual)
            and all(_matches(w, a) for w, a in zip(wanted, actual, strict=True))
        )
    return wanted == actual


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
        answer = await logs.get_log_events(
            logGroupName=log_group, logStreamName=stream, limit=n, startFromHead=False
        )
    except ClientError as e:
        logger.debug("GetLogEvents %s: %s", stream, e)
        return []
    return [event["message"] for event in answer.get("events", [])]


async def stop_tasks(
    ecs: Any,
    cluster_arn: str,
    arns: Iterable[str],
    reason: str,
    budget: TokenBucket | None = None,
) -> list[str]:
    """StopTask for each of ``arns`` (ECS has no batch stop), all at once as far as
    ``budget`` (AWS's "cluster resource modify" rate, paced) allows; the ARNs it could not
    stop.

    AWS's refusals are warned about one by one; tasks the endpoint did not answer for
    (an outage: connections refused, reset or timed out) in one warning naming them.
    """
    unanswered: dict[str, BaseException] = {}
    refused: list[str] = []

    async def stop(arn: str) -> None:
        if budget is not None:
            await pacing.pace(budget)
        try:
            await ecs.stop_task(cluster=cluster_arn, task=arn, reason=reason)
        except ClientError as e:  # AWS answers StopTask of a stopped task without error
            logger.warning("could not stop task %s: %s", task_id(arn), e)
            refused.append(arn)
        except UNREACHABLE as e:
            unanswered[arn] = e

    await asyncio.gather(*(stop(a) for a in arns))
    if unanswered:
        error = next(iter(unanswered.values()))
        logger.warning(
            "could not stop %d task(s), the AWS endpoint did not answer (%s: %s): %s; they "
            "run (and are billed) until they stop themselves, or `starburst-dask cleanup` "
            "stops them once AWS answers",
            len(unanswered),
            type(error).__name__,
            error,
            ", ".join(task_id(a) for a in unanswered),
        )
    return refused + list(unanswered)


def eni_details(task: dict[str, Any]) -> dict[str, str]:
    """The details of a task's ENI attachment: ``networkInterfaceId`` and
    ``privateIPv4Address`` once ECS has created it (while PROVISIONING or PENDING)."""
    return {
        d["name"]: d["value"]
        for a in task.get("attachments", [])
        if a["type"] == "ElasticNetworkInterface"
        for d in a.get("details", [])
    }


def addressed(task: dict[str, Any]) -> bool:
    """Whether ECS reports ``task``'s ENI and its private IP address (before it runs)."""
    details = eni_details(task)
    return "privateIPv4Address" in details and "networkInterfaceId" in details


async def task_addresses(ec2: Any, task: dict[str, Any]) -> tuple[str, str | None]:
    """The private and public (None if none yet) IP addresses of an :func:`addressed`
    task's ENI: the public one from EC2, as ECS does not report it."""
    details = eni_details(task)
    enis = await ec2.describe_network_interfaces(
        NetworkInterfaceIds=[details["networkInterfaceId"]]
    )
    public = enis["NetworkInterfaces"][0].get("Association", {}).get("PublicIp")
    return details["privateIPv4Address"], public
