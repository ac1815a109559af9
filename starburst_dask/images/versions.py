"""Does an image carry the client's dask and distributed? Checked before any task starts.

A mismatch otherwise shows up late, as a failed handshake or an unpickling error on a
worker. The versions come from the image tag: ours (``<distributed>-py<X.Y>-<hash>``,
recorded when the image was rendered from its lock) and the public dask images'
(``daskdev/dask:<version>-py<X.Y>``) share one form. Other tags are not checked.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import re
from importlib import metadata

from .errors import ImageVersionError
from .lockfile import Lock

logger = logging.getLogger(__name__)

_TAG = re.compile(r"(?P<version>\d+\.\d+\.\d+)-py(?P<python>\d+\.\d+)(?:-(?P<hash>[0-9a-f]+))?")


@dataclasses.dataclass(frozen=True)
class ImageVersions:
    """Versions an image records: distributed (and dask, released in step) and python."""

    distributed: str
    python: str


def client_versions() -> dict[str, str]:
    """This client's dask, distributed and python (major.minor)."""
    return {
        "dask": metadata.version("dask"),
        "distributed": metadata.version("distributed"),
        "python": ".".join(platform.python_version_tuple()[:2]),
    }


def from_tag(image: str) -> ImageVersions | None:
    """Versions recorded in ``image``'s tag, or None when its tag does not record them."""
    if "@" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return None
    match = _TAG.fullmatch(tag)
    if match is None:
        return None
    return ImageVersions(distributed=match["version"], python=match["python"])


def check_image(image: str) -> None:
    """Raise :class:`ImageVersionError` when ``image`` records another distributed than ours.

    A different Python minor version is only a warning: dask works across them, but
    pickled functions may not.
    """
    found = from_tag(image)
    if found is None:
        logger.info("image %s does not record its dask version; not checked", image)
        return
    _compare(image, {"distributed": found.distributed}, found.python)


def check_lock(lock: Lock, platform: str, source: str) -> None:
    """Raise :class:`ImageVersionError` when ``lock`` pins another dask or distributed."""
    locked = {n: lock.version(n, platform) for n in ("dask", "distributed")}
    python = lock.version("python", platform)
    _compare(
        source,
        {n: v for n, v in locked.items() if v},
        ".".join(python.split(".")[:2]) if python else None,
    )


def _compare(what: str, found: dict[str, str], python: str | None) -> None:
    client = client_versions()
    differ = {n: v for n, v in found.items() if v != client[n]}
    if differ:
        theirs = ", ".join(f"{n} {v}" for n, v in differ.items())
        ours = ", ".join(f"{n} {client[n]}" for n in differ)
        raise ImageVersionError(
            f"{what} has {theirs} but this client has {ours}; workers would fail their "
            f"handshake. Use an image with distributed {client['distributed']} (e.g. "
            f"image='daskdev/dask:{client['dask']}-py{client['python']}'), build one with "
            "software='environment.yml', or install the image's versions here"
        )
    if python and python != client["python"]:
        logger.warning(
            "%s has Python %s, this client Python %s: pickled functions may "
            "fail to load on workers",
            what,
            python,
            client["python"],
        )
