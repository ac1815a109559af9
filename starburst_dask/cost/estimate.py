"""Before launch: the region's prices loaded, the cluster's meter made, and clusters that
would cost more than their limits refused, before anything is created."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .. import fargate
from ..errors import ConfigurationError
from ..format import format_usd
from . import prices
from .billing import Clock, utcnow
from .ledger import Ledger
from .meter import CHECK_INTERVAL, CostMeter, TaskSource

if TYPE_CHECKING:
    from ..options import ClusterOptions


async def meter_for(
    options: ClusterOptions,
    tasks: TaskSource,
    *,
    clock: Clock = utcnow,
    ledger: Ledger | None = None,
) -> CostMeter:
    """The meter of a cluster with these options; loads the region's prices in a thread.

    Parameters
    ----------
    options : ClusterOptions
        Sizes, counts, limits, name and region of the cluster.
    tasks, clock, ledger
        As for :class:`~.meter.CostMeter`.

    Raises
    ------
    ConfigurationError
        If the estimated hourly cost exceeds ``max_hourly_cost``, ``max_cost`` is
        below the one-minute minimum of the scheduler and one worker, or the Spot
        discount is not a fraction.
    """
    discount = prices.spot_discount(options.cost_spot_discount)
    rates = await asyncio.to_thread(prices.load, options.region, spot_discount=discount)
    meter = CostMeter(
        rates,
        scheduler_size=(options.scheduler_cpu, options.scheduler_memory),
        worker_size=(options.worker_cpu, options.worker_memory),
        n_workers=options.n_workers,
        spot=options.spot is True,  # "fallback" may land on On-Demand: estimate high
        architecture=options.architecture,
        max_cost=options.max_cost,
        cost_alert=options.cost_alert,
        tasks=tasks,
        clock=clock,
        name=options.name,
        # At least every second; as often as the tasks are polled, when more often.
        check_interval=min(CHECK_INTERVAL, options.poll_interval),
        ledger=ledger,
    )
    refuse_over_limits(meter, options)
    return meter


def refuse_over_limits(meter: CostMeter, options: ClusterOptions) -> None:
    """Refuse a cluster over ``max_hourly_cost``, or whose ``max_cost`` a minute exceeds."""
    if options.max_hourly_cost is not None and meter.estimate_per_hour > options.max_hourly_cost:
        raise ConfigurationError(
            f"this cluster would cost about {format_usd(meter.estimate_per_hour)} an "
            f"hour (a scheduler and {options.n_workers} workers, {meter.prices.source}), "
            f"above max_hourly_cost={options.max_hourly_cost:g}; ask for fewer or "
            "smaller workers, or raise max_hourly_cost (argument, or "
            "starburst.cost.max-hourly-cost in dask config). Nothing was started."
        )
    minimum = (
        (meter.scheduler_rate + min(1, options.n_workers) * meter.worker_rate)
        * fargate.BILLING_MINIMUM_SECONDS
        / 3600
    )
    if options.max_cost is not None and minimum > options.max_cost:
        raise ConfigurationError(
            f"max_cost={options.max_cost:g} is below {format_usd(minimum)}, what the "
            "scheduler and one worker cost at least (Fargate bills a minute at least); "
            "raise max_cost. Nothing was started."
        )
