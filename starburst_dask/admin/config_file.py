"""The dask config file setup writes, which names what it found for every later cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.config
import yaml

from .managed import CREATED, EXISTS, UPDATED, Resource

#: File (in the dask config directory) that setup writes.
CONFIG_FILE = "starburst-setup.yaml"


def config_path() -> Path:
    """The file setup writes: ``starburst-setup.yaml`` in the user's dask config directory.

    ``DASK_CONFIG`` wins, as dask itself reads it.
    """
    return Path(os.environ.get("DASK_CONFIG") or dask.config.PATH) / CONFIG_FILE


def write_config(path: Path, settings: dict[str, Any]) -> Resource:
    """Write ``settings`` under ``starburst:`` to ``path``, unless it holds them already."""
    text = "# Written by `starburst-dask setup`; rerun it rather than editing.\n" + yaml.safe_dump(
        {"starburst": settings}, sort_keys=False
    )
    if path.exists() and path.read_text() == text:
        return Resource("dask config", str(path), EXISTS)
    status = UPDATED if path.exists() else CREATED
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return Resource("dask config", str(path), status)
