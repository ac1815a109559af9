"""How a cluster's tasks stop: in order at close, and those of a cluster left unclosed."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..aws.clients import client_config
from ..options import ClusterOptions

if TYPE_CHECKING:
    from .processes import FargateScheduler
    from .registry import TaskRegistry

logger = logging.getLogger(__name__)


async def stop_tasks(registry: TaskRegistry, scheduler: FargateScheduler | None) -> None:
    """Stop every task at once, the scheduler's with the workers' (retired already: their
    SIGTERM finds nothing to hand over), then wait once for every task STOPPED: one
    StopTask per task, one DEPROVISIONING for them all to wait out."""
    workers = [a for a, r in registry.live.items() if r.role == "worker"]
    await registry.stop(workers, "cluster closed", wait=False)
    if scheduler is not None:
        await scheduler.close()
    await registry.stop(list(registry.live), "cluster closed")


def stop_leftovers(options: ClusterOptions, live: dict[str, Any]) -> None:
    """Stop tasks of a cluster that was garbage-collected or left open at exit."""
    if not live:
        return
    import boto3

    ecs = boto3.client("ecs", region_name=options.region, config=client_config())
    for arn in list(live):
        try:
            ecs.stop_task(cluster=options.ecs_cluster, task=arn, reason="cluster was not closed")
        except Exception as e:  # noqa: BLE001 - best effort at shutdown
            logger.debug("StopTask %s: %s", arn, e)
