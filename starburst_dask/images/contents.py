"""What an image holds, as data: ``image.json`` in its build context and in the image.

The Python distributions the image installs (by their index names, at their versions),
the user's own packages (wheels of the context), its Python and its platform. The local
Fargate's CodeBuild records it with the image it pushes, so that a task of that image can
import exactly these (see ``local/images.py``).
"""

from __future__ import annotations

import dataclasses
import json
import re

from .lockfile import Lock

#: The file's path in the image.
IMAGE_PATH = "/usr/local/share/starburst-dask/image.json"
#: conda-forge packages whose Python distribution has another name (the rest share it).
CONDA_TO_PYPI = {
    "dask-core": "dask",
    "msgpack-python": "msgpack",
    "python-tzdata": "tzdata",
    "pytables": "tables",
    "matplotlib-base": "matplotlib",
}


@dataclasses.dataclass(frozen=True)
class Contents:
    """An image's Python contents.

    Attributes
    ----------
    platform : str
        Conda platform (``linux-64``, ``linux-aarch64``).
    python : str
        Python ``X.Y``.
    packages : dict of str to str
        Normalized distribution name to version: from the index or conda channels.
    local : dict of str to str
        The user's own packages: normalized name to the wheel's path in the context.
    """

    platform: str
    python: str
    packages: dict[str, str]
    local: dict[str, str]


def describe(lock: Lock, platform: str) -> str:
    """``image.json`` for ``lock`` on ``platform`` (stable text: part of the content hash)."""
    python = lock.version("python", platform) or ""
    packages = {}
    for p in lock.for_platform(platform):
        if p.manager == "pip":
            packages[normalize(p.name)] = p.version
        elif "python" in p.dependencies:  # a conda package of Python code
            packages[normalize(CONDA_TO_PYPI.get(p.name, p.name))] = p.version
    local = {normalize(w.name): f"wheels/{w.filename}" for w in lock.wheels}
    for wheel in lock.wheels:
        packages[normalize(wheel.name)] = wheel.version
    return (
        json.dumps(
            {
                "platform": platform,
                "python": ".".join(python.split(".")[:2]),
                "packages": dict(sorted(packages.items())),
                "local": dict(sorted(local.items())),
            },
            indent=1,
        )
        + "\n"
    )


def parse(text: str) -> Contents:
    """Read ``image.json``."""
    data = json.loads(text)
    return Contents(data["platform"], data["python"], data["packages"], data["local"])


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them (``PyYAML`` -> ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()
