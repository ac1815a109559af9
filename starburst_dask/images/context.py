"""The build context of an image: a Dockerfile rendered from the template, plus the lock.

The image tag is derived from the context's content (the rendered Dockerfile, which
contains the template, and the platform's locked packages), so the same environment
always gets the same tag and is never built twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pathlib
import re
import zipfile
from importlib import resources

from .. import fargate
from ..errors import ConfigurationError
from . import contents
from .lockfile import INIT_PACKAGE, Lock, LockedPackage

#: micromamba's image: non-root user ``mambauser``, an entrypoint that activates the env.
BASE_IMAGE = "mambaorg/micromamba:2.0.5"
#: A pip lock's base: Python's official slim image of the lock's ``X.Y``, on Debian 12
#: (glibc 2.36, which :data:`.piplock.BASE_GLIBC` names for the wheels).
PIP_BASE_IMAGE = "python:{python}-slim-bookworm"
PIP_TEMPLATE = "Dockerfile.pip.template"
#: Docker's names for the conda platforms we build.
DOCKER_PLATFORMS = {"linux-64": "linux/amd64", "linux-aarch64": "linux/arm64"}
LABEL_PREFIX = "io.starburst-dask"
#: Hex digits of the content hash kept in the tag (64 bits: collisions are not a concern).
TAG_HASH_LENGTH = 16
_MICROMAMBA_ENTRYPOINT = "/usr/local/bin/_entrypoint.sh"


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """Everything needed to build one image, and its tag.

    Attributes
    ----------
    files : dict of str to str
        File name to content: ``Dockerfile``, ``image.json`` (what the image holds, for
        checks), and ``conda.lock`` and/or ``requirements.txt``.
    platform : str
        Conda platform (``linux-64`` or ``linux-aarch64``).
    versions : dict of str to str
        Locked versions of python, dask and distributed.
    tag : str
        ``<distributed>-py<python>-<hash>``: readable, and unique per content (for the
        running environment, per :func:`.piplock.environment_key`).
    binaries : dict of str to bytes
        Other files: the user's own packages as wheels (``wheels/<file>``).
    """

    files: dict[str, str]
    platform: str
    versions: dict[str, str]
    tag: str
    binaries: dict[str, bytes] = dataclasses.field(default_factory=dict)

    @property
    def docker_platform(self) -> str:
        """The platform as Docker names it (``linux/amd64``)."""
        return DOCKER_PLATFORMS[self.platform]

    def zip(self, extra: dict[str, str] | None = None) -> bytes:
        """The context as a zip archive (what CodeBuild takes from S3), reproducibly."""
        buffer = io.BytesIO()
        contents: dict[str, str | bytes] = {**self.files, **self.binaries, **(extra or {})}
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in sorted(contents.items()):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, text)
        return buffer.getvalue()


def conda_platform(architecture: str) -> str:
    """The conda platform built for Fargate tasks of ``architecture`` (``ARM64``:
    ``linux-aarch64``)."""
    wanted = fargate.IMAGE_PLATFORMS[architecture]
    return next(c for c, docker in DOCKER_PLATFORMS.items() if docker == wanted)


def template(name: str = "Dockerfile.template") -> str:
    """The text of a packaged template."""
    return (resources.files(__package__) / "templates" / name).read_text()


def render(lock: Lock, platform: str = "linux-64", base_image: str = BASE_IMAGE) -> BuildContext:
    """Render the build context that installs exactly ``lock``'s packages for ``platform``.

    Parameters
    ----------
    lock : Lock
        The parsed conda-lock file.
    platform : {"linux-64", "linux-aarch64"}
        Target platform (Fargate X86_64 or ARM64).
    base_image : str
        A micromamba image (``mambaorg/micromamba`` or one derived from it).

    Raises
    ------
    ConfigurationError
        Unknown platform, or a lock without python or distributed.
    """
    if platform not in DOCKER_PLATFORMS:
        raise ConfigurationError(
            f"platform {platform!r} is not one Fargate runs; use one of "
            f"{', '.join(DOCKER_PLATFORMS)}"
        )
    packages = lock.for_platform(platform)
    versions = {n: lock.version(n, platform) for n in ("python", "dask", "distributed")}
    missing = [n for n, v in versions.items() if v is None]
    if missing:
        raise ConfigurationError(
            f"the lock has no {' or '.join(missing)} for {platform}; a dask image needs "
            "python, dask and distributed: add them to the environment and re-lock"
        )
    if lock.kind == "pip":
        return _render_pip(lock, platform, packages, versions)  # type: ignore[arg-type]
    conda = [p for p in packages if p.manager == "conda"]
    pip = [p for p in packages if p.manager == "pip"]
    files = {"conda.lock": _explicit(conda, platform)}
    if pip:
        files["requirements.txt"] = _requirements(pip)
    names = {p.name for p in conda}
    dockerfile = _fill(
        template(),
        {
            "base_image": base_image,
            "platform": platform,
            "pip_step": _PIP_STEP if pip else "",
            "labels": _labels(versions, platform),
            "entrypoint": _entrypoint(INIT_PACKAGE in names),
        },
    )
    files["Dockerfile"] = dockerfile
    files["image.json"] = contents.describe(lock, platform)
    return BuildContext(
        files=files,
        platform=platform,
        versions=versions,  # type: ignore[arg-type]
        tag=tag_for(versions, content_hash(files)),  # type: ignore[arg-type]
    )


def tag_for(versions: dict[str, str], digest: str) -> str:
    """``<distributed>-py<X.Y>-<hash>``: the versions a client checks, and the content."""
    py = ".".join(str(versions["python"]).split(".")[:2])
    return f"{versions['distributed']}-py{py}-{digest[:TAG_HASH_LENGTH]}"


def _render_pip(
    lock: Lock, platform: str, packages: list[LockedPackage], versions: dict[str, str]
) -> BuildContext:
    """A pip lock's context: Python's slim image, the hashed wheels, the local wheels."""
    binaries = {f"wheels/{w.filename}": pathlib.Path(w.path).read_bytes() for w in lock.wheels}
    local = [f"/tmp/context/wheels/{w.filename} --hash=sha256:{w.sha256}" for w in lock.wheels]
    files = {
        "requirements.txt": "\n".join(
            [f"{p.name}=={p.version} --hash=sha256:{p.sha256}" for p in packages] + local
        )
        + "\n",
        "image.json": contents.describe(lock, platform),
        "Dockerfile": _fill(
            template(PIP_TEMPLATE),
            {
                "base_image": PIP_BASE_IMAGE.format(python=lock.python),
                "platform": platform,
                "labels": _labels(versions, platform),  # type: ignore[arg-type]
            },
        ),
    }
    digest = lock.environment or content_hash(files, binaries)
    return BuildContext(files, platform, versions, tag_for(versions, digest), binaries)


def content_hash(files: dict[str, str], binaries: dict[str, bytes] | None = None) -> str:
    """sha256 over file names and contents, independent of order."""
    everything: dict[str, str | bytes] = {**files, **(binaries or {})}
    digest = hashlib.sha256()
    for name in sorted(everything):
        content = everything[name]
        for data in (name.encode(), content if isinstance(content, bytes) else content.encode()):
            digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


_PIP_STEP = """
# pip packages of the lock: exact files, checked against their hashes, no resolution.
COPY --chown=$MAMBA_USER:$MAMBA_USER requirements.txt /tmp/requirements.txt
RUN micromamba run --name base python -m pip install --no-deps --no-cache-dir \\
        --require-hashes --requirement /tmp/requirements.txt \\
 && rm /tmp/requirements.txt
"""


def _explicit(packages: list[LockedPackage], platform: str) -> str:
    """conda's explicit spec format: one URL per package, with its md5 as fragment."""
    lines = [
        "# starburst-dask: conda packages locked for " + platform,
        f"# platform: {platform}",
        "@EXPLICIT",
    ]
    for p in packages:
        if not p.md5:
            raise ConfigurationError(f"locked conda package {p.name} has no md5 hash")
        lines.append(f"{p.url}#{p.md5}")
    return "\n".join(lines) + "\n"


def _requirements(packages: list[LockedPackage]) -> str:
    lines = []
    for p in packages:
        if not p.sha256:
            raise ConfigurationError(f"locked pip package {p.name} has no sha256 hash")
        lines.append(f"{p.name} @ {p.url} --hash=sha256:{p.sha256}")
    return "\n".join(lines) + "\n"


def _labels(versions: dict[str, str | None], platform: str) -> str:
    labels = {f"{LABEL_PREFIX}.{name}": str(v) for name, v in versions.items()}
    labels[f"{LABEL_PREFIX}.platform"] = platform
    body = " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
    return f"# Versions a client checks before it launches tasks on this image.\nLABEL {body}"


def _entrypoint(has_init: bool) -> str:
    if has_init:
        return (
            "# tini (from the lock) is PID 1: forwards ECS's SIGTERM to dask, reaps "
            "children.\n"
            f'ENTRYPOINT ["/opt/conda/bin/tini", "-g", "--", "{_MICROMAMBA_ENTRYPOINT}"]'
        )
    return (
        "# The lock has no tini: micromamba's entrypoint execs the command, so dask is\n"
        "# PID 1 and handles SIGTERM itself (add tini to the environment for reaping).\n"
        f'ENTRYPOINT ["{_MICROMAMBA_ENTRYPOINT}"]'
    )


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{ " + key + " }}", value)
    left = re.findall(r"\{\{ (\w+) \}\}", text)
    if left:
        raise ValueError(f"template placeholders without a value: {left}")
    return text
