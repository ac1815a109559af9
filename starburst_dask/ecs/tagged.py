"""The project's own tasks in an ECS cluster, found by their tags in one pass.

Every task a :class:`~starburst_dask.FargateCluster` starts carries the tags
:data:`~.tasks.TAG_CLUSTER` (the dask cluster's name) and :data:`~.tasks.TAG_ROLE`
(``scheduler``, ``worker``). One pass lists the ECS cluster's tasks meant to run and
those stopped (ECS keeps a stopped task visible for at least an hour), ListTasks pages
of up to 100, and describes them with their tags, DescribeTasks calls of up to 100
tasks; tasks without both tags are not ours. The same pass serves the quota governor
(usage, exactly, of every cluster of the project), ``ls``, ``cleanup`` and the cost
ledger (the start and stop times of clusters whose client died).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from .. import fargate
from ..aws.lookups import Lookup, Plan, tag_dict
from .tasks import TAG_CLUSTER, TAG_ROLE

#: The ListTasks ``desiredStatus`` values a pass reads: with both, every task ECS still
#: shows (RUNNING lists the tasks starting too; STOPPED those stopping and stopped).
DESIRED = ("RUNNING", "STOPPED")


@Lookup
def described_tasks(ecs_cluster: str, desired: tuple[str, ...] = DESIRED) -> Plan[list[dict]]:
    """ECS: every task ListTasks lists in ``ecs_cluster`` with a ``desired`` status, as
    DescribeTasks gives it (with ``tags``), whoever started it.

    A task listed under both statuses (it was stopped between the two lists) is
    described once.
    """
    listed: dict[str, None] = {}  # in order, once each
    for status in desired:
        token = None
        while True:
            params: dict[str, Any] = {
                "cluster": ecs_cluster,
                "desiredStatus": status,
                "maxResults": fargate.LIST_TASKS_MAX,
            }
            if token:
                params["nextToken"] = token
            page = yield "list_tasks", params
            listed.update(dict.fromkeys(page["taskArns"]))
            token = page.get("nextToken")
            if not token:
                break
    arns, found = list(listed), []
    for i in range(0, len(arns), fargate.DESCRIBE_TASKS_MAX):
        chunk = arns[i : i + fargate.DESCRIBE_TASKS_MAX]
        answer = yield (
            "describe_tasks",
            {"cluster": ecs_cluster, "tasks": chunk, "include": ["TAGS"]},
        )
        found += answer["tasks"]
    return found


@Lookup
def project_tasks(ecs_cluster: str, desired: tuple[str, ...] = DESIRED) -> Plan[list[dict]]:
    """ECS: the tasks of :func:`described_tasks` that carry the project's tags."""
    found = yield from described_tasks.plan(ecs_cluster, desired)
    return [t for t in found if cluster_name(t) is not None]


def cluster_name(task: dict[str, Any]) -> str | None:
    """The dask cluster a described task belongs to; ``None`` if it is not the project's."""
    tags = tag_dict(task.get("tags"))
    return tags[TAG_CLUSTER] if TAG_CLUSTER in tags and TAG_ROLE in tags else None


def role(task: dict[str, Any]) -> str:
    """The role of one of the project's described tasks: ``scheduler`` or ``worker``."""
    return tag_dict(task.get("tags")).get(TAG_ROLE, "")


def provider(task: dict[str, Any]) -> str:
    """The capacity provider whose quota a described task counts against."""
    return str(task.get("capacityProviderName") or "FARGATE")


def vcpus(task: dict[str, Any]) -> float:
    """The vCPUs a described task holds until it is STOPPED."""
    return fargate.vcpus(int(task.get("cpu") or 0))


def stopped(task: dict[str, Any]) -> bool:
    """Whether ECS reports the task STOPPED (its vCPUs free, its bill final)."""
    return task.get("lastStatus") == "STOPPED"


def by_cluster(found: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Described tasks of the project grouped by dask cluster name."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for task in found:
        name = cluster_name(task)
        if name is not None:
            groups.setdefault(name, []).append(task)
    return groups


def last_stop(found: Iterable[dict[str, Any]]) -> datetime.datetime | None:
    """When the last of described tasks stopped; ``None`` unless every one is STOPPED."""
    found = list(found)
    ended = [t["stoppedAt"] for t in found if stopped(t) and t.get("stoppedAt")]
    return max(ended) if found and len(ended) == len(found) else None
