"""What a cluster costs: the estimate before launch, the running total, and its limits.

A Fargate task costs (vCPU x vCPU rate + GB x GB rate + extra storage x storage rate)
per hour, billed per second from the start of its image pull (``pullStartedAt``, else
``startedAt``) until it stops (``stoppedAt``, else now), with a one-minute minimum.
:class:`CostMeter` applies that to the latest DescribeTasks description of each task the
cluster launched (``TaskWatcher.tasks``), so the total is what AWS will bill for them.
A running task counts its minimum from the start: that money is spent either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .. import fargate
from ..errors import ConfigurationError, CostLimitExceeded
from . import prices
from .ledger import Ledger

if TYPE_CHECKING:
    from ..cluster.core import FargateCluster
    from ..options import ClusterOptions

logger = logging.getLogger(__name__)

#: Seconds between checks of the total against the alert and the hard limit.
CHECK_INTERVAL = 1.0
#: Seconds between cost lines in the log, and ledger updates, while a cluster runs.
REPORT_INTERVAL = 600.0
LEDGER_INTERVAL = 60.0

Tasks = Mapping[str, Mapping[str, Any]]


def billed_seconds(task: Mapping[str, Any], now: datetime.datetime) -> float:
    """Seconds AWS bills for ``task`` by ``now``: 0 before its image pull starts."""
    start = task.get("pullStartedAt") or task.get("startedAt")
    if start is None:
        return 0.0
    end = task.get("stoppedAt") or now
    return max(float(fargate.BILLING_MINIMUM_SECONDS), (end - start).total_seconds())


def task_rate(task: Mapping[str, Any], rates: prices.Prices,
              default_size: tuple[int, int] = (0, 0),
              default_architecture: str = fargate.ARCHITECTURES[0]) -> float:
    """US dollars per hour of a described task (size and architecture as given if it is not
    described yet: DescribeTasks reports its ``ecs.cpu-architecture`` attribute)."""
    cpu = int(task.get("cpu") or default_size[0])
    memory = int(task.get("memory") or default_size[1])
    architecture = next((a["value"] for a in task.get("attributes", ())
                         if a.get("name") == fargate.TASK_ARCHITECTURE_ATTRIBUTE),
                        default_architecture)
    storage = (task.get("ephemeralStorage") or {}).get(
        "sizeInGiB", fargate.EPHEMERAL_STORAGE_INCLUDED_GIB)
    return rates.task_rate(cpu, memory, architecture=architecture,
                           spot=task.get("capacityProviderName") == "FARGATE_SPOT",
                           storage_gib=storage)


def task_cost(task: Mapping[str, Any], rates: prices.Prices,
              now: datetime.datetime) -> float:
    """US dollars AWS bills for ``task`` by ``now``."""
    return task_rate(task, rates) * billed_seconds(task, now) / 3600


def format_usd(amount: float) -> str:
    """``$1,234.56`` for large amounts; three significant digits for small ones."""
    if amount >= 10 or amount == 0:
        return f"${amount:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(abs(amount))))
    return f"${amount:.{decimals}f}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class CostMeter:
    """A cluster's cost: estimate, running total and rate, alert and hard limit.

    Read it on the cluster as ``cluster.cost``.

    Parameters
    ----------
    rates : Prices
        The region's Fargate prices.
    scheduler_size, worker_size : tuple of int
        ``(cpu, memory)`` of the scheduler and of each worker.
    n_workers : int
        Workers requested at launch (for :attr:`estimate_per_hour`).
    spot : bool
        Whether workers run on Fargate Spot.
    architecture : str
        CPU architecture of the tasks.
    max_cost, cost_alert : float, optional
        Hard limit and alert threshold, in US dollars.
    tasks : callable
        Returns the latest description of every task of the cluster, by ARN.
    """

    def __init__(self, rates: prices.Prices, *, scheduler_size: tuple[int, int],
                 worker_size: tuple[int, int], n_workers: int, spot: bool = False,
                 architecture: str = fargate.ARCHITECTURES[0], max_cost: float | None = None,
                 cost_alert: float | None = None,
                 tasks: Callable[[], Tasks] = dict) -> None:
        self.prices = rates
        self.max_cost = max_cost
        self.cost_alert = cost_alert
        self.worker_size = worker_size
        self.architecture = architecture
        self._tasks = tasks
        self.scheduler_rate = rates.task_rate(*scheduler_size, architecture=architecture)
        self.worker_rate = rates.task_rate(*worker_size, architecture=architecture, spot=spot)
        #: US dollars per hour of the cluster as requested: the scheduler and every worker.
        self.estimate_per_hour = self.scheduler_rate + n_workers * self.worker_rate
        self.alerted = False
        self.limit_reached = False
        self.started_at: datetime.datetime | None = None
        self.stopped_at: datetime.datetime | None = None
        self._final: tuple[float, float, float] | None = None
        self._checker: asyncio.Task | None = None
        self._ledger = Ledger()
        self._ledger_id: int | None = None
        self._capped = False

    @classmethod
    def for_cluster(cls, cluster: FargateCluster) -> CostMeter:
        """The meter of ``cluster`` (held weakly), from its options and its watcher."""
        ref = weakref.ref(cluster)

        def tasks() -> Tasks:
            watcher = getattr(ref(), "_watcher", None)
            return watcher.tasks if watcher is not None else {}

        return cls.for_options(cluster.options, tasks)

    @classmethod
    def for_options(cls, options: ClusterOptions, tasks: Callable[[], Tasks]) -> CostMeter:
        """The meter of a cluster with these options; loads the region's prices.

        Raises
        ------
        ConfigurationError
            If the estimated hourly cost exceeds ``max_hourly_cost``, ``max_cost`` is
            below the one-minute minimum of the scheduler and one worker, or the Spot
            discount is not a fraction.
        """
        discount = options.cost_spot_discount
        if isinstance(discount, bool) or not isinstance(discount, (int, float)) \
                or not 0 <= discount < 1:
            raise ConfigurationError(
                f"starburst.cost.spot-discount must be a fraction from 0 to below 1 "
                f"(AWS advertises up to {fargate.SPOT_DISCOUNT_ADVERTISED:.0%}), "
                f"got {discount!r}"
            )
        rates = prices.load(options.region, spot_discount=float(discount))
        meter = cls(
            rates,
            scheduler_size=(options.scheduler_cpu, options.scheduler_memory),
            worker_size=(options.worker_cpu, options.worker_memory),
            n_workers=options.n_workers,
            spot=options.spot is True,  # "fallback" may land on On-Demand: estimate high
            architecture=options.architecture,
            max_cost=options.max_cost,
            cost_alert=options.cost_alert,
            tasks=tasks,
        )
        if options.max_hourly_cost is not None and \
                meter.estimate_per_hour > options.max_hourly_cost:
            raise ConfigurationError(
                f"this cluster would cost about {format_usd(meter.estimate_per_hour)} an "
                f"hour (a scheduler and {options.n_workers} workers, {rates.source}), "
                f"above max_hourly_cost={options.max_hourly_cost:g}; ask for fewer or "
                "smaller workers, or raise max_hourly_cost (argument, or "
                "starburst.cost.max-hourly-cost in dask config). Nothing was started."
            )
        minimum = (meter.scheduler_rate + min(1, options.n_workers) * meter.worker_rate) \
            * fargate.BILLING_MINIMUM_SECONDS / 3600
        if options.max_cost is not None and minimum > options.max_cost:
            raise ConfigurationError(
                f"max_cost={options.max_cost:g} is below {format_usd(minimum)}, what the "
                "scheduler and one worker cost at least (Fargate bills a minute at least); "
                "raise max_cost. Nothing was started."
            )
        return meter

    # The figures
    @property
    def total(self) -> float:
        """US dollars billed so far for every task of the cluster (with minimums)."""
        return self._figures()[0]

    @property
    def rate(self) -> float:
        """US dollars per hour of the tasks being billed now."""
        return self._figures()[1]

    @property
    def task_hours(self) -> float:
        """Billed task-hours so far."""
        return self._figures()[2]

    @property
    def runtime(self) -> float:
        """Seconds since the cluster started (until it closed)."""
        if self.started_at is None:
            return 0.0
        return ((self.stopped_at or _now()) - self.started_at).total_seconds()

    def _figures(self) -> tuple[float, float, float]:
        if self._final is not None:
            return self._final
        now, total, rate, seconds = _now(), 0.0, 0.0, 0.0
        for task in list(self._tasks().values()):
            task_rate_ = task_rate(task, self.prices, self.worker_size, self.architecture)
            billed = billed_seconds(task, now)
            total += task_rate_ * billed / 3600
            seconds += billed
            if billed and not task.get("stoppedAt"):
                rate += task_rate_
        return total, rate, seconds / 3600

    def projected(self, n_more_workers: int = 0, horizon: float = 60.0) -> float:
        """US dollars billed ``horizon`` seconds from now, with ``n_more_workers`` started
        now: running tasks keep running, and each new one costs at least its minimum."""
        now = _now() + datetime.timedelta(seconds=horizon)
        minimum = max(horizon, fargate.BILLING_MINIMUM_SECONDS)
        total = 0.0
        for task in list(self._tasks().values()):
            task_rate_ = task_rate(task, self.prices, self.worker_size, self.architecture)
            if task.get("pullStartedAt") or task.get("startedAt") or task.get("stoppedAt"):
                total += task_rate_ * billed_seconds(task, now) / 3600
            else:  # launched, not yet pulling: it will be billed soon
                total += task_rate_ * minimum / 3600
        return total + n_more_workers * self.worker_rate * minimum / 3600

    def allows(self, n_more_workers: int, horizon: float = 60.0) -> bool:
        """Whether ``n_more_workers`` more workers keep the projected cost within
        ``max_cost`` for ``horizon`` seconds (always, without a ``max_cost``)."""
        if self.limit_reached:
            return n_more_workers <= 0
        return self.max_cost is None or self.projected(n_more_workers, horizon) <= self.max_cost

    def affordable(self, n_more_workers: int, horizon: float = 60.0) -> int:
        """How many of ``n_more_workers`` new workers :meth:`allows`; logs when fewer."""
        n = max(0, n_more_workers)
        while n > 0 and not self.allows(n, horizon):
            n -= 1
        if n < n_more_workers and not self._capped:
            self._capped = True  # say it once, not at every scale
            logger.warning(
                "launching %d of %d requested workers: more would take the cost past "
                "max_cost=%s within %g s (now %s)", n, n_more_workers,
                format_usd(self.max_cost or 0), horizon, format_usd(self.total))
        return n

    # Lines for people
    def describe_estimate(self) -> str:
        """The estimate shown at launch."""
        limits = [f"{name} {format_usd(value)}" for name, value in
                  (("alert at", self.cost_alert), ("hard limit", self.max_cost)) if value]
        on_demand = self.prices.task_rate(*self.worker_size, architecture=self.architecture)
        return (f"Estimated cost {format_usd(self.estimate_per_hour)}/hour "
                f"({self.prices.source}"
                + (f"; {self.architecture} rates" if self.architecture
                   != fargate.ARCHITECTURES[0] else "")
                + (f"; Spot at {self.prices.spot_discount:.0%} off" if self.worker_rate
                   < on_demand else "")
                + ")" + (f"; {', '.join(limits)}" if limits else ""))

    def describe(self) -> str:
        """``$0.12 so far, $0.45/hour``: for repr and logs."""
        return f"{format_usd(self.total)} so far, {format_usd(self.rate)}/hour"

    def summary(self) -> str:
        """The final line: runtime, task-hours, total cost."""
        runtime = datetime.timedelta(seconds=round(self.runtime))
        return (f"ran {runtime}, {len(self._tasks())} tasks, {self.task_hours:.3f} "
                f"task-hours, cost {format_usd(self.total)} ({self.prices.source})")

    def _repr_html_row(self) -> str:
        limit = f", limit {format_usd(self.max_cost)}" if self.max_cost else ""
        return (
            '<tr><td style="text-align: left;"><strong>Cost:</strong> '
            f"{format_usd(self.total)}{limit}</td>"
            '<td style="text-align: left;"><strong>Rate:</strong> '
            f"{format_usd(self.rate)}/hour (estimate "
            f"{format_usd(self.estimate_per_hour)}/hour)</td></tr>"
        )

    def __repr__(self) -> str:
        return (f"<CostMeter {self.describe()}, estimate "
                f"{format_usd(self.estimate_per_hour)}/hour>")

    # Life with a cluster
    def start(self, cluster: FargateCluster) -> None:
        """Log the estimate, record the cluster in the ledger, and start checking limits.

        Call in the cluster's event loop, before its first task is launched.
        """
        self.started_at = _now()
        cluster._log(f"{cluster.options.name}: {self.describe_estimate()}")
        self._ledger_id = self._ledger.open_cluster(
            cluster.options.name, cluster.options.region, self.estimate_per_hour,
            self.prices.source, self.started_at)
        self._checker = asyncio.ensure_future(self._check(weakref.ref(cluster)))

    async def _check(self, cluster_ref: weakref.ref) -> None:
        last_report = last_ledger = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            cluster = cluster_ref()
            if cluster is None:
                return
            total, now = self.total, asyncio.get_running_loop().time()
            if self.cost_alert is not None and total >= self.cost_alert and not self.alerted:
                self.alerted = True
                message = (f"{cluster.options.name}: cost {format_usd(total)} reached the "
                           f"alert at {format_usd(self.cost_alert)} "
                           f"({format_usd(self.rate)}/hour)")
                logger.warning(message)
                cluster._cluster_manager_logs.append((datetime.datetime.now(), message))
            if self.max_cost is not None and total >= self.max_cost:
                self.limit_reached = True
                from .limit import halt  # imports distributed's client machinery

                asyncio.ensure_future(halt(cluster, self.limit_error(total)))
                return
            if now - last_report >= REPORT_INTERVAL:
                last_report = now
                logger.info("%s: %s", cluster.options.name, self.describe())
            if now - last_ledger >= LEDGER_INTERVAL:
                last_ledger = now
                self._record("running")
            del cluster

    def limit_error(self, spent: float) -> CostLimitExceeded:
        """The error pending work fails with when the hard limit is reached."""
        limit = self.max_cost or 0.0
        return CostLimitExceeded(
            f"the cluster reached its cost limit: {format_usd(spent)} spent of "
            f"max_cost={limit:g} US dollars, so it closed every task and this work did "
            "not finish. To allow more, pass a higher max_cost to FargateCluster (or set "
            "starburst.cost.max-cost in dask config).",
            limit=limit, spent=spent,
        )

    def finish(self, cluster: FargateCluster) -> None:
        """Freeze the figures, log the final line and record it. Idempotent."""
        if self._checker is not None and self._checker is not _current_task():
            self._checker.cancel()
        if self._final is not None or self.started_at is None:
            return
        self.stopped_at = _now()
        self._final = self._figures()
        cluster._log(f"Closed {cluster.options.name}: {self.summary()}")
        logger.info("Closed %s: %s", cluster.options.name, self.summary())
        self._record("cost limit" if self.limit_reached else "closed")

    def _record(self, status: str) -> None:
        if self._ledger_id is None:
            return
        now = self.stopped_at or _now()
        tasks = [
            {"arn": arn, "cpu": task.get("cpu"), "memory": task.get("memory"),
             "capacity_provider": task.get("capacityProviderName"),
             "billed_seconds": billed_seconds(task, now),
             "cost": task_rate(task, self.prices, self.worker_size, self.architecture)
             * billed_seconds(task, now) / 3600}
            for arn, task in list(self._tasks().items())
        ]
        self._ledger.update_cluster(self._ledger_id, cost=self.total,
                                    task_hours=self.task_hours, status=status,
                                    stopped_at=self.stopped_at, tasks=tasks)


def _current_task() -> asyncio.Task | None:
    with contextlib.suppress(RuntimeError):
        return asyncio.current_task()
    return None
