"""The project's tasks, found by their tags: ``ls`` and ``cleanup``.

Every task a :class:`~starburst_dask.FargateCluster` starts carries the tags
:data:`~starburst_dask.ecs.tasks.TAG_CLUSTER` and :data:`~starburst_dask.ecs.tasks.TAG_ROLE`
(see :func:`~starburst_dask.ecs.tasks.task_tags`). Tasks without both are not ours, and
nothing here ever stops them. The same pass finds the stopped tasks the cost ledger
reconciles (:mod:`..cost.reconcile`).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from ..aws.names import aws_endpoint
from ..ecs import tagged


@dataclasses.dataclass
class ProjectTask:
    """One running task of one dask cluster."""

    arn: str
    ecs_cluster: str
    cluster: str
    role: str
    status: str
    created: datetime | None
    #: The task as DescribeTasks gave it.
    description: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class ClusterInfo:
    """A dask cluster, as its running tasks show it."""

    name: str
    ecs_cluster: str
    tasks: list[ProjectTask]

    @property
    def started(self) -> datetime | None:
        """When its oldest running task was created."""
        times = [t.created for t in self.tasks if t.created]
        return min(times) if times else None

    def age(self, now: datetime | None = None) -> float:
        """Seconds since :attr:`started` (0 when unknown)."""
        if self.started is None:
            return 0.0
        return ((now or datetime.now(timezone.utc)) - self.started).total_seconds()

    @property
    def roles(self) -> Counter[str]:
        """Running tasks by role (``scheduler``, ``worker``)."""
        return Counter(t.role for t in self.tasks)

    @property
    def has_scheduler(self) -> bool:
        """Whether its scheduler task still runs."""
        return self.roles["scheduler"] > 0

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        """The cluster as plain data."""
        return {
            "name": self.name,
            "ecs_cluster": self.ecs_cluster,
            "started": self.started.isoformat() if self.started else None,
            "age_seconds": round(self.age(now)),
            "tasks": dict(self.roles),
            "task_arns": [t.arn for t in self.tasks],
        }


@dataclasses.dataclass
class Inventory:
    """The project's tasks in some ECS clusters, from one pass each (:mod:`..ecs.tagged`):
    those meant to run, and those stopped that ECS still shows."""

    tasks: list[ProjectTask]

    @property
    def clusters(self) -> list[ClusterInfo]:
        """The dask clusters with tasks meant to run, oldest first."""
        groups: dict[tuple[str, str], list[ProjectTask]] = {}
        for task in self.tasks:
            if task.description.get("desiredStatus") == "RUNNING":
                groups.setdefault((task.ecs_cluster, task.cluster), []).append(task)
        infos = [ClusterInfo(name, ecs, found) for (ecs, name), found in groups.items()]
        return sorted(infos, key=lambda c: c.age(), reverse=True)

    @property
    def descriptions(self) -> list[dict[str, Any]]:
        """Every task as DescribeTasks gave it."""
        return [t.description for t in self.tasks]


def scan(ecs: Any, ecs_clusters: list[str]) -> Inventory:
    """The project's tasks in ``ecs_clusters``."""
    return Inventory(
        [
            ProjectTask(
                arn=task["taskArn"],
                ecs_cluster=ecs_cluster,
                cluster=str(tagged.cluster_name(task)),
                role=tagged.role(task),
                status=task.get("lastStatus", "?"),
                created=task.get("createdAt"),
                description=task,
            )
            for ecs_cluster in ecs_clusters
            for task in tagged.project_tasks(ecs, ecs_cluster)
        ]
    )


def orphans(
    infos: list[ClusterInfo], older_than: float, now: datetime | None = None
) -> list[ClusterInfo]:
    """Clusters to clean up: older than ``older_than`` seconds, or workers whose
    scheduler is gone (they can never do work again).
    """
    return [c for c in infos if c.age(now) >= older_than or not c.has_scheduler]


def stop(ecs: Any, infos: list[ClusterInfo], reason: str) -> list[str]:
    """StopTask every task of ``infos``; the ARNs stopped."""
    stopped = []
    for info in infos:
        for task in info.tasks:
            ecs.stop_task(cluster=task.ecs_cluster, task=task.arn, reason=reason)
            stopped.append(task.arn)
    return stopped


def cost_so_far(infos: list[ClusterInfo], region: str) -> dict[str, float | None]:
    """US dollars each cluster's running tasks cost so far, by cluster name.

    Uses ``starburst_dask.cost.billing`` and ``starburst_dask.cost.prices`` when they are
    there; an optional extra: any failure gives ``None``, never a broken ``ls``.
    """
    try:
        from .. import config
        from ..cost.billing import task_cost
        from ..cost.prices import load, spot_discount

        rates = load(region, spot_discount=spot_discount(config.setting("cost_spot_discount")))
        now = datetime.now(timezone.utc)
        return {
            c.name: float(sum(task_cost(t.description, rates, now) for t in c.tasks)) for c in infos
        }
    except Exception:  # noqa: BLE001
        return dict.fromkeys((c.name for c in infos), None)


def simulated() -> bool:
    """Whether the tasks run on an endpoint that is not AWS's (a local Fargate): their cost
    is AWS's prices applied to them, simulated, not billed."""
    return not aws_endpoint(os.environ.get("AWS_ENDPOINT_URL"))
