"""Environment sync: the user's environment, locked with conda-lock, as an image in ECR.

The pieces, in order: :mod:`.lockfile` (read a conda-lock file, or make one),
:mod:`.snapshot` (the running environment as an environment.yml), :mod:`.context` (the
Dockerfile rendered from the template, and the content tag), :mod:`.registry` (ECR),
:mod:`.builders` (local Docker or CodeBuild), :mod:`.versions` (client/image version
check), :mod:`.platforms` (the image's platforms against the architecture), and
:mod:`.build`, which ties them together.

Examples
--------
>>> from starburst_dask.images import ensure_image
>>> image = ensure_image("environment.yml")  # doctest: +SKIP
>>> FargateCluster(image=image.uri)  # doctest: +SKIP
"""

from .build import Image, build_context, ensure_image, load_lock, resolve_cluster_image
from .builders import create_codebuild_project, docker_engine
from .context import BuildContext, render
from .errors import ImageArchitectureError, ImageBuildError, ImageVersionError
from .lockfile import PLATFORMS, Lock, LockedPackage, lock_environment, read_lock
from .snapshot import snapshot
from .versions import check_image, from_tag

__all__ = [
    "PLATFORMS",
    "BuildContext",
    "Image",
    "ImageArchitectureError",
    "ImageBuildError",
    "ImageVersionError",
    "Lock",
    "LockedPackage",
    "build_context",
    "check_image",
    "create_codebuild_project",
    "docker_engine",
    "ensure_image",
    "from_tag",
    "load_lock",
    "lock_environment",
    "read_lock",
    "render",
    "resolve_cluster_image",
    "snapshot",
]
