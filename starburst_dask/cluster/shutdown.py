"""How a cluster's tasks stop: in order at close, and those of a cluster left unclosed."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..aws.clients import client_config
from ..options import ClusterOptions

if TYPE_CHECKING:
    from .processes import FargateScheduler
    from .registry import TaskRegistry

logger = logging.getLogger(__name__)


async def stop_tasks(
    registry: TaskRegistry, scheduler: FargateScheduler | None, workers: dict[str, Any]
) -> None:
    """Stop every task at once, the scheduler's with the workers', then wait once for
    every task STOPPED: one StopTask per task, one DEPROVISIONING for them all to wait out.

    The workers are not retired through the scheduler first (``SpecCluster``'s close
    would): with every worker leaving there is nowhere to move their data, and it would
    take a round trip per worker before the first StopTask. ``workers``, the cluster's
    worker objects, are closed and emptied.
    """
    # The scheduler's first: its workers' SIGTERM then finds no scheduler to retire through.
    live = sorted(registry.live, key=lambda a: registry.live[a].role != "scheduler")
    await registry.stop(live, "cluster closed", wait=False)
    if scheduler is not None:
        await scheduler.close()  # its StopTask was above
    await asyncio.gather(*(w.close() for w in workers.values()))  # their StopTask was above
    workers.clear()
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
