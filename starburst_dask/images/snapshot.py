"""A snapshot of the current Python environment as an environment.yml, ready to lock.

Conda packages the user asked for (from the conda env's history) at their installed
versions, plus every pip-installed distribution at its exact version. Builds are left
out on purpose: a snapshot taken on macOS must still solve for linux.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from importlib import metadata
from typing import Any

from .lockfile import DEFAULT_CHANNEL, INIT_PACKAGE, client_pins

#: Never copied from the client: the image brings its own (or they are pinned separately).
_SKIP_PIP = {"pip", "setuptools", "wheel", "dask", "distributed", "starburst-dask"}
_HISTORY_SPECS = re.compile(r"^# update specs: (\[.*\])$")


@dataclasses.dataclass
class Snapshot:
    """The environment.yml content, and what could not be carried over (and why)."""

    environment: dict[str, Any]
    skipped: dict[str, str]


def snapshot(prefix: str | None = None) -> Snapshot:
    """Describe the running environment as an environment.yml for linux.

    Parameters
    ----------
    prefix : str, optional
        The conda environment to read; default ``$CONDA_PREFIX`` (none outside conda).

    Returns
    -------
    Snapshot
        ``environment`` (channels, conda dependencies, a ``pip`` list) and ``skipped``:
        distributions that cannot be installed from an index (editable or local
        installs), by name, with the reason.
    """
    prefix = prefix if prefix is not None else os.environ.get("CONDA_PREFIX")
    conda, channels = _conda_packages(pathlib.Path(prefix)) if prefix else ({}, [])
    pins = client_pins()
    if "dask" in conda:  # the metapackage (with its extras), at the client's version
        conda["dask"] = pins["dask-core"]
    conda.update(pins)  # the client's python, dask and distributed win over the history
    skipped: dict[str, str] = {}
    pip: list[str] = []
    seen: set[str] = set()
    for dist in metadata.distributions():
        name = _canonical(dist.metadata["Name"] or "")
        if not name or name in seen or name in _SKIP_PIP or name in conda:
            continue
        seen.add(name)
        if (dist.read_text("INSTALLER") or "").strip() == "conda":
            continue
        reason = _not_from_index(dist)
        if reason:
            skipped[name] = reason
            continue
        pip.append(f"{name}=={dist.version}")
    deps: list[Any] = [f"{n}={v}" for n, v in sorted(conda.items())]
    deps += ["pip", INIT_PACKAGE]
    if pip:
        deps.append({"pip": sorted(pip)})
    return Snapshot({"channels": channels or [DEFAULT_CHANNEL], "dependencies": deps}, skipped)


def _conda_packages(prefix: pathlib.Path) -> tuple[dict[str, str], list[str]]:
    """Requested conda packages (by history) at their installed versions, and channels."""
    meta = prefix / "conda-meta"
    installed: dict[str, str] = {}
    channels: list[str] = []
    for record in sorted(meta.glob("*.json")):
        info = json.loads(record.read_text())
        installed[info["name"]] = info["version"]
        channel = str(info.get("channel", "")).rstrip("/").rsplit("/", 1)[-1]
        if channel and channel not in channels:
            channels.append(channel)
    requested: set[str] = set()
    history = meta / "history"
    if history.exists():
        for line in history.read_text().splitlines():
            match = _HISTORY_SPECS.match(line.strip())
            if match:
                specs = json.loads(match.group(1).replace("'", '"'))
                requested |= {
                    re.split(r"[=<>! \[]", s.rsplit("::", 1)[-1], maxsplit=1)[0] for s in specs
                }  # "conda-forge::numpy>=2" -> "numpy"
    wanted = requested & set(installed) or {n for n in installed if not n.startswith("_")}
    return {n: installed[n] for n in wanted}, channels


def _not_from_index(dist: metadata.Distribution) -> str | None:
    """Why ``dist`` cannot be reinstalled from a package index, or None."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    info = json.loads(text)
    if info.get("dir_info", {}).get("editable"):
        return "editable install; add it to the image by hand"
    if str(info.get("url", "")).startswith("file:"):
        return "installed from a local path; publish it or add it by hand"
    if "vcs_info" in info:
        return f"installed from {info.get('url')}; add it to the environment by hand"
    return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
