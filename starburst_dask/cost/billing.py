"""What AWS bills for one Fargate task: its rate, and the seconds it is billed for.

A Fargate task costs (vCPU x vCPU rate + GB x GB rate + extra storage x storage rate)
per hour, billed per second from the start of its image pull (``pullStartedAt``, else
``startedAt``) until it stops (``stoppedAt``, else now), with a one-minute minimum. A task
whose container has exited (``executionStoppedAt``) is billed on through DEPROVISIONING
until STOPPED: AWS bills until the task terminates, and it holds its resources until then.
Every function reads a DescribeTasks description of the task, and the time as given.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Mapping
from typing import Any

from .. import fargate
from ..aws.names import aws_endpoint
from .prices import Prices

#: The current time, timezone-aware: what figures are computed at.
Clock = Callable[[], datetime.datetime]


def utcnow() -> datetime.datetime:
    """The real clock: the current time in UTC."""
    return datetime.datetime.now(datetime.timezone.utc)


def simulated() -> str:
    """``""`` against AWS; against an endpoint that is not AWS's (``AWS_ENDPOINT_URL``: a
    local Fargate), words saying that costs there are simulated: no one bills them."""
    if aws_endpoint(os.environ.get("AWS_ENDPOINT_URL")):
        return ""
    return "; simulated on a local endpoint, not billed"


def billed_seconds(task: Mapping[str, Any], now: datetime.datetime) -> float:
    """Seconds AWS bills for ``task`` by ``now``: 0 before its image pull starts."""
    start = task.get("pullStartedAt") or task.get("startedAt")
    if start is None:
        return 0.0
    end = task.get("stoppedAt") or now
    return max(float(fargate.BILLING_MINIMUM_SECONDS), (end - start).total_seconds())


def task_rate(
    task: Mapping[str, Any],
    rates: Prices,
    default_size: tuple[int, int] = (0, 0),
    default_architecture: str = fargate.ARCHITECTURES[0],
) -> float:
    """US dollars per hour of a described task (size and architecture as given if it is not
    described yet: DescribeTasks reports its ``ecs.cpu-architecture`` attribute)."""
    cpu = int(task.get("cpu") or default_size[0])
    memory = int(task.get("memory") or default_size[1])
    architecture = next(
        (
            a["value"]
            for a in task.get("attributes", ())
            if a.get("name") == fargate.TASK_ARCHITECTURE_ATTRIBUTE
        ),
        default_architecture,
    )
    storage = (task.get("ephemeralStorage") or {}).get(
        "sizeInGiB", fargate.EPHEMERAL_STORAGE_INCLUDED_GIB
    )
    return rates.task_rate(
        cpu,
        memory,
        architecture=architecture,
        spot=task.get("capacityProviderName") == "FARGATE_SPOT",
        storage_gib=storage,
    )


def task_cost(task: Mapping[str, Any], rates: Prices, now: datetime.datetime) -> float:
    """US dollars AWS bills for ``task`` by ``now``."""
    return task_rate(task, rates) * billed_seconds(task, now) / 3600
