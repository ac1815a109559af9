"""A dask.dataframe pipeline on a FargateCluster: filter, derive a column, group, aggregate.

Run it as it is, against the AWS account your environment configures (after
``starburst-dask setup``) or against a local Fargate (``starburst-dask local``, then the
``export`` lines it prints, in this shell)::

    python examples/dataframe_pipeline.py

The data is generated on the workers (a month of seeded readings every 10 seconds,
one partition a day), so nothing large leaves this machine: only the result comes back.
"""

from __future__ import annotations

import dask.datasets
import pandas as pd
from dask.dataframe import DataFrame
from distributed import Client

from starburst_dask import FargateCluster


def readings(seed: int = 42) -> DataFrame:
    """30 days of readings (``name``, ``id``, ``x``, ``y``), one partition a day."""
    return dask.datasets.timeseries(
        start="2026-01-01", end="2026-01-31", freq="10s", partition_freq="1D", seed=seed
    )


def analyse(frame: DataFrame | pd.DataFrame) -> DataFrame | pd.DataFrame:
    """Per name, over the readings with positive ``x``: their count, mean ``x``, standard
    deviation of ``y`` and sum of ``x * y``. Lazy for a dask DataFrame, eager for pandas.

    ``sort=True`` (a few groups, sorted) makes dask reduce each partition and combine the
    partial results in a tree, rather than shuffle the rows between workers.
    """
    positive = frame[frame.x > 0]
    positive = positive.assign(xy=positive.x * positive.y)
    return positive.groupby("name", sort=True).agg(
        readings=("id", "count"), mean_x=("x", "mean"), std_y=("y", "std"), sum_xy=("xy", "sum")
    )


def job() -> DataFrame:
    """The computation: the summary of the generated readings, lazy."""
    return analyse(readings())


def run(client: Client) -> pd.DataFrame:
    """The job's result, computed on ``client``'s cluster."""
    return client.compute(job()).result()


def report(summary: pd.DataFrame) -> str:
    """The summary as the script prints it: every name, in order."""
    return summary.sort_index().to_string()


def main() -> None:
    """Start two workers, run the pipeline, print its result; leaving the block closes it."""
    with FargateCluster(n_workers=2) as cluster, Client(cluster) as client:
        print(report(run(client)))


if __name__ == "__main__":
    main()
