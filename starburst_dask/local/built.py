"""What the local ECR keeps beside the images its CodeBuild builds: what each holds.

A real image carries its files; the local Fargate runs every image with this machine's
Python, restricted to the image's packages. For an image its CodeBuild pushed, those are
the build context's ``image.json`` (the lock's package list, Python and platform), and
the user's own packages are the context's wheels, unpacked once per wheel (by its hash)
as an installer would, to be put on the task's ``sys.path``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import tempfile
import threading
import zipfile
from pathlib import Path

from ..images.contents import Contents

#: Unpacked wheels, one directory per wheel content (shared by every local Fargate).
WHEELS_DIR = Path(tempfile.gettempdir()) / "starburst-local-fargate-wheels"


@dataclasses.dataclass(frozen=True)
class Built:
    """An image the local CodeBuild pushed: its contents and its unpacked local wheels."""

    contents: Contents
    paths: tuple[str, ...]


_images: dict[tuple[str, str, str, str], Built] = {}
_lock = threading.Lock()


def record(
    account: str,
    region: str,
    repository: str,
    digest: str,
    contents: Contents,
    files: dict[str, bytes],
) -> None:
    """Keep what the image ``repository@digest`` holds, its wheels unpacked."""
    paths = tuple(_unpack(files[wheel]) for wheel in contents.local.values())
    with _lock:
        _images[(account, region, repository, digest)] = Built(contents, paths)


def find(account: str, region: str, repository: str, digest: str) -> Built | None:
    """What the image holds, if the local CodeBuild built it."""
    with _lock:
        return _images.get((account, region, repository, digest))


def reset() -> None:
    """Forget every image (the local ECR they were in is gone)."""
    with _lock:
        _images.clear()


def _unpack(wheel: bytes) -> str:
    """The wheel's files in a directory of their own (a wheel is a zip of its install)."""
    target = WHEELS_DIR / hashlib.sha256(wheel).hexdigest()
    if not target.is_dir():
        partial = Path(tempfile.mkdtemp(prefix="unpacking-", dir=_wheels_dir()))
        with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
            archive.extractall(partial)
        # Unpacked meanwhile by another local Fargate: theirs is the same.
        with contextlib.suppress(OSError):
            partial.rename(target)
    return str(target)


def _wheels_dir() -> Path:
    WHEELS_DIR.mkdir(parents=True, exist_ok=True)
    return WHEELS_DIR
