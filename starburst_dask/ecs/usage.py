"""The project's own vCPU usage, exactly: now, and its peak over a past window.

Fargate's usage metric (``AWS/Usage``) is a per-minute maximum: it shows a task late and
keeps showing it for up to a minute after it stopped. The project's own tasks, every
cluster's, are known exactly from ECS (:mod:`.tagged`: one pass, by their tags), with
when each started holding vCPUs (``createdAt``) and stopped (``stoppedAt``); the metric is
then needed only for the usage of everything else in the account.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import tagged

logger = logging.getLogger(__name__)

#: This cluster's live tasks as its registry knows them: ARN -> (capacity provider, vCPUs,
#: when RunTask answered).
LiveTasks = Callable[[], dict[str, tuple[str, float, datetime.datetime]]]


@dataclasses.dataclass(frozen=True)
class Holding:
    """vCPUs one task holds of one capacity provider's quota, from ``start`` until
    ``end`` (``None``: still)."""

    provider: str
    vcpus: float
    start: datetime.datetime
    end: datetime.datetime | None = None

    def at(self, t: datetime.datetime) -> bool:
        """Whether it holds its vCPUs at ``t``."""
        return self.start <= t and (self.end is None or t < self.end)


def holdings(found: Iterable[dict[str, Any]], now: datetime.datetime) -> list[Holding]:
    """What described tasks hold: from ``createdAt`` (PROVISIONING counts against the
    quota) until ``stoppedAt`` (STOPPED frees the vCPUs)."""
    return [
        Holding(
            tagged.provider(t),
            tagged.vcpus(t),
            t.get("createdAt") or now,
            (t.get("stoppedAt") or now) if tagged.stopped(t) else None,
        )
        for t in found
    ]


def current(held: Iterable[Holding], provider: str) -> float:
    """vCPUs of ``provider`` held now."""
    return sum(h.vcpus for h in held if h.provider == provider and h.end is None)


def peak(
    held: Iterable[Holding], provider: str, start: datetime.datetime, end: datetime.datetime
) -> float:
    """The most vCPUs of ``provider`` held at any time from ``start`` to ``end``.

    Usage only rises when a holding starts, so the peak is at ``start`` or at one of
    those starts.
    """
    mine = [h for h in held if h.provider == provider]
    moments = [start] + [h.start for h in mine if start < h.start <= end]
    return max(sum(h.vcpus for h in mine if h.at(t)) for t in moments)


class ProjectUsage:
    """Every task of the project in an ECS cluster, re-read at most every :attr:`FRESH`
    seconds, and this cluster's own tasks that are not listed yet.

    Parameters
    ----------
    ecs : aiobotocore ECS client
    ecs_cluster : str
        The ECS cluster (name or ARN) the project's clusters run in.
    live : callable
        This cluster's live tasks (:data:`LiveTasks`): counted from their launch when ECS
        does not list them yet (the metric may show them already).
    clock : callable
        Seconds, monotonic, for the cache (tests inject their own).
    """

    #: Seconds a pass is reused: the calls of one launch decision share it.
    FRESH = 1.0

    def __init__(
        self,
        ecs: Any,
        ecs_cluster: str,
        live: LiveTasks,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ecs = ecs
        self.ecs_cluster = ecs_cluster
        self._live = live
        self._clock = clock
        self._found: list[dict[str, Any]] = []
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()
        self._failing = False

    async def holdings(self, now: datetime.datetime) -> list[Holding]:
        """What the project's tasks hold, and have held lately, as of ``now``."""
        async with self._lock:
            if self._clock() - self._read_at >= self.FRESH:
                await self._read()
        held = holdings(self._found, now)
        listed = {t["taskArn"] for t in self._found}
        held += [
            Holding(provider, vcpus, min(launched, now))
            for arn, (provider, vcpus, launched) in self._live().items()
            if arn not in listed
        ]
        return held

    async def _read(self) -> None:
        try:
            self._found = await tagged.project_tasks.aio(self.ecs, self.ecs_cluster)
        except (ClientError, BotoCoreError) as e:
            # This cluster's own tasks are still known; others' show in the metric.
            if not self._failing:
                logger.warning("cannot list the project's tasks for the quota: %s", e)
            self._failing, self._found = True, []
            return
        self._failing = False
        self._read_at = self._clock()
