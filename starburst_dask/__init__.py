"""starburst-dask: Dask clusters on AWS Fargate.

>>> from dask.distributed import Client
>>> from starburst_dask import FargateCluster
>>> client = Client(FargateCluster(n_workers=4))  # doctest: +SKIP
"""

from . import config  # noqa: F401  (registers the starburst config defaults)
from .cluster.core import FargateCluster
from .errors import (
    ConfigurationError,
    CostLimitExceeded,
    MissingResourceError,
    SchedulerLostError,
    StarburstError,
    TaskFailedError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "CostLimitExceeded",
    "FargateCluster",
    "MissingResourceError",
    "SchedulerLostError",
    "StarburstError",
    "TaskFailedError",
]
