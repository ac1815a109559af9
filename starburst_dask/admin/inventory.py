"""The project's running tasks, found by their tags: ``ls`` and ``cleanup``.

Every task a :class:`~starburst_dask.FargateCluster` starts carries the tags
:data:`~starburst_dask.ecs.tasks.TAG_CLUSTER` and :data:`~starburst_dask.ecs.tasks.TAG_ROLE`
(see :func:`~starburst_dask.ecs.tasks.task_tags`). Tasks without both are not ours, and
nothing here ever stops them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from .. import fargate
from ..aws.lookups import tag_dict
from ..ecs.tasks import TAG_CLUSTER, TAG_ROLE


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


def listed_tasks(
    ecs: Any, ecs_cluster: str, desired: tuple[str, ...] = ("RUNNING",)
) -> list[dict[str, Any]]:
    """Every task ListTasks lists in ``ecs_cluster`` with a ``desired`` status, as
    DescribeTasks gives it (with tags): ListTasks pages of up to 100, DescribeTasks of up
    to 100 tasks a call."""
    arns: list[str] = []
    for status in desired:
        for page in ecs.get_paginator("list_tasks").paginate(
            cluster=ecs_cluster,
            desiredStatus=status,
            PaginationConfig={"PageSize": fargate.LIST_TASKS_MAX},
        ):
            arns += page["taskArns"]
    described: list[dict[str, Any]] = []
    for i in range(0, len(arns), fargate.DESCRIBE_TASKS_MAX):
        chunk = arns[i : i + fargate.DESCRIBE_TASKS_MAX]
        described += ecs.describe_tasks(cluster=ecs_cluster, include=["TAGS"], tasks=chunk)["tasks"]
    return described


def project_tasks(ecs: Any, ecs_cluster: str) -> list[ProjectTask]:
    """Running (or starting) tasks in ``ecs_cluster`` that carry the project's tags."""
    found = []
    for task in listed_tasks(ecs, ecs_cluster):
        tags = tag_dict(task.get("tags"))
        if TAG_CLUSTER not in tags or TAG_ROLE not in tags:
            continue  # not ours
        found.append(
            ProjectTask(
                arn=task["taskArn"],
                ecs_cluster=ecs_cluster,
                cluster=tags[TAG_CLUSTER],
                role=tags[TAG_ROLE],
                status=task.get("lastStatus", "?"),
                created=task.get("createdAt"),
                description=task,
            )
        )
    return found


def clusters(ecs: Any, ecs_clusters: list[str]) -> list[ClusterInfo]:
    """The dask clusters running in ``ecs_clusters``, oldest first."""
    groups: dict[tuple[str, str], list[ProjectTask]] = {}
    for ecs_cluster in ecs_clusters:
        for task in project_tasks(ecs, ecs_cluster):
            groups.setdefault((ecs_cluster, task.cluster), []).append(task)
    infos = [ClusterInfo(name, ecs_cluster, found) for (ecs_cluster, name), found in groups.items()]
    return sorted(infos, key=lambda c: c.age(), reverse=True)


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
