"""What a cluster costs: the estimate before launch, the running total, and its limits.

Plain accounting. A :class:`CostMeter` is made of data (prices, task sizes, limits), a
callable that returns the latest DescribeTasks description of each task the cluster
launched, and a clock; it applies the billing formula (:mod:`.billing`) to them, so the
total is what AWS will bill. A running task counts its minimum from the start: that
money is spent either way. It reaches the cluster only through the callbacks given to
:meth:`CostMeter.start` (a log, and what to do at the hard limit) and :meth:`~CostMeter.finish`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .. import fargate
from ..errors import CostLimitExceeded
from ..format import format_duration, format_usd
from . import prices
from .billing import Clock, billed_seconds, simulated, task_rate, utcnow
from .ledger import Ledger, LedgerEntry

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

#: Seconds between checks of the total against the alert and the hard limit, unless given.
CHECK_INTERVAL = 1.0
#: Seconds (by the meter's clock) between cost lines in the log, and ledger updates,
#: while a cluster runs.
REPORT_INTERVAL = 600.0
LEDGER_INTERVAL = 60.0

#: Returns the latest DescribeTasks description of every task of the cluster.
TaskSource = Callable[[], Iterable[Mapping[str, Any]]]
#: Takes a line for the cluster's log.
Log = Callable[[str], None]
#: Called once when the total reaches ``max_cost``: fails unfinished work, closes the cluster.
OnLimit = Callable[[CostLimitExceeded], Awaitable[None]]


class CostMeter:
    """A cluster's cost: estimate, running total and rate, alert and hard limit.

    Read it on the cluster as ``cluster.cost``; :func:`.estimate.meter_for` makes a cluster's.

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
        Returns the latest description of every task of the cluster.
    clock : callable
        Returns the current time (timezone-aware); figures are computed at it.
    name : str
        The cluster's name, for log lines and the ledger.
    check_interval : float
        Seconds between checks of the limits once started.
    ledger : Ledger, optional
        Where the cluster is recorded; default: the user's ledger.
    """

    def __init__(
        self,
        rates: prices.Prices,
        *,
        scheduler_size: tuple[int, int],
        worker_size: tuple[int, int],
        n_workers: int,
        spot: bool = False,
        architecture: str = fargate.ARCHITECTURES[0],
        max_cost: float | None = None,
        cost_alert: float | None = None,
        tasks: TaskSource = tuple,
        clock: Clock = utcnow,
        name: str = "cluster",
        check_interval: float = CHECK_INTERVAL,
        ledger: Ledger | None = None,
    ) -> None:
        self.prices = rates
        self.max_cost = max_cost
        self.cost_alert = cost_alert
        self.worker_size = worker_size
        self.architecture = architecture
        self.name = name
        #: The clock figures are computed at (replaceable, for tests).
        self.clock = clock
        self.check_interval = check_interval
        self._tasks = tasks
        self.scheduler_rate = rates.task_rate(*scheduler_size, architecture=architecture)
        self.worker_rate = rates.task_rate(*worker_size, architecture=architecture, spot=spot)
        #: US dollars per hour of the cluster as requested: the scheduler and every worker.
        self.estimate_per_hour = self.per_hour(n_workers)
        self.alerted = False
        self.limit_reached = False
        self.started_at: datetime.datetime | None = None
        self.stopped_at: datetime.datetime | None = None
        self._final: tuple[float, float, float] | None = None
        self._ledger = ledger or Ledger()
        self._entry: LedgerEntry | None = None
        self._keep: Log | None = None
        self._log: Log | None = None
        self._on_limit: OnLimit | None = None
        self._checker: asyncio.Task | None = None
        self._last_report = self._last_ledger = clock()  # set again at start
        self._halting: asyncio.Task | None = None
        self._capped = False

    # The figures
    def per_hour(self, n_workers: float) -> float:
        """US dollars per hour of the scheduler and ``n_workers`` workers."""
        return self.scheduler_rate + n_workers * self.worker_rate

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
        return ((self.stopped_at or self.clock()) - self.started_at).total_seconds()

    def _figures(self, now: datetime.datetime | None = None) -> tuple[float, float, float]:
        if self._final is not None:
            return self._final
        now = now or self.clock()
        total, rate, seconds = 0.0, 0.0, 0.0
        for task in list(self._tasks()):
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
        now = self.clock() + datetime.timedelta(seconds=horizon)
        minimum = max(horizon, fargate.BILLING_MINIMUM_SECONDS)
        total = 0.0
        for task in list(self._tasks()):
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

    def on_demand_premium(self) -> float:
        """US dollars per hour one worker costs more On-Demand than on Spot."""
        rate, size = self.prices.task_rate, self.worker_size
        on_spot = rate(*size, architecture=self.architecture, spot=True)
        return rate(*size, architecture=self.architecture) - on_spot

    def affordable(self, n_more_workers: int, horizon: float = 60.0) -> int:
        """How many of ``n_more_workers`` new workers :meth:`allows`; logs when fewer."""
        n = max(0, n_more_workers)
        while n > 0 and not self.allows(n, horizon):
            n -= 1
        if n < n_more_workers and not self._capped:
            self._capped = True  # say it once, not at every scale
            logger.warning(
                "launching %d of %d requested workers: more would take the cost past "
                "max_cost=%s within %g s (now %s)",
                n,
                n_more_workers,
                format_usd(self.max_cost or 0),
                horizon,
                format_usd(self.total),
            )
        return n

    # Lines for people
    def describe_estimate(self) -> str:
        """The estimate shown at launch."""
        limits = [
            f"{name} {format_usd(value)}"
            for name, value in (("alert at", self.cost_alert), ("hard limit", self.max_cost))
            if value
        ]
        on_demand = self.prices.task_rate(*self.worker_size, architecture=self.architecture)
        return (
            f"Estimated cost {format_usd(self.estimate_per_hour)}/hour "
            f"({self.prices.source}{simulated()}"
            + (
                f"; {self.architecture} rates"
                if self.architecture != fargate.ARCHITECTURES[0]
                else ""
            )
            + (
                f"; Spot at {self.prices.spot_discount:.0%} off"
                if self.worker_rate < on_demand
                else ""
            )
            + ")"
            + (f"; {', '.join(limits)}" if limits else "")
        )

    def describe(self) -> str:
        """``$0.12 so far, $0.45/hour``: for repr and logs."""
        return f"{format_usd(self.total)} so far, {format_usd(self.rate)}/hour"

    def summary(self) -> str:
        """The final line: runtime, task-hours, total cost."""
        return (
            f"ran {format_duration(self.runtime)}, {len(list(self._tasks()))} tasks, "
            f"{self.task_hours:.3f} task-hours, cost {format_usd(self.total)} "
            f"({self.prices.source}{simulated()})"
        )

    def html_row(self) -> str:
        """The cost row of the cluster's notebook widget."""
        limit = f", limit {format_usd(self.max_cost)}" if self.max_cost else ""
        return (
            '<tr><td style="text-align: left;"><strong>Cost:</strong> '
            f"{format_usd(self.total)}{limit}</td>"
            '<td style="text-align: left;"><strong>Rate:</strong> '
            f"{format_usd(self.rate)}/hour (estimate "
            f"{format_usd(self.estimate_per_hour)}/hour)</td></tr>"
        )

    def __repr__(self) -> str:
        return f"<CostMeter {self.describe()}, estimate {format_usd(self.estimate_per_hour)}/hour>"

    def limit_error(self, spent: float) -> CostLimitExceeded:
        """The error pending work fails with when the hard limit is reached."""
        limit = self.max_cost or 0.0
        return CostLimitExceeded(
            f"the cluster reached its cost limit: {format_usd(spent)} spent of "
            f"max_cost={limit:g} US dollars, so it closed every task and this work did "
            "not finish. To allow more, pass a higher max_cost to FargateCluster (or set "
            "starburst.cost.max-cost in dask config).",
            limit=limit,
            spent=spent,
        )

    # Life with a cluster
    def start(self, log: Log, on_limit: OnLimit, keep: Log | None = None) -> None:
        """Log the estimate, record the cluster in the ledger, and check the limits every
        ``check_interval`` seconds.

        Call in the cluster's event loop, before its first task is launched.

        Parameters
        ----------
        log : callable
            Shows a line to the cluster's user and keeps it in the cluster's log: the
            estimate now, the running cost every :data:`REPORT_INTERVAL`, the final line
            at :meth:`finish`.
        on_limit : async callable
            Called once, with the :class:`CostLimitExceeded` unfinished work should fail
            with, when the total reaches ``max_cost``: it should stop the cluster.
        keep : callable, optional
            Keeps a line in the cluster's log without showing it: the alert and the hard
            limit, which this module logs at WARNING and ERROR. Default: ``log``.
        """
        self.started_at = self._last_report = self._last_ledger = self.clock()
        self._keep = keep or log
        self._log = log
        self._on_limit = on_limit
        log(f"{self.name}: {self.describe_estimate()}")
        self._entry = LedgerEntry(self._ledger)
        self._entry.open(
            self.name,
            self.prices.region,
            self.estimate_per_hour,
            self.prices.source,
            self.started_at,
        )
        self._checker = asyncio.ensure_future(self._check_every_interval())

    async def _check_every_interval(self) -> None:
        while not self.limit_reached:
            await asyncio.sleep(self.check_interval)
            self.check()

    def check(self) -> None:
        """Compare the total now (by the clock) with the alert and the hard limit, once.

        The alert is logged once; at the hard limit ``on_limit`` is called, once. Every
        :data:`REPORT_INTERVAL` the running cost is logged, and every
        :data:`LEDGER_INTERVAL` the ledger updated. Runs every ``check_interval`` seconds
        after :meth:`start`, in the event loop.
        """
        if (
            self._on_limit is None
            or self._keep is None
            or self.limit_reached
            or self._final is not None
        ):
            return
        now = self.clock()
        total, rate, _ = self._figures(now)
        if self.cost_alert is not None and total >= self.cost_alert and not self.alerted:
            self.alerted = True
            message = (
                f"{self.name}: cost {format_usd(total)} reached the alert at "
                f"{format_usd(self.cost_alert)} ({format_usd(rate)}/hour)"
            )
            logger.warning(message)
            self._keep(message)
        if self.max_cost is not None and total >= self.max_cost:
            self.limit_reached = True
            error = self.limit_error(total)
            logger.error("%s: %s", self.name, error)
            self._keep(f"{self.name}: {error}")
            self._halting = asyncio.ensure_future(self._on_limit(error))
            return
        if (now - self._last_report).total_seconds() >= REPORT_INTERVAL:
            self._last_report = now
            if self._log is not None:
                self._log(f"{self.name}: {self.describe()}")
        if self._entry is not None and (now - self._last_ledger).total_seconds() >= LEDGER_INTERVAL:
            self._last_ledger = now
            self._entry.update(**self._ledger_fields("running", now))

    async def finish(self, log: Log) -> None:
        """Stop checking, freeze the figures, log the final line and record it in the
        ledger (awaited, in a thread). Idempotent.

        Parameters
        ----------
        log : callable
            As for :meth:`start`.
        """
        if self._checker is not None and self._checker is not asyncio.current_task():
            self._checker.cancel()
        if self._final is not None or self.started_at is None:
            return
        self.stopped_at = self.clock()
        self._final = self._figures(self.stopped_at)
        line = f"Closed {self.name}: {self.summary()}"
        log(line)
        if self._entry is not None:
            status = "cost limit" if self.limit_reached else "closed"
            await self._entry.close(**self._ledger_fields(status, self.stopped_at))

    def _ledger_fields(self, status: str, now: datetime.datetime) -> dict[str, Any]:
        tasks = []
        for task in list(self._tasks()):
            billed = billed_seconds(task, now)
            tasks.append(
                {
                    "arn": task.get("taskArn"),
                    "cpu": task.get("cpu"),
                    "memory": task.get("memory"),
                    "capacity_provider": task.get("capacityProviderName"),
                    "billed_seconds": billed,
                    "cost": task_rate(task, self.prices, self.worker_size, self.architecture)
                    * billed
                    / 3600,
                }
            )
        total, _, task_hours = self._figures(now)
        return {
            "cost": total,
            "task_hours": task_hours,
            "status": status,
            "stopped_at": self.stopped_at,
            "tasks": tasks,
        }
