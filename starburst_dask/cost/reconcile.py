"""Clusters whose client died, brought up to date in the ledger from ECS.

A client records its cluster in the ledger while it runs and when it closes; a client that
is killed leaves its row "running", at the cost of its last update. The cluster's tasks,
found by the project's tags (:mod:`..ecs.tagged`), tell the rest: each billed by AWS's
formula (:mod:`.billing`) from its own timestamps, and once every one is STOPPED the
cluster is recorded :data:`STOPPED` at the last one's ``stoppedAt``. ``starburst-dask
cost``, ``ls`` and ``cleanup`` run it.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import config
from ..aws.clients import SyncClients
from ..ecs import tagged
from ..errors import StarburstError
from . import prices
from .billing import billed_seconds, task_rate, utcnow
from .ledger import RUNNING, ClusterRecord, Ledger, endpoint

#: The status of a cluster whose tasks all stopped without its client recording it closed.
STOPPED = "stopped"
#: Seconds a task may seem created before its cluster's row: the client's clock and ECS's
#: may differ a little.
CLOCK_SKEW = 60.0


def from_tasks(
    found: Iterable[dict[str, Any]], region: str, ledger: Ledger | None = None
) -> str | None:
    """:func:`reconcile` with ``region``'s prices, when the ledger has clusters running
    there; what went wrong, for a warning (never a failed command), else ``None``."""
    ledger = ledger or Ledger()
    try:
        if not ledger.running(region, endpoint()):
            return None
        discount = prices.spot_discount(config.setting("cost_spot_discount"))
        reconcile(found, prices.load(region, spot_discount=discount), ledger)
    except (ClientError, BotoCoreError, StarburstError, sqlite3.Error, OSError) as e:
        return f"the cost ledger could not be brought up to date from ECS: {e}"
    return None


def from_ecs(ecs_clusters: list[str] | None = None, ledger: Ledger | None = None) -> str | None:
    """:func:`from_tasks` for every region where the ledger has clusters running on this
    endpoint, their tasks found in ``ecs_clusters`` (default ``starburst.ecs-cluster``);
    no AWS call when it has none."""
    ledger = ledger or Ledger()
    names = ecs_clusters or [str(config.setting("ecs_cluster"))]
    try:
        regions = sorted({r.region for r in ledger.records(RUNNING) if r.endpoint == endpoint()})
        for region in regions:
            # Short timeouts, few retries: an unreachable endpoint must not hold up `cost`.
            ecs = SyncClients(region).client(
                "ecs",
                connect_timeout=3,
                read_timeout=10,
                retries={"max_attempts": 2, "mode": "standard"},
            )
            found = [t for name in names for t in tagged.project_tasks(ecs, name)]
            problem = from_tasks(found, region, ledger)
            if problem:
                return problem
    except (ClientError, BotoCoreError, StarburstError, sqlite3.Error, OSError) as e:
        return f"the cost ledger could not be brought up to date from ECS: {e}"
    return None


def reconcile(
    found: Iterable[dict[str, Any]],
    rates: prices.Prices,
    ledger: Ledger | None = None,
    now: datetime.datetime | None = None,
) -> list[str]:
    """Bring the ledger's running clusters of ``rates.region`` up to date from ``found``,
    the project's tasks as DescribeTasks gave them; the names of the clusters updated.

    A cluster's tasks are those tagged with its name created from its start until the
    next cluster of that name started. Tasks the row recorded that ECS no longer shows
    (it forgets them an hour or more after they stopped) keep their recorded cost.
    """
    ledger = ledger or Ledger()
    now = now or utcnow()
    rows = ledger.running(rates.region, endpoint())
    groups = tagged.by_cluster(found)
    here = (rates.region, endpoint())
    named = ledger.named({r.name for r in rows}) if rows else []
    later = _successors([r for r in named if (r.region, r.endpoint) == here])
    updated = []
    for row in rows:
        start = row.started_at - datetime.timedelta(seconds=CLOCK_SKEW)
        until = later.get(row.id)
        mine = [
            t
            for t in groups.get(row.name, [])
            if start <= t["createdAt"] and (until is None or t["createdAt"] < until)
        ]
        if not mine:
            continue
        ledger.update_cluster(row.id, **_fields(row, mine, rates, now))
        updated.append(row.name)
    return updated


def _successors(rows: list[ClusterRecord]) -> dict[int, datetime.datetime]:
    """For each cluster, when the next one of its name started."""
    following: dict[int, datetime.datetime] = {}
    last: dict[str, ClusterRecord] = {}
    for row in rows:  # oldest first
        if row.name in last:
            following[last[row.name].id] = row.started_at
        last[row.name] = row
    return following


def _fields(
    row: ClusterRecord, found: list[dict[str, Any]], rates: prices.Prices, now: datetime.datetime
) -> dict[str, Any]:
    """The ledger's fields of ``row`` from its tasks ``found`` (as the meter writes them)."""
    entries = {t["arn"]: t for t in row.tasks}
    for task in found:
        billed = billed_seconds(task, now)
        entries[task["taskArn"]] = {
            "arn": task["taskArn"],
            "cpu": task.get("cpu"),
            "memory": task.get("memory"),
            "capacity_provider": task.get("capacityProviderName"),
            "billed_seconds": billed,
            "cost": task_rate(task, rates) * billed / 3600,
        }
    ended = tagged.last_stop(found)
    return {
        "cost": sum(e["cost"] for e in entries.values()),
        "task_hours": sum(e["billed_seconds"] for e in entries.values()) / 3600,
        "status": RUNNING if ended is None else STOPPED,
        "stopped_at": ended,
        "tasks": list(entries.values()),
    }
