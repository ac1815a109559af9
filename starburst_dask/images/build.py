"""From an environment to an image in ECR, built at most once per content.

``software`` (a ``FargateCluster`` option and ``starburst-dask image build``'s argument)
is one of: a conda-lock file (used as is), an ``environment.yml`` (locked with
conda-lock, dask and distributed pinned to the client's versions), or ``"current"``
(a snapshot of the running environment, then locked).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import tempfile
import time
from collections.abc import Callable
from typing import Any

import boto3
import yaml

from .. import config
from ..aws import lookups
from ..aws.clients import client_config
from ..aws.names import ecr_registry
from ..errors import ConfigurationError
from ..format import format_duration
from ..options import CURRENT_ENVIRONMENT
from . import piplock, platforms, pull_through, registry, versions
from .builders import CodeBuildBuilder, DockerBuilder, docker_engine
from .context import PIP_TEMPLATE, BuildContext, conda_platform, render, tag_for, template
from .lockfile import Lock, lock_environment, read_lock
from .snapshot import snapshot

logger = logging.getLogger(__name__)

CURRENT = CURRENT_ENVIRONMENT
#: What the first build of an environment takes, said before it starts: a pip lock takes
#: seconds; CodeBuild provisions for about a minute, then pulls the base image and the
#: wheels (typical data-science environments: 2-5 minutes in all).
BUILD_ESTIMATE = "usually 2-5 minutes"
Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Image:
    """An image in ECR made from a lock.

    Attributes
    ----------
    uri : str
        ``<registry>/<repository>:<tag>``: what ``FargateCluster(image=...)`` takes.
    tag : str
        The content tag.
    built : bool
        Whether this call built it (False: the tag was in ECR already).
    builder : str or None
        ``"docker"`` or ``"codebuild"`` when built.
    versions : dict
        Locked python, dask and distributed.
    """

    uri: str
    tag: str
    built: bool
    builder: str | None
    versions: dict[str, str]


def load_lock(software: str | pathlib.Path, progress: Progress = logger.info) -> Lock:
    """The lock for ``software``: read, or made with conda-lock (see the module docstring).

    An environment file is locked to ``<name>-lock.yml`` beside it, which is reused as
    long as the environment is unchanged (conda-lock's input hash).
    """
    if str(software) == CURRENT:
        snap = snapshot()
        for name, reason in sorted(snap.skipped.items()):
            progress(f"not in the image: {name} ({reason})")
        with tempfile.TemporaryDirectory(prefix="starburst-snapshot-") as tmp:
            env = pathlib.Path(tmp, "environment.yml")
            env.write_text(yaml.safe_dump(snap.environment, sort_keys=False))
            progress("locking the current environment with conda-lock")
            return lock_environment([env], pathlib.Path(tmp, "conda-lock.yml"))
    path = pathlib.Path(software)
    if not path.is_file():
        raise ConfigurationError(
            f"software={str(software)!r} is neither a file nor {CURRENT!r}; pass an "
            "environment.yml, a conda-lock.yml, or 'current'"
        )
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        problem = " ".join(str(e).split())
        raise ConfigurationError(f"{path} is not valid YAML ({problem}): fix the file") from None
    if piplock.is_pip_lock(content):
        return piplock.read_pip_lock(path)
    if isinstance(content, dict) and "package" in content:
        return read_lock(path)
    lockfile = path.with_name(f"{path.stem}-lock.yml")
    progress(f"locking {path} with conda-lock into {lockfile}")
    return lock_environment([path], lockfile)


def ensure_image(
    software: str | pathlib.Path | Lock,
    *,
    platform: str = "linux-64",
    repository: str | None = None,
    builder: str = "auto",
    session: Any = None,
    progress: Progress = logger.info,
) -> Image:
    """The ECR image for ``software`` on ``platform``; built and pushed only if missing.

    The running environment (``"current"``) outside conda is found by its
    :func:`.piplock.environment_key` in one ECR lookup; only when ECR lacks it is it
    locked with pip and built.

    Parameters
    ----------
    software : path, "current" or Lock
        What to install (see the module docstring).
    platform : {"linux-64", "linux-aarch64"}
        Fargate X86_64 or ARM64.
    repository : str, optional
        ECR repository; default config ``starburst.image-repository``.
    builder : {"auto", "docker", "codebuild"}
        ``"auto"``: the local Docker engine when one answers, else CodeBuild.
    session : boto3.Session, optional
        AWS session; default: standard AWS configuration.
    progress : callable
        Receives progress lines.

    Raises
    ------
    ImageVersionError
        The lock pins another Python, dask, distributed, cloudpickle or msgpack than this
        client's; nothing is built.
    MissingResourceError
        CodeBuild is needed and its project or bucket does not exist.
    ImageBuildError
        Locking or the build failed.
    """
    target = _Target(
        session or boto3.session.Session(),
        repository or config.setting("image_repository"),
        builder,
        progress,
    )
    if str(software) == CURRENT and not piplock.is_conda_environment():
        return _ensure_current(platform, target)
    lock = software if isinstance(software, Lock) else load_lock(software, progress)
    versions.check_lock(
        lock, platform, str(software) if not isinstance(software, Lock) else "the lock"
    )
    context = render(lock, platform)
    return target.found(context.tag, context.versions) or target.build(context)


@dataclasses.dataclass
class _Target:
    """Where an image goes (the ECR repository) and how it is built."""

    session: Any
    repository: str
    builder: str
    progress: Progress

    def __post_init__(self) -> None:
        self.ecr = self.session.client("ecr", config=client_config())

    def found(self, tag: str, locked: dict[str, str]) -> Image | None:
        """The image tagged ``tag`` when ECR has it (one DescribeImages call)."""
        detail = registry.find_tag(self.ecr, self.repository, tag)
        if detail is None:
            return None
        uri = f"{ecr_registry(detail['registryId'], self.ecr.meta.region_name)}/"
        uri += f"{self.repository}:{tag}"
        self.progress(f"image {uri} exists; nothing to build")
        return Image(uri, tag, False, None, locked)

    def build(self, context: BuildContext) -> Image:
        """Build and push ``context`` under its tag."""
        uri = f"{registry.ensure_repository(self.ecr, self.repository)}:{context.tag}"
        chosen = _builder(self.builder, self.session, self.ecr, self.progress)
        self.progress(f"building {uri} for {context.platform} with {chosen.name}")
        started = time.monotonic()
        chosen.build(context, uri)
        self.progress(f"pushed {uri} ({format_duration(time.monotonic() - started)})")
        return Image(uri, context.tag, True, chosen.name, context.versions)


def _ensure_current(platform: str, target: _Target) -> Image:
    """The running (plain virtual) environment's image: found by its key, else locked with
    pip and built."""
    environment = piplock.current_environment()
    key = piplock.environment_key(environment, platform, template(PIP_TEMPLATE))
    pinned = dict(environment.pins)
    locked = {
        "python": environment.python,
        "dask": pinned.get("dask", ""),
        "distributed": pinned.get("distributed", ""),
    }
    found = target.found(tag_for(locked, key), locked)
    if found is not None:
        return found
    target.progress(
        f"this environment ({len(environment.pins)} distributions, "
        f"{len(environment.local)} of your own packages) has no image for {platform} yet: "
        f"locking it with pip, then building it once ({BUILD_ESTIMATE}); later clusters "
        "find it in ECR"
    )
    with tempfile.TemporaryDirectory(prefix="starburst-lock-") as tmp:
        lock = piplock.lock_environment(
            environment, platform, pathlib.Path(tmp), key, target.progress
        )
        versions.check_lock(lock, platform, "this environment")
        return target.build(render(lock, platform))


def resolve_cluster_image(options: Any, progress: Progress = logger.info) -> Any:
    """A cluster's options with ``image`` set from ``software`` and checked against the client.

    Called by ``FargateCluster`` before anything is launched: with ``software`` the image
    is found (or built) in ECR for the options' architecture; an ECR image known to lack
    that architecture's platform raises :class:`ImageArchitectureError`, and either way an
    image that records another distributed than the client's raises
    :class:`ImageVersionError`, before any task starts. A Docker Hub image becomes its URI
    through the pull through cache rule config ``starburst.image-cache`` names, when that
    rule exists (:mod:`.pull_through`). What it does, it says to ``progress`` (a
    cluster's status lines).
    """
    session = boto3.session.Session(region_name=options.region)
    if getattr(options, "software", None):
        image = ensure_image(
            options.software,
            platform=conda_platform(options.architecture),
            repository=options.image_repository,
            session=session,
            progress=progress,
        )
        options = dataclasses.replace(options, image=image.uri)
    else:
        platforms.check_image_platform(options.image, options.architecture, session)
    if options.image_check_versions:
        versions.check_image(options.image)
    prefix = options.image_cache
    if prefix:  # checked above as the upstream image, which the cache serves unchanged
        ecr = session.client("ecr", config=client_config())
        uri = pull_through.resolve(options.image, ecr, options.region, prefix, progress)
        options = dataclasses.replace(options, image=uri)
    return options


def build_context(software: str | pathlib.Path, platform: str = "linux-64") -> BuildContext:
    """Render the build context for ``software`` without building (for inspection)."""
    return render(load_lock(software), platform)


def _builder(kind: str, session: Any, ecr: Any, progress: Progress) -> Any:
    if kind == "auto":
        kind = "docker" if docker_engine() else "codebuild"
    if kind == "docker":
        return DockerBuilder(ecr, progress)
    if kind == "codebuild":
        return CodeBuildBuilder(
            session, config.setting("image_build_project"), build_bucket(session), progress
        )
    raise ConfigurationError(f"builder must be 'auto', 'docker' or 'codebuild', got {kind!r}")


def build_bucket(session: Any) -> str:
    """S3 bucket for build contexts: config ``starburst.image-build-bucket``, or per account."""
    configured = config.setting("image_build_bucket")
    if configured:
        return configured
    account = lookups.caller_identity(session.client("sts", config=client_config()))["Account"]
    return f"starburst-dask-builds-{account}-{session.region_name}"
