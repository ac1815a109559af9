"""An xarray pipeline on a FargateCluster: a dask-backed DataArray's monthly means, their
climatology, the anomalies' area-weighted global mean and its 12-month rolling mean.

Run it as it is, against the AWS account your environment configures (after
``starburst-dask setup``) or against a local Fargate (``starburst-dask local``, then the
``export`` lines it prints, in this shell)::

    python examples/xarray_pipeline.py

The workers need xarray: the cluster runs this environment (``software="current"``, the
default), so installing xarray here is enough.
"""

from __future__ import annotations

import dask.array
import numpy as np
import pandas as pd
import xarray as xr
from distributed import Client

from starburst_dask import FargateCluster

DAYS = 4 * 365


def temperature(seed: int = 7) -> xr.DataArray:
    """Four years of daily temperatures on a 10-degree grid (a seasonal cycle plus seeded
    noise), generated on the workers, one chunk a year."""
    time = pd.date_range("2022-01-01", periods=DAYS, freq="D")
    lat = np.arange(-85.0, 90.0, 10.0)
    lon = np.arange(0.0, 360.0, 10.0)
    season = 10 * np.cos(2 * np.pi * (time.day_of_year.to_numpy() - 200) / 365.25)
    noise = dask.array.random.default_rng(seed).normal(
        0, 2, (DAYS, lat.size, lon.size), chunks=(365, -1, -1)
    )
    return xr.DataArray(
        15 + season[:, None, None] + noise,
        coords={"time": time, "lat": lat, "lon": lon},
        dims=("time", "lat", "lon"),
        name="temperature",
    )


def analyse(temp: xr.DataArray) -> xr.DataArray:
    """Monthly means, their climatology (the mean of each calendar month), the anomalies
    from it averaged over the globe (grid cells weighted by area), and their 12-month
    rolling mean. Lazy for dask-backed data, eager for numpy-backed."""
    monthly = temp.resample(time="MS").mean()
    climatology = monthly.groupby("time.month").mean()
    anomaly = monthly.groupby("time.month") - climatology
    weights = np.cos(np.deg2rad(temp.lat))
    return anomaly.weighted(weights).mean(("lat", "lon")).rolling(time=12).mean()


def job() -> xr.DataArray:
    """The computation: the smoothed global anomaly of the generated temperatures, lazy."""
    return analyse(temperature())


def run(client: Client) -> xr.DataArray:
    """The job's result, computed on ``client``'s cluster."""
    return client.compute(job()).result()


def report(smoothed: xr.DataArray) -> str:
    """The 12-month mean anomaly at its warmest and coldest, and at each year's end."""
    warmest, coldest = smoothed.idxmax("time").item(), smoothed.idxmin("time").item()
    lines = [
        f"warmest 12 months, to {pd.Timestamp(warmest):%Y-%m}: {float(smoothed.max()):+.5f} K",
        f"coldest 12 months, to {pd.Timestamp(coldest):%Y-%m}: {float(smoothed.min()):+.5f} K",
    ]
    for time, value in smoothed.dropna("time").to_series().items():
        if time.month == 12:
            lines.append(f"{time.year}: {value:+.5f} K")
    return "\n".join(lines)


def main() -> None:
    """Start two workers, run the pipeline, print its result; leaving the block closes it."""
    with FargateCluster(n_workers=2) as cluster, Client(cluster) as client:
        print(report(run(client)))


if __name__ == "__main__":
    main()
