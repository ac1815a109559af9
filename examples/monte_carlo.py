"""A Monte Carlo portfolio simulation on a FargateCluster: the job of ``starburst-dask demo``.

Run it as it is, against the AWS account your environment configures (after
``starburst-dask setup``) or against a local Fargate (``starburst-dask local``, then the
``export`` lines it prints, in this shell)::

    python examples/monte_carlo.py

The job itself is :func:`starburst_dask.demo.portfolio`: seeded simulations of 252
trading days, split into dask tasks, summarised on a worker.
"""

from __future__ import annotations

from dask.delayed import Delayed
from distributed import Client

from starburst_dask import FargateCluster
from starburst_dask.demo import PortfolioResult, portfolio

SIMULATIONS = 20_000
SEED = 42


def job() -> Delayed:
    """The computation: a dask graph whose result is a :class:`PortfolioResult`."""
    return portfolio(SIMULATIONS, SEED)


def run(client: Client) -> PortfolioResult:
    """The job's result, computed on ``client``'s cluster."""
    return client.compute(job()).result()


def report(result: PortfolioResult) -> str:
    """The result as the script prints it."""
    return str(result)


def main() -> None:
    """Start two workers, run the job, print its result; leaving the block closes it all."""
    with FargateCluster(n_workers=2) as cluster, Client(cluster) as client:
        print(report(run(client)))


if __name__ == "__main__":
    main()
