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
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import boto3
import yaml

from .. import config
from ..aws import lookups
from ..aws.clients import client_config
from ..errors import ConfigurationError
from . import platforms, pull_through, registry, versions
from .builders import CodeBuildBuilder, DockerBuilder, docker_engine
from .context import BuildContext, conda_platform, render
from .lockfile import Lock, lock_environment, read_lock
from .snapshot import snapshot

logger = logging.getLogger(__name__)

CURRENT = "current"
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
    content = yaml.safe_load(path.read_text())
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
        The lock pins another dask or distributed than this client's; nothing is built.
    MissingResourceError
        CodeBuild is needed and its project or bucket does not exist.
    ImageBuildError
        The build failed.
    """
    session = session or boto3.session.Session()
    lock = software if isinstance(software, Lock) else load_lock(software, progress)
    versions.check_lock(
        lock, platform, str(software) if not isinstance(software, Lock) else "the lock"
    )
    context = render(lock, platform)
    repository = repository or config.setting("image_repository")
    ecr = session.client("ecr", config=client_config())
    cached = registry.has_tag(ecr, repository, context.tag)
    uri = f"{registry.ensure_repository(ecr, repository)}:{context.tag}"
    if cached:
        progress(f"image {uri} exists; nothing to build")
        return Image(uri, context.tag, False, None, context.versions)
    chosen = _builder(builder, session, ecr, progress)
    progress(f"building {uri} for {platform} with {chosen.name}")
    chosen.build(context, uri)
    progress(f"pushed {uri}")
    return Image(uri, context.tag, True, chosen.name, context.versions)


def resolve_cluster_image(options: Any, progress: Progress | None = None) -> Any:
    """A cluster's options with ``image`` set from ``software`` and checked against the client.

    Called by ``FargateCluster`` before anything is launched: with ``software`` the image
    is found (or built) in ECR for the options' architecture; an ECR image known to lack
    that architecture's platform raises :class:`ImageArchitectureError`, and either way an
    image that records another distributed than the client's raises
    :class:`ImageVersionError`, before any task starts. A Docker Hub image becomes its URI
    through the pull through cache rule config ``starburst.image-cache`` names, when that
    rule exists (:mod:`.pull_through`).
    """
    progress = progress or _stderr_progress
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


def _stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
