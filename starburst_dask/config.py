"""The ``starburst`` dask config namespace: packaged defaults, user overrides on top.

Like every dask project, defaults ship as a yaml file and are merged under whatever the
user set in ``~/.config/dask/*.yaml`` or ``DASK_STARBURST__*`` environment variables.
"""

from __future__ import annotations

import os
from typing import Any

import dask.config
import yaml

_DEFAULTS = os.path.join(os.path.dirname(__file__), "starburst.yaml")

with open(_DEFAULTS) as f:
    dask.config.update_defaults(yaml.safe_load(f))


def get(key: str, override: Any = None) -> Any:
    """The value of ``starburst.<key>``, or ``override`` when it is not ``None``."""
    if override is not None:
        return override
    return dask.config.get(f"starburst.{key}")
