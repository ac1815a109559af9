"""Expensive clusters confirmed before anything starts.

A cluster whose estimated hourly cost or requested vCPUs pass ``starburst.confirm.*``
asks at a terminal, naming the estimate; in a process without one (a script, a job, a
notebook kernel) it is refused unless ``FargateCluster(confirm=False)`` or the thresholds
allow it. Nothing is created before the answer: the estimate needs only the prices.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import fargate
from ..errors import ConfirmationError
from ..format import format_usd

if TYPE_CHECKING:
    from ..options import ClusterOptions
    from .meter import CostMeter

#: Asks a yes/no question; True for yes.
Ask = Callable[[str], bool]


def requested_vcpus(options: ClusterOptions) -> float:
    """vCPUs the cluster requests at launch: its scheduler's and every worker's."""
    return fargate.vcpus(options.scheduler_cpu) + options.n_workers * fargate.vcpus(
        options.worker_cpu
    )


def over_thresholds(meter: CostMeter, options: ClusterOptions) -> list[str]:
    """Which thresholds the cluster passes, in words (empty: none)."""
    over = []
    hourly = options.confirm_hourly_cost
    if hourly is not None and meter.estimate_per_hour > hourly:
        over.append(f"starburst.confirm.hourly-cost={hourly:g}")
    vcpus = requested_vcpus(options)
    if options.confirm_vcpus is not None and vcpus > options.confirm_vcpus:
        over.append(f"starburst.confirm.vcpus={options.confirm_vcpus:g}")
    return over


def confirm_launch(
    meter: CostMeter,
    options: ClusterOptions,
    *,
    confirm: bool = True,
    interactive: Callable[[], bool] | None = None,
    ask: Ask | None = None,
) -> None:
    """Go ahead, or raise: a cluster over a threshold is asked about or refused.

    Parameters
    ----------
    meter, options
        The cluster's estimate and options.
    confirm : bool
        False: start without asking (the caller has decided).
    interactive, ask
        Whether a person can answer (default: stdin is a terminal), and how to ask them
        (default: :func:`input`); for tests.

    Raises
    ------
    ConfirmationError
        Declined at the terminal, or no terminal to ask at; nothing was started.
    """
    over = over_thresholds(meter, options)
    if not over or not confirm:
        return
    what = (
        f"this cluster would cost about {format_usd(meter.estimate_per_hour)} an hour "
        f"({meter.prices.source}) for {requested_vcpus(options):,g} vCPUs (a scheduler and "
        f"{options.n_workers:,} workers), above {' and '.join(over)}"
    )
    if (interactive or _at_terminal)():
        if (ask or _ask)(f"Start it? {what[0].upper()}{what[1:]}. [y/N] "):
            return
        raise ConfirmationError(f"not started: {what}, and the answer was no")
    raise ConfirmationError(
        f"{what}, and there is no terminal to confirm it at: pass confirm=False to start "
        "it anyway, ask for fewer or smaller workers, or raise the threshold in dask "
        "config (null: never ask). Nothing was started."
    )


def _at_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _ask(question: str) -> bool:
    return input(question).strip().lower() in ("y", "yes")
