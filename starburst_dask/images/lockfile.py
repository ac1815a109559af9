"""conda-lock files: read one, or make one from an environment.yml with conda-lock.

Only :func:`lock_environment` needs conda-lock (the ``[images]`` extra); reading a lock
file is plain YAML, so rendering and tagging work without it.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import socket
import tempfile
import urllib.parse
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import yaml

from .. import fargate
from ..errors import ConfigurationError
from .errors import ImageBuildError

#: The platforms a lock covers: Fargate's X86_64 and ARM64.
PLATFORMS = tuple(fargate.CONDA_PLATFORMS.values())
DEFAULT_CHANNEL = "conda-forge"
#: Where a channel given by name is, and where conda-lock fetches micromamba from when
#: no conda executable is installed.
CHANNEL_BASE_URL = "https://conda.anaconda.org/"
MICROMAMBA_URL = "https://micro.mamba.pm/"
#: Seconds to wait for each of them before saying locking cannot work here.
REACH_TIMEOUT = 5.0
#: conda-forge's names of Python distributions the version check reads.
CONDA_NAMES = {"dask": ("dask-core",), "msgpack": ("msgpack-python",)}
#: Added to every environment we lock: the image's init (signal forwarding, reaping).
INIT_PACKAGE = "tini"


@dataclasses.dataclass(frozen=True)
class LockedPackage:
    """One package of a lock file, for one platform."""

    name: str
    version: str
    manager: str  # "conda" or "pip"
    platform: str
    url: str
    md5: str | None
    sha256: str | None
    dependencies: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class LocalWheel:
    """A wheel built here from one of the user's own packages (editable or local install),
    which travels in the build context: no index has it."""

    name: str
    version: str
    #: The wheel's file, on this machine.
    path: str
    sha256: str

    @property
    def filename(self) -> str:
        """The wheel's file name (its tags are in it)."""
        return pathlib.Path(self.path).name


@dataclasses.dataclass(frozen=True)
class Lock:
    """A parsed lock: a conda-lock file (format version 1), or our pip lock (:mod:`.piplock`).

    Parameters
    ----------
    packages : tuple of LockedPackage
        Every package of every platform.
    platforms : tuple of str
        The platforms the lock was solved for.
    python : str, optional
        A pip lock's Python ``X.Y`` (the base image's); a conda lock locks python itself.
    wheels : tuple of LocalWheel
        A pip lock's wheels of the user's own packages.
    environment : str, optional
        A pip lock's environment key (:func:`.piplock.environment_key`): the image tag's
        hash, known before locking.
    """

    packages: tuple[LockedPackage, ...]
    platforms: tuple[str, ...]
    python: str | None = None
    wheels: tuple[LocalWheel, ...] = ()
    environment: str | None = None

    @property
    def kind(self) -> str:
        """``"pip"`` (a plain virtual environment's lock) or ``"conda"``."""
        return "pip" if self.python else "conda"

    def for_platform(self, platform: str) -> list[LockedPackage]:
        """The packages of ``platform``: conda ones dependencies first, then pip ones.

        Installers link packages in the order given: a noarch python package needs
        python linked before it, as in conda-lock's own explicit files.
        """
        if platform not in self.platforms:
            raise ConfigurationError(
                f"the lock file has no packages for {platform}; it covers "
                f"{', '.join(self.platforms)}. Re-lock with --platform {platform}"
            )
        chosen = sorted((p for p in self.packages if p.platform == platform), key=lambda p: p.name)
        conda = [p for p in chosen if p.manager == "conda"]
        return _toposort(conda) + [p for p in chosen if p.manager != "conda"]

    def version(self, name: str, platform: str) -> str | None:
        """The locked version of package ``name`` on ``platform``, if it is locked."""
        if name == "python" and self.python:
            return self.python
        names = {name, *CONDA_NAMES.get(name, ())}
        for p in self.for_platform(platform):
            if p.name in names:
                return p.version
        for wheel in self.wheels:
            if wheel.name in names:
                return wheel.version
        return None


def read_lock(path: str | pathlib.Path) -> Lock:
    """Parse a conda-lock file (``conda-lock.yml``, format version 1).

    Raises
    ------
    ConfigurationError
        The file is not a conda-lock file of a version this reads.
    """
    path = pathlib.Path(path)
    content = yaml.safe_load(path.read_text())
    if not isinstance(content, dict) or "package" not in content:
        raise ConfigurationError(f"{path} is not a conda-lock file (no 'package' list)")
    if content.get("version") != 1:
        raise ConfigurationError(
            f"{path} is conda-lock format version {content.get('version')!r}; this reads "
            "version 1 (what `conda-lock lock` writes)"
        )
    packages = tuple(
        LockedPackage(
            name=p["name"],
            version=str(p["version"]),
            manager=p["manager"],
            platform=p["platform"],
            url=p["url"],
            md5=(p.get("hash") or {}).get("md5"),
            sha256=(p.get("hash") or {}).get("sha256"),
            dependencies=tuple(sorted(p.get("dependencies") or {})),
        )
        for p in content["package"]
    )
    platforms = tuple(
        content.get("metadata", {}).get("platforms") or sorted({p.platform for p in packages})
    )
    return Lock(packages=packages, platforms=platforms)


def _toposort(packages: list[LockedPackage]) -> list[LockedPackage]:
    """Dependencies before dependents; ties (and cycles) in the given (name) order."""
    by_name = {p.name: p for p in packages}
    done: dict[str, LockedPackage] = {}
    visiting: set[str] = set()

    def visit(p: LockedPackage) -> None:
        if p.name in done or p.name in visiting:
            return
        visiting.add(p.name)
        for dep in p.dependencies:
            if dep in by_name:
                visit(by_name[dep])
        done[p.name] = p

    for p in packages:
        visit(p)
    return list(done.values())


def client_pins() -> dict[str, str]:
    """Versions the image must share with this client: python (minor), dask, distributed."""
    import platform

    major, minor, _ = platform.python_version_tuple()
    return {
        "python": f"{major}.{minor}.*",
        "dask-core": metadata.version("dask"),
        "distributed": metadata.version("distributed"),
    }


def pins_environment(channels: Sequence[str]) -> dict[str, Any]:
    """An environment.yml overlay: the client's pins and the image's init.

    conda-lock merges source files with later specs winning, so this overlay put last
    pins dask and distributed to the client's versions whatever the user's file says.
    """
    deps = [f"{name}={version}" for name, version in client_pins().items()]
    return {"channels": list(channels), "dependencies": [*deps, INIT_PACKAGE]}


def lock_environment(
    sources: Sequence[str | pathlib.Path],
    lockfile: str | pathlib.Path,
    platforms: Sequence[str] = PLATFORMS,
    reuse: bool = True,
) -> Lock:
    """Solve environment files into a conda-lock file with conda-lock, pinned to this client.

    Parameters
    ----------
    sources : list of path
        ``environment.yml`` files (conda-lock's source formats work too).
    lockfile : path
        Where to write the lock (``conda-lock.yml``).
    platforms : list of str
        Conda platforms to solve for.
    reuse : bool
        Keep an existing ``lockfile`` solved from the same inputs (conda-lock's input
        hash) instead of solving again.

    Returns
    -------
    Lock
        The written lock.

    Raises
    ------
    ConfigurationError
        conda-lock is not installed.
    ImageBuildError
        conda-lock failed (no solution, channels or micromamba out of reach).
    """
    try:
        from conda_lock.conda_lock import run_lock
        from conda_lock.lookup import DEFAULT_MAPPING_URL
    except ImportError as e:
        raise ConfigurationError(
            "locking an environment needs conda-lock: pip install 'starburst-dask[images]'"
        ) from e
    channels: list[str] = []
    for source in sources:
        text = pathlib.Path(source).read_text()
        channels += [
            c for c in (yaml.safe_load(text) or {}).get("channels", []) if c not in channels
        ]
    _check_reach(channels or [DEFAULT_CHANNEL], sources)
    with tempfile.TemporaryDirectory(prefix="starburst-lock-") as tmp:
        overlay = pathlib.Path(tmp, "starburst-pins.yml")
        overlay.write_text(yaml.safe_dump(pins_environment(channels or [DEFAULT_CHANNEL])))
        try:
            run_lock(
                [pathlib.Path(s) for s in sources] + [overlay],
                conda_exe=None,
                micromamba=True,
                platforms=list(platforms),
                kinds=["lock"],
                lockfile_path=pathlib.Path(lockfile),
                mapping_url=DEFAULT_MAPPING_URL,
                check_input_hash=reuse,
            )
        except Exception as e:  # solver, network, missing executable: all mean no lock
            raise ImageBuildError(
                f"conda-lock could not lock {', '.join(map(str, sources))}: {e}. Locking "
                "needs the conda channels and a conda or micromamba executable (conda-lock "
                "fetches micromamba); or pass a conda-lock.yml made elsewhere"
            ) from e
    return read_lock(lockfile)


def _check_reach(channels: Sequence[str], sources: Sequence[str | pathlib.Path]) -> None:
    """Fail at once, in one line, when locking cannot work: the channels (and micromamba's
    download, without a conda executable) out of reach, rather than after conda-lock's
    minute of retries."""
    urls = [c if "://" in c else CHANNEL_BASE_URL + c for c in channels]
    if not any(shutil.which(exe) for exe in ("micromamba", "mamba", "conda")):
        urls.append(MICROMAMBA_URL)
    for url in urls:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            continue  # a local channel (file://): conda-lock reads it
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=REACH_TIMEOUT).close()
        except OSError as e:
            raise ImageBuildError(
                f"cannot lock {', '.join(map(str, sources))}: {url} is out of reach "
                f"({e.strerror or e}); locking an environment.yml needs the conda channels. "
                "Connect to the network, or pass a conda-lock.yml made elsewhere (or "
                "software='current', this environment, locked with pip)"
            ) from None
