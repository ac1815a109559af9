"""The images the local Fargate knows: what a pull finds, and what each image contains.

A task's image is resolved when the task is PENDING, as AWS pulls it then. Every image
the local Fargate knows is run by this machine's Python interpreter, restricted to the
packages the image contains (:mod:`.packages`); any other image is, to the local
Fargate, an image that does not exist, and its pull fails in AWS's words. An image the
local Fargate cannot stand for (another Python or dask version than this environment's)
fails plainly, saying so. A pull is for the task's platform (``linux/arm64`` for an
ARM64 task definition), and an image without it fails as AWS fails it. Sources of every
figure are in ``docs/local-fargate.md``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
from importlib import metadata

from moto.ecr.models import ecr_backends

from .. import fargate
from ..aws.names import ECR_IMAGE
from ..images.platforms import manifest_platforms
from . import built, iam, pull_through
from .packages import IMAGE_PATHS_VAR, closure, denied, installed, installed_bytes, normalize

#: Python distributions of the ``daskdev/dask`` image (dask-docker's ``base/Dockerfile``):
#: conda-forge's ``dask`` metapackage, the Dockerfile's extras, and the
#: ``condaforge/miniforge3`` base environment (conda, mamba and their Python packages).
#: Their requirements come with them (:func:`.packages.closure`).
DASK_IMAGE_PACKAGES = frozenset(
    {
        # dask metapackage (conda-forge dask-feedstock)
        "dask",
        "distributed",
        "numpy",
        "pandas",
        "bokeh",
        "jinja2",
        "pyarrow",
        "lz4",
        "cytoolz",
        # bokeh's requirements, named since bokeh itself may not be installed here to say so
        "contourpy",
        "narwhals",
        "pillow",
        "xyzservices",
        # cachey's
        "heapdict",
        # base/Dockerfile: mamba install ... cachey streamz
        "cachey",
        "streamz",
        # condaforge/miniforge3: conda, mamba and what they run on
        "conda",
        "conda-libmamba-solver",
        "libmambapy",
        "conda-package-handling",
        "conda-package-streaming",
        "archspec",
        "boltons",
        "charset-normalizer",
        "distro",
        "frozendict",
        "jsonpatch",
        "jsonpointer",
        "menuinst",
        "packaging",
        "platformdirs",
        "pluggy",
        "pycosat",
        "requests",
        "ruamel-yaml",
        "ruamel-yaml-clib",
        "tqdm",
        "truststore",
        "zstandard",
        "urllib3",
        "idna",
        "certifi",
        "pysocks",
        "brotli",
        "h2",
        "cffi",
        "pycparser",
        "pip",
        "setuptools",
        "wheel",
    }
)
#: Repositories of the dask images (dask-docker pushes the same image to both), and the
#: platforms each tag provides (dask-docker's build workflow: ``platforms:
#: linux/amd64,linux/arm64``).
DASK_REPOSITORIES = ("docker.io/daskdev/dask", "ghcr.io/dask/dask")
DASK_PLATFORMS = frozenset({"linux/amd64", "linux/arm64"})
#: Python versions dask-docker builds (its build matrix), and that of tags without ``-py``.
DASK_PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
DASK_DEFAULT_PYTHON = "3.10"
#: ``<dask version>[-py<X.Y>]`` or ``latest[-py<X.Y>]`` (dask-docker's tags for releases).
_DASK_TAG = re.compile(r"(?P<version>\d+\.\d+\.\d+|latest)(?:-py(?P<python>\d+\.\d+))?")
#: Variables dask-docker's ``prepare.sh`` installs from before running the command.
EXTRA_PACKAGE_VARS = ("EXTRA_CONDA_PACKAGES", "EXTRA_PIP_PACKAGES")
#: Docker's official ``python`` image: the interpreter, pip, and before 3.12 setuptools
#: and wheel.
PYTHON_REPOSITORY = "docker.io/library/python"
#: The official images' platforms Fargate can run (docker-library's ``python`` builds
#: amd64 and arm64v8 among others).
PYTHON_PLATFORMS = frozenset({"linux/amd64", "linux/arm64"})
#: The platform of an ECR image pushed as one image's manifest, whose platform is in a
#: config blob the local ECR does not keep: that of every image before ARM64 tasks.
SINGLE_MANIFEST_PLATFORM = "linux/amd64"
_PYTHON_TAG = re.compile(r"(?P<python>\d+\.\d+)(?:\.\d+)?(?:-[a-z0-9.-]+)?")
#: Tags of images ``starburst-dask image`` builds: ``<distributed>-py<X.Y>-<hash>``.
_BUILT_TAG = re.compile(r"\d+\.\d+\.\d+-py(?P<python>\d+\.\d+)-[0-9a-f]+")
#: A pull's size: the image's base (the OS and the interpreter: ``python:X.Y-slim-bookworm``
#: is about 45 MB compressed on Docker Hub for linux/amd64) plus its Python distributions,
#: compressed as their wheels are (124 MB of wheels install as 370 MB:
#: ``docs/benchmarks/image_size.md``).
BASE_COMPRESSED_BYTES = 45_000_000
COMPRESSED_PER_INSTALLED = 124 / 370
#: The stand-in's own failures: not AWS's words, since AWS would run these images.
LOCAL_ERROR = "LocalFargateImageError"


@dataclasses.dataclass(frozen=True)
class Pulled:
    """What a pull gives: the distributions the image contains, among those installed here.

    Attributes
    ----------
    packages : frozenset of str
        Normalized distribution names.
    paths : tuple of str
        Directories of the image's own packages (the user's wheels, unpacked).
    """

    packages: frozenset[str]
    paths: tuple[str, ...] = ()

    def environment(self) -> dict[str, str]:
        """The task's environment variables that keep it to this image's packages."""
        return {**denied(self.packages), IMAGE_PATHS_VAR: os.pathsep.join(self.paths)}

    def compressed_bytes(self) -> int:
        """What a pull of this image transfers: its base and its packages, compressed."""
        own = sum(_tree_bytes(path) for path in self.paths)
        return BASE_COMPRESSED_BYTES + round(
            COMPRESSED_PER_INSTALLED * (installed_bytes(self.packages) + own)
        )


def _tree_bytes(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def local_python() -> str:
    """This interpreter's ``X.Y``: the only Python the local images can have."""
    return ".".join(platform.python_version_tuple()[:2])


def pull(
    image: str, environment: dict[str, str], platform: str, execution_role: str | None = None
) -> Pulled | str:
    """Pull ``image`` for a task with ``environment``: its contents, or why the pull fails.

    Parameters
    ----------
    image : str
        The container definition's image.
    environment : dict
        The container's environment (``EXTRA_PIP_PACKAGES`` for the dask images).
    platform : str
        The task's platform (``linux/arm64`` for an ARM64 task definition).
    execution_role : str, optional
        The task's execution role ARN, which pulls through an ECR pull through cache rule.

    Returns
    -------
    Pulled or str
        The image's packages, or the task's ``stoppedReason``.
    """
    ecr = ECR_IMAGE.match(image)
    if ecr:
        account, region, name, tag, digest = ecr.groups()
        cached = pull_through.upstream(account, region, name)
        if cached is not None:
            return _pull_cached(cached, environment, platform, execution_role, image, *ecr.groups())
        return _pull_ecr(image, platform, *ecr.groups())
    name, tag, digest = _reference(image)
    if name in DASK_REPOSITORIES:
        if _DASK_TAG.fullmatch(tag) and platform not in DASK_PLATFORMS:
            return _no_platform(platform)
        return _pull_dask(image, name, tag, digest, environment)
    if name == PYTHON_REPOSITORY:
        if digest:
            return _by_digest(image)
        if platform not in PYTHON_PLATFORMS:
            return _no_platform(platform)
        match = _PYTHON_TAG.fullmatch(tag)
        if match:
            return _python_checked(image, match["python"]) or Pulled(_python_image())
        return _not_found(f"{name}:{tag}")
    return _no_repository(name, tag, digest)


def _pull_ecr(
    image: str,
    platform: str,
    account: str,
    region: str,
    name: str,
    tag: str | None,
    digest: str | None,
) -> Pulled | str:
    repository = ecr_backends[account][region].repositories.get(name)
    for found in repository.images if repository else []:
        if (found.image_digest == digest) if digest else ((tag or "latest") in found.image_tags):
            break
    else:
        return _not_found(image)
    platforms = manifest_platforms(json.loads(found.image_manifest))
    if platforms is None and platform != SINGLE_MANIFEST_PLATFORM:
        return _local(
            f"{image} is one image's manifest, whose platform is in its config "
            "blob, which the local ECR does not keep; push it as a manifest list "
            f"or index naming {platform} (docker buildx build --platform "
            f"{platform} --push does)"
        )
    if platforms is not None and platform not in platforms:
        return _no_platform(platform)
    recorded = built.find(account, region, name, found.image_digest)
    if recorded is not None:  # the local CodeBuild built it: exactly its lock's packages
        return _python_checked(image, recorded.contents.python) or _built(image, recorded)
    tagged = _BUILT_TAG.fullmatch(tag or "")
    if tagged and (reason := _python_checked(image, tagged["python"])):
        return reason
    # Every image ``starburst-dask image`` builds has python, dask and distributed (its
    # render step refuses a lock without them); the rest of its lock is not known here.
    return Pulled(closure(["dask", "distributed"]))


def _built(image: str, recorded: built.Built) -> Pulled | str:
    """An image the local CodeBuild built: its lock's packages, each of which this
    environment must have at the locked version to stand for it."""
    here = installed()
    local = set(recorded.contents.local)
    for name, version in sorted(recorded.contents.packages.items()):
        if name in local:
            continue
        if name not in here:
            return _local(
                f"{image} holds {name} {version}, which is not installed here: the local "
                f"Fargate runs images with this environment; pip install {name}=={version} "
                "here to run it"
            )
        if here[name].version != version:
            return _local(
                f"{image} holds {name} {version}, and this environment, which stands for "
                f"it, has {name} {here[name].version}: install {name}=={version} here"
            )
    return Pulled(frozenset(recorded.contents.packages) - local, recorded.paths)


def _pull_cached(
    upstream: str,
    environment: dict[str, str],
    platform: str,
    execution_role: str | None,
    image: str,
    account: str,
    region: str,
    name: str,
    tag: str | None,
    digest: str | None,
) -> Pulled | str:
    """A pull through a cache rule: the upstream image, imported by the execution role,
    whose first pull creates the cached repository in the account's registry, as ECR
    does; a role without those permissions is refused as ECR refuses a pull."""
    ecr = ecr_backends[account][region]
    arn = f"arn:aws:ecr:{region}:{account}:repository/{name}"
    needed = (
        fargate.PULL_THROUGH_PERMISSIONS
        if ecr.repositories.get(name) is None
        else fargate.PULL_THROUGH_PERMISSIONS[:1]
    )
    if not all(iam.role_allows(execution_role, action, arn) for action in needed):
        return _access_denied(image)
    reference = f"{upstream}@{digest}" if digest else f"{upstream}:{tag or 'latest'}"
    pulled = pull(reference, environment, platform)
    if isinstance(pulled, Pulled) and ecr.repositories.get(name) is None:
        ecr.create_repository(
            name, account, {"encryptionType": "AES256"}, {"scanOnPush": False}, "MUTABLE", []
        )
    return pulled


def _pull_dask(
    image: str, name: str, tag: str, digest: str | None, environment: dict[str, str]
) -> Pulled | str:
    if digest:
        return _by_digest(image)
    match = _DASK_TAG.fullmatch(tag)
    python = (match and match["python"]) or DASK_DEFAULT_PYTHON
    if not match or python not in DASK_PYTHONS:
        return _not_found(f"{name}:{tag}")
    if reason := _python_checked(image, python):
        return reason
    dask = metadata.version("dask")
    if match["version"] not in ("latest", dask):
        return _local(
            f"{image} has dask {match['version']}; this environment, which stands "
            f"in for the dask images, has dask {dask}: use daskdev/dask:{dask}-py"
            f"{python}"
        )
    extra = []
    for var in EXTRA_PACKAGE_VARS:
        for spec in _package_names(environment.get(var, "")):
            if spec not in installed():
                return _local(
                    f"{var} names {spec!r}, which is not installed here: the local Fargate "
                    "installs nothing per task; install it in this environment to stand "
                    "for the image's install at start"
                )
            extra.append(spec)
    return Pulled(closure([*DASK_IMAGE_PACKAGES, *extra]))


def _python_image() -> frozenset[str]:
    tools = (
        ["pip"]
        if tuple(map(int, local_python().split("."))) >= (3, 12)
        else ["pip", "setuptools", "wheel"]
    )
    return closure(tools)


def _python_checked(image: str, python: str) -> str | None:
    """The plain failure for an image of another Python than this interpreter's."""
    if python == local_python():
        return None
    return _local(
        f"{image} has Python {python}, and the local Fargate runs every image with "
        f"this interpreter, Python {local_python()}: use a -py{local_python()} image "
        "or run the local Fargate with that Python"
    )


def _package_names(value: str) -> list[str]:
    """Distribution names in ``prepare.sh``'s space-separated package lists (no options)."""
    names, words = [], iter(value.split())
    for word in words:
        if word in ("-c", "--channel"):
            next(words, None)  # the channel
        if word.startswith("-"):
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", word.rpartition("::")[2])
        if match:
            names.append(normalize(match.group()))
    return names


def _reference(image: str) -> tuple[str, str, str | None]:
    """Docker's normalized ``registry/path``, tag (default ``latest``) and digest."""
    image, _, digest = image.partition("@")
    name, _, tag = image.rpartition(":") if ":" in image.rpartition("/")[2] else (image, "", "")
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}" if rest else f"docker.io/library/{name}"
    return name, tag or "latest", digest or None


def _not_found(ref: str) -> str:
    return (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
        f"failed to resolve ref {ref}: {ref}: not found"
    )


def _no_repository(name: str, tag: str, digest: str | None) -> str:
    return _access_denied(f"{name}@{digest}" if digest else f"{name}:{tag}")


def _access_denied(ref: str) -> str:
    return (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
        f"failed to resolve ref {ref}: pull access denied, repository does not exist or "
        "may require authorization: server message: insufficient_scope: authorization "
        "failed"
    )


def _no_platform(platform: str) -> str:
    """AWS's pull failure for an image without the task's platform (as an ECS service
    event quotes it: aviswerdlow/relay#71)."""
    return (
        "CannotPullContainerError: pull image manifest has been retried 7 time(s): "
        f"image Manifest does not contain descriptor matching platform '{platform}'"
    )


def _by_digest(image: str) -> str:
    return _local(f"{image} is pinned by digest; the local Fargate knows public images by tag only")


def _local(message: str) -> str:
    return f"{LOCAL_ERROR}: {message}"
