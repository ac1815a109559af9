"""Does an image carry the client's Python and serialization libraries? Checked before
any task starts.

A mismatch otherwise shows up late, as a failed handshake or an unpickling error on a
worker: Python (``X.Y``: pickles of functions and code objects), dask, distributed,
cloudpickle and msgpack (the messages and what they carry) must be the client's. A lock
records them all (checked before anything is built); an image tag records distributed
(dask is released in step) and Python: ours (``<distributed>-py<X.Y>-<hash>``) and the
public dask images' (``daskdev/dask:<version>-py<X.Y>``) share one form. Other tags are
not checked.
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

#: What must be equal on both sides: a different one breaks (de)serialization.
SERIALIZATION = ("python", "dask", "distributed", "cloudpickle", "msgpack")
_TAG = re.compile(r"(?P<version>\d+\.\d+\.\d+)-py(?P<python>\d+\.\d+)(?:-(?P<hash>[0-9a-f]+))?")


@dataclasses.dataclass(frozen=True)
class ImageVersions:
    """Versions an image records: distributed (and dask, released in step) and python."""

    distributed: str
    python: str


def client_versions() -> dict[str, str]:
    """This client's Python (``X.Y``) and versions of :data:`SERIALIZATION`."""
    found = {"python": ".".join(platform.python_version_tuple()[:2])}
    for name in SERIALIZATION[1:]:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # not installed here: nothing to compare
            continue
    return found


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
    """Raise :class:`ImageVersionError` when ``image``'s tag records another distributed
    or Python ``X.Y`` than this client's."""
    found = from_tag(image)
    if found is None:
        logger.info("image %s does not record its dask version; not checked", image)
        return
    _compare(image, {"distributed": found.distributed, "python": found.python})


def check_lock(lock: Lock, platform: str, source: str) -> None:
    """Raise :class:`ImageVersionError` when ``lock`` has another Python ``X.Y``, dask,
    distributed, cloudpickle or msgpack than this client."""
    locked = {n: lock.version(n, platform) for n in SERIALIZATION}
    if locked["python"]:
        locked["python"] = ".".join(str(locked["python"]).split(".")[:2])
    _compare(source, {n: v for n, v in locked.items() if v})


def _compare(what: str, found: dict[str, str]) -> None:
    client = client_versions()
    differ = {n: v for n, v in found.items() if n in client and v != client[n]}
    if not differ:
        return
    theirs = ", ".join(f"{_named(n)} {v}" for n, v in differ.items())
    ours = ", ".join(f"{_named(n)} {client[n]}" for n in differ)
    pins = " ".join(f"{n}=={v}" for n, v in differ.items() if n != "python")
    raise ImageVersionError(
        f"{what} has {theirs} but this client has {ours}; workers would fail their "
        "handshake or fail to unpickle tasks. Run this environment's own image (the "
        f"default: software='current'), or an image with distributed "
        f"{client['distributed']} on Python {client['python']} (e.g. "
        f"image='daskdev/dask:{client['dask']}-py{client['python']}')"
        + (f", or pip install {pins} here" if pins else "")
    )


def _named(name: str) -> str:
    return "Python" if name == "python" else name
