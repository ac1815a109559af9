"""starburst-dask: Dask clusters on AWS Fargate.

>>> from dask.distributed import Client
>>> from starburst_dask import FargateCluster
>>> client = Client(FargateCluster(n_workers=4))  # doctest: +SKIP

The names below are imported on first use, so that the ``starburst-dask`` command can
report a broken dask configuration file in one line instead of failing on import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
#: The module that defines each public name: the errors' module but for the cluster.
_EXPORTS = {name: ".errors" for name in __all__} | {"FargateCluster": ".cluster.core"}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .cluster.core import FargateCluster
    from .errors import (
        ConfigurationError,
        CostLimitExceeded,
        MissingResourceError,
        SchedulerLostError,
        StarburstError,
        TaskFailedError,
    )
