"""A pip lock: a plain virtual environment's exact distributions, for Fargate's platform.

No conda: the installed distributions (:mod:`importlib.metadata`) are pinned at their
versions and resolved by pip against the package index for the image's platform (linux
x86_64 or aarch64, the client's Python ``X.Y``) without installing anything
(``pip install --dry-run --report``), which gives each file's sha256. The user's own
packages (editable installs, installs from a local path) are not on any index: they are
built here into wheels (``pip wheel --no-deps``) that travel in the build context.

The lock file (``starburst-lock.yml``, YAML) is ours::

    format: starburst-dask-pip-lock
    version: 1
    python: "3.11"               # the base image's Python X.Y
    platforms: [linux-64]
    environment: <sha256>        # environment_key(): the inputs, known before locking
    packages:                    # from the index, installed with --require-hashes
    - {name: dask, version: 2026.8.0, platform: linux-64, url: ..., sha256: ...}
    local:                       # the user's own packages, as wheels beside the lock
    - {name: helper, version: "0.1", wheel: wheels/helper-0.1-py3-none-any.whl, sha256: ...}

An image of the running environment is tagged with :func:`environment_key`: a hash of
what was installed (names, versions, the local packages' sources), the Python version,
the platform and the template, so a later cluster finds it in ECR without locking again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import platform as _platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import yaml

from ..errors import ConfigurationError
from .contents import normalize
from .errors import ImageBuildError
from .lockfile import LocalWheel, Lock, LockedPackage

FORMAT = "starburst-dask-pip-lock"
VERSION = 1
LOCK_NAME = "starburst-lock.yml"
#: Never locked: the base image's own installer, and this client library (tasks run
#: stock dask commands; the scheduler's preload is sent as text).
SKIP = frozenset({"pip", "starburst-dask"})
#: The base image's C library: ``python:X.Y-slim-bookworm`` is Debian 12 (glibc 2.36), so
#: wheels for manylinux up to glibc 2.36 run on it (PEP 600).
BASE_GLIBC = (2, 36)
OLDEST_MANYLINUX = 17  # manylinux2014 = manylinux_2_17 (PEP 599, 600)
#: The wheels' machine names for the conda platforms we build (PEP 600 tags).
MACHINES = {"linux-64": "x86_64", "linux-aarch64": "aarch64"}
#: Source files of a local package that say nothing about its content.
_NOT_SOURCE = frozenset({"__pycache__", "build", "dist", "node_modules"})
Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class LocalPackage:
    """One of the user's own packages: installed from a directory or a file of this
    machine, not from an index."""

    name: str
    version: str
    source: pathlib.Path
    editable: bool


@dataclasses.dataclass(frozen=True)
class Environment:
    """A plain virtual environment, as installed: what a pip lock is made from."""

    python: str
    pins: tuple[tuple[str, str], ...]
    local: tuple[LocalPackage, ...]


def is_conda_environment(prefix: str | None = None) -> bool:
    """Whether ``prefix`` (default: this interpreter's) is a conda environment."""
    return pathlib.Path(prefix or sys.prefix, "conda-meta").is_dir()


def current_environment() -> Environment:
    """The running environment's distributions: index ones pinned, local ones found.

    Raises
    ------
    ConfigurationError
        A distribution installed from a version control URL (no wheel can be built from
        its install here), naming it.
    """
    pins: dict[str, str] = {}
    local: dict[str, LocalPackage] = {}
    for dist in metadata.distributions():
        name = normalize(dist.metadata["Name"] or "")
        if not name or name in SKIP or name in pins or name in local:
            continue
        text = dist.read_text("direct_url.json")
        info = json.loads(text) if text else {}
        url = str(info.get("url", ""))
        if "vcs_info" in info:
            raise ConfigurationError(
                f"{name} is installed from {url}, which no index serves: install it from "
                "a local checkout (pip install <dir>) so its wheel can travel, or pass image="
            )
        if url.startswith("file:"):  # a directory or an archive of this machine
            source = pathlib.Path(url2pathname(urlparse(url).path))
            editable = bool(info.get("dir_info", {}).get("editable"))
            local[name] = LocalPackage(name, dist.version, source, editable)
        else:
            pins[name] = dist.version
    return Environment(
        python=".".join(_platform.python_version_tuple()[:2]),
        pins=tuple(sorted(pins.items())),
        local=tuple(sorted(local.values(), key=lambda p: p.name)),
    )


def environment_key(environment: Environment, platform: str, template: str) -> str:
    """sha256 of what the image of ``environment`` holds: known before any lock.

    Names and versions, each local package's source files (an editable install changes
    without a new version), the Python version, the platform and the Dockerfile template.
    """
    digest = hashlib.sha256()
    for part in _key_parts(environment, platform, template):
        data = part.encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def pip_platforms(platform: str) -> list[str]:
    """pip's ``--platform`` tags whose wheels run on the base image of ``platform``."""
    machine = MACHINES[platform]
    return [
        f"manylinux_2_{minor}_{machine}" for minor in range(OLDEST_MANYLINUX, BASE_GLIBC[1] + 1)
    ] + [f"manylinux2014_{machine}"]


def lock_environment(
    environment: Environment,
    platform: str,
    directory: pathlib.Path,
    key: str,
    progress: Progress,
) -> Lock:
    """Resolve ``environment`` for ``platform`` with pip, build its local wheels, and write
    the lock to ``directory/starburst-lock.yml`` (wheels under ``directory/wheels``).

    Raises
    ------
    ImageBuildError
        pip found no wheel for a pinned version on ``platform`` (or no index), or a local
        package's wheel could not be built; pip's own words are kept.
    """
    directory.mkdir(parents=True, exist_ok=True)
    progress(
        f"locking {len(environment.pins)} distributions for {platform}, Python "
        f"{environment.python}, with pip (resolved on the index, nothing installed)"
    )
    requirements = [f"{name}=={version}" for name, version in environment.pins]
    packages = resolve(requirements, platform, environment.python, directory)
    wheels = tuple(_wheel(p, directory / "wheels", progress) for p in environment.local)
    lock = Lock(packages, (platform,), environment.python, wheels, key)
    write_lock(lock, directory / LOCK_NAME)
    return lock


def resolve(
    requirements: list[str], platform: str, python: str, directory: pathlib.Path
) -> tuple[LockedPackage, ...]:
    """pip's resolution of ``requirements`` for ``platform`` and Python ``X.Y``: each
    distribution's wheel on the index, with its sha256; nothing is installed.

    Raises
    ------
    ImageBuildError
        No wheel of a version for ``platform`` (or no index), in pip's words.
    """
    pins = directory / "requirements.txt"
    pins.write_text("".join(f"{line}\n" for line in requirements))
    report = directory / "pip-report.json"
    _pip(
        [
            "install",
            "--dry-run",
            "--ignore-installed",
            # Older pips take platform options only with a target; nothing is installed.
            "--target",
            str(directory / "unused-target"),
            "--quiet",
            "--report",
            str(report),
            "--only-binary=:all:",
            *[arg for tag in pip_platforms(platform) for arg in ("--platform", tag)],
            "--python-version",
            python,
            "--implementation",
            "cp",
            "--requirement",
            str(pins),
        ],
        "resolve the environment",
    )
    return tuple(_locked(item, platform) for item in json.loads(report.read_text())["install"])


def write_lock(lock: Lock, path: pathlib.Path) -> None:
    """Write ``lock`` in our format (wheel paths relative to the lock file)."""
    content = {
        "format": FORMAT,
        "version": VERSION,
        "python": lock.python,
        "platforms": list(lock.platforms),
        "environment": lock.environment,
        "packages": [
            {
                "name": p.name,
                "version": p.version,
                "platform": p.platform,
                "url": p.url,
                "sha256": p.sha256,
            }
            for p in lock.packages
        ],
        "local": [
            {
                "name": w.name,
                "version": w.version,
                "wheel": str(pathlib.Path(w.path).relative_to(path.parent)),
                "sha256": w.sha256,
            }
            for w in lock.wheels
        ],
    }
    path.write_text(
        "# starburst-dask pip lock: made by starburst-dask, read by starburst-dask.\n"
        + yaml.safe_dump(content, sort_keys=False)
    )


def is_pip_lock(content: Any) -> bool:
    """Whether parsed YAML ``content`` is one of our pip locks."""
    return isinstance(content, dict) and content.get("format") == FORMAT


def read_pip_lock(path: pathlib.Path) -> Lock:
    """Parse a pip lock file written by :func:`write_lock`.

    Raises
    ------
    ConfigurationError
        Another format version, or a local wheel missing beside the lock.
    """
    content = yaml.safe_load(path.read_text())
    if content.get("version") != VERSION:
        raise ConfigurationError(
            f"{path} is starburst-dask pip lock version {content.get('version')!r}; this "
            f"reads version {VERSION}: lock again with this version"
        )
    wheels = []
    for w in content.get("local") or []:
        file = path.parent / w["wheel"]
        if not file.is_file():
            raise ConfigurationError(
                f"{path} names the wheel {w['wheel']}, which is not beside it: lock again"
            )
        wheels.append(LocalWheel(w["name"], str(w["version"]), str(file), w["sha256"]))
    packages = tuple(
        LockedPackage(
            name=p["name"],
            version=str(p["version"]),
            manager="pip",
            platform=p["platform"],
            url=p["url"],
            md5=None,
            sha256=p["sha256"],
        )
        for p in content["packages"]
    )
    return Lock(
        packages,
        tuple(content["platforms"]),
        str(content["python"]),
        tuple(wheels),
        content.get("environment"),
    )


def _key_parts(environment: Environment, platform: str, template: str) -> Iterator[str]:
    yield f"{FORMAT} {VERSION}"
    yield environment.python
    yield platform
    yield template
    for name, version in environment.pins:
        yield f"{name}=={version}"
    for package in environment.local:
        yield f"{package.name}=={package.version} editable={package.editable}"
        yield _source_digest(package)


def _source_digest(package: LocalPackage) -> str:
    """sha256 of a local package's source files (names and contents), or archive."""
    if package.source.is_file():
        return hashlib.sha256(package.source.read_bytes()).hexdigest()
    if not package.source.is_dir():
        raise ConfigurationError(
            f"{package.name} was installed from {package.source}, which is gone: reinstall "
            "it from its source, or uninstall it"
        )
    digest = hashlib.sha256()
    for file in sorted(_source_files(package.source)):
        digest.update(str(file.relative_to(package.source)).encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _source_files(root: pathlib.Path) -> Iterator[pathlib.Path]:
    for entry in root.iterdir():
        if entry.name.startswith(".") or entry.name in _NOT_SOURCE:
            continue  # version control, virtual environments, caches, build output
        if entry.name.endswith(".egg-info"):
            continue
        if entry.is_dir():
            yield from _source_files(entry)
        elif entry.is_file():
            yield entry


def _locked(item: dict[str, Any], platform: str) -> LockedPackage:
    info = item["download_info"]
    return LockedPackage(
        name=normalize(item["metadata"]["name"]),
        version=str(item["metadata"]["version"]),
        manager="pip",
        platform=platform,
        url=info["url"],
        md5=None,
        sha256=info["archive_info"]["hashes"]["sha256"],
    )


def _wheel(package: LocalPackage, directory: pathlib.Path, progress: Progress) -> LocalWheel:
    """Build ``package``'s wheel into ``directory`` (its requirements are locked apart)."""
    progress(f"building a wheel of your package {package.name} from {package.source}")
    directory = directory / package.name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    _pip(
        ["wheel", "--no-deps", "--quiet", "--wheel-dir", str(directory), str(package.source)],
        f"build a wheel of {package.name}",
    )
    built = list(directory.glob("*.whl"))
    if len(built) != 1:
        raise ImageBuildError(f"pip wheel {package.source} made {len(built)} wheels, not one")
    [path] = built
    return LocalWheel(
        package.name, package.version, str(path), hashlib.sha256(path.read_bytes()).hexdigest()
    )


def _pip(arguments: list[str], what: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *arguments], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        raise ImageBuildError(
            f"pip could not {what}: {' '.join(said) or done.stderr.strip()[-500:]}. A pip "
            "lock needs the package index and a wheel of each version for linux; pass "
            "image= to run an image of your own instead"
        )
