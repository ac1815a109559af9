"""The demo job: a Monte Carlo portfolio simulation, run through dask on a FargateCluster."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle
import numpy as np
from dask import delayed
from dask.delayed import Delayed

# The job's functions travel to the workers by value: a task's image (``daskdev/dask``
# by default) has dask and numpy, not starburst-dask.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

TRADING_DAYS = 252
#: Daily log-return drift and volatility of the simulated portfolio (about 7.5% a year
#: with 16% volatility).
DRIFT = 0.0003
VOLATILITY = 0.01
INITIAL_VALUE = 10_000.0
CHUNK = 500  # simulations per dask task


@dataclasses.dataclass(frozen=True)
class PortfolioResult:
    """Summary of the simulations: final portfolio value and annualised Sharpe ratio."""

    simulations: int
    mean_final_value: float
    p5_final_value: float
    p95_final_value: float
    mean_sharpe: float

    def __str__(self) -> str:
        return (
            f"{self.simulations:,} simulations of {TRADING_DAYS} trading days from "
            f"${INITIAL_VALUE:,.0f}:\n"
            f"  final value  mean ${self.mean_final_value:,.2f}   "
            f"5th pct ${self.p5_final_value:,.2f}   95th pct ${self.p95_final_value:,.2f}\n"
            f"  Sharpe ratio mean {self.mean_sharpe:.3f}"
        )


def simulate(first: int, count: int, seed: int) -> np.ndarray:
    """Final value and Sharpe ratio of simulations ``first`` .. ``first + count - 1``.

    Each simulation has its own random stream, so results do not depend on how the
    simulations are split into tasks or spread over workers.

    Returns
    -------
    numpy.ndarray
        Shape ``(count, 2)``: final value, annualised Sharpe ratio.
    """
    out = np.empty((count, 2))
    for i in range(count):
        rng = np.random.default_rng([seed, first + i])
        returns = rng.normal(DRIFT, VOLATILITY, TRADING_DAYS)
        out[i, 0] = INITIAL_VALUE * np.exp(returns.sum())
        out[i, 1] = returns.mean() / returns.std() * np.sqrt(TRADING_DAYS)
    return out


def _chunks(simulations: int) -> Iterator[tuple[int, int]]:
    for first in range(0, simulations, CHUNK):
        yield first, min(CHUNK, simulations - first)


def summarise(results: np.ndarray) -> PortfolioResult:
    """Aggregate per-simulation results into a :class:`PortfolioResult`."""
    final = results[:, 0]
    return PortfolioResult(
        simulations=len(results),
        mean_final_value=float(final.mean()),
        p5_final_value=float(np.percentile(final, 5)),
        p95_final_value=float(np.percentile(final, 95)),
        mean_sharpe=float(results[:, 1].mean()),
    )


class _ByValue:
    """``func``, pickled by value by whatever pickles it.

    distributed pickles a graph with the standard pickle first, which sends this
    module's functions by reference (an import on the worker) whatever cloudpickle's
    registry says; this wrapper hands them to cloudpickle, which sends them by value.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.__name__ = func.__name__  # dask names the graph's keys after it

    def __call__(self, *args: Any) -> Any:
        return self.func(*args)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return cloudpickle.loads, (cloudpickle.dumps(self.func),)


def portfolio(simulations: int = 10_000, seed: int = 42) -> Delayed:
    """A dask graph computing the :class:`PortfolioResult` of ``simulations`` runs.

    Its functions travel by value, so workers need numpy and dask, not starburst-dask.
    """
    parts = [
        delayed(_ByValue(simulate))(first, count, seed) for first, count in _chunks(simulations)
    ]
    return delayed(_ByValue(summarise))(delayed(np.concatenate)(parts))


def run(
    workers: int, simulations: int, seed: int = 42, local: bool = True, echo=print
) -> PortfolioResult:
    """Start a cluster (on a local Fargate unless ``local`` is false), run the job, close.

    Parameters
    ----------
    workers : int
        Worker tasks to launch.
    simulations : int
        Portfolio simulations to run.
    seed : int
        Seed of the simulations' random streams.
    local : bool
        Run on a local Fargate started for the demo; otherwise on the AWS account
        configured in the environment.
    echo : callable
        Where progress lines go.
    """
    import contextlib

    from distributed import Client

    from . import config
    from .cluster.core import FargateCluster

    config.check_values()  # a bad config value is said before a local Fargate starts
    with contextlib.ExitStack() as stack:
        t0 = time.perf_counter()
        if local:
            from .local import LocalFargate

            echo("Starting a local Fargate (AWS APIs on this machine, tasks as processes)")
            stack.enter_context(LocalFargate())
        cluster = stack.enter_context(FargateCluster(n_workers=workers))
        if cluster.quota.waiting and not local:
            offer_quota_request(cluster, echo)
        client = stack.enter_context(Client(cluster))
        running = len(cluster.workers)  # fewer than asked when the vCPU quota is short
        client.wait_for_workers(running)
        t1 = time.perf_counter()
        echo(f"Cluster ready in {t1 - t0:.1f} s with {running} workers: {cluster.dashboard_link}")
        result = client.compute(portfolio(simulations, seed)).result()
        t2 = time.perf_counter()
        echo(str(result))
        echo(
            f"Computed in {t2 - t1:.1f} s on {len(client.scheduler_info()['workers'])} "
            "workers; closing the cluster"
        )
    echo(f"Closed in {time.perf_counter() - t2:.1f} s; total {time.perf_counter() - t0:.1f} s")
    return result


def offer_quota_request(cluster: Any, echo: Any = print) -> None:
    """At a terminal, offer to file the quota increase that lets every worker run."""
    import sys

    if sys.stdin is None or not sys.stdin.isatty():
        return
    needed = cluster.provisioner.quota_needed
    if input(f"Request quota increase to {needed} vCPU? [y/N] ").strip().lower() in ("y", "yes"):
        request = cluster.request_quota_increase()
        if request is None:
            echo("Service Quotas refused the request; see the warning above")
